"""Resource shapes and their arithmetic.

Quantities are kept as integers of 1/10000 of a unit, as Ray does, so that fractional requests
(``num_gpus=0.25``) add and subtract without floating-point drift.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

UNIT = 10_000

# A node with GPUs of a known model advertises ``accelerator_type:<model>`` (one unit); a task
# or actor with ``accelerator_type=<model>`` asks for a sliver of it, as Ray does, so that it
# runs only where that model is.
ACCELERATOR_TYPE = "accelerator_type:"
ACCELERATOR_REQUEST = 0.001

Shape = dict[str, int]
ShapeKey = tuple[tuple[str, int], ...]


def to_fixed(quantities: Mapping[str, float]) -> Shape:
    return {name: round(value * UNIT) for name, value in quantities.items() if value}


def to_float(shape: Mapping[str, int]) -> dict[str, float]:
    return {name: value / UNIT for name, value in shape.items()}


def key_of(shape: Mapping[str, int]) -> ShapeKey:
    return tuple(sorted(shape.items()))


def fits(shape: Mapping[str, int], available: Mapping[str, int]) -> bool:
    for name, needed in shape.items():
        if needed > available.get(name, 0):
            return False
    return True


def subtract(available: dict[str, int], shape: Mapping[str, int]) -> None:
    for name, amount in shape.items():
        available[name] = available.get(name, 0) - amount


def add(available: dict[str, int], shape: Mapping[str, int]) -> None:
    for name, amount in shape.items():
        available[name] = available.get(name, 0) + amount


def total(shapes: Iterable[Mapping[str, int]]) -> Shape:
    result: Shape = {}
    for shape in shapes:
        add(result, shape)
    return result


def describe(shape: Mapping[str, int]) -> str:
    """``{CPU: 2, GPU: 0.5}``: the form error messages and ``ember status`` use."""
    if not shape:
        return "{}"
    parts = []
    for name, value in sorted(shape.items()):
        quantity = value / UNIT
        if name in ("memory", "object_store_memory"):
            parts.append(f"{name}: {_bytes(quantity)}")
        else:
            parts.append(f"{name}: {quantity:g}")
    return "{" + ", ".join(parts) + "}"


def _bytes(amount: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(amount) < 1024 or unit == "TiB":
            return f"{amount:.3g}{unit}" if unit != "B" else f"{amount:.0f}B"
        amount /= 1024
    return f"{amount}B"
