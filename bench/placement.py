"""Placement group workloads: how fast groups are created (reserved on their nodes, ready) and
removed (their resources free again), on two nodes, ember beside Ray.

Written against ``ember.util`` / ``ray.util`` alike (the same names); Dask has no equivalent, so
each returns None for it. Only the driver calls these: nothing here is shipped to workers.
"""

from __future__ import annotations

import importlib
import statistics
import time
from collections.abc import Callable
from typing import Any

Result = tuple[float, str]
BATCH = 100  # groups created, then removed, at once
TINY = 0.01  # CPU per bundle in a batch: a hundred fit one CPU


def _util(system: Any) -> Any:
    name = getattr(system, "name", "")
    return importlib.import_module(f"{name}.util") if name in ("ember", "ray") else None


def _median(run: Callable[[], float], repeat: int) -> float:
    return statistics.median(run() for _ in range(repeat))


def _cpus_free(system: Any, total: float) -> None:
    """Wait until the cluster reports every CPU free again (what removal gives back)."""
    deadline = time.monotonic() + 60
    while system.api.available_resources().get("CPU", 0.0) < total - 1e-6:
        if time.monotonic() > deadline:
            raise RuntimeError("CPUs did not come back after the groups were removed")
        time.sleep(0.005)


def _cycle(system: Any, bundles: list[dict[str, float]], strategy: str, repeat: int, n: int) -> Result | None:
    util = _util(system)
    if util is None:
        return None
    get = system.api.get

    def once() -> None:
        group = util.placement_group(bundles, strategy=strategy)
        get(group.ready())
        util.remove_placement_group(group)

    once()

    def run() -> float:
        start = time.perf_counter()
        for _ in range(n):
            once()
        return n / (time.perf_counter() - start)

    return _median(run, repeat), "groups/s"


def pg_cycle_pack(system: Any, repeat: int = 3, n: int = 200) -> Result | None:
    """Create a one-bundle group, wait until it is ready, remove it; one after another."""
    return _cycle(system, [{"CPU": 1}], "PACK", repeat, n)


def pg_cycle_strict_spread(system: Any, repeat: int = 3, n: int = 200) -> Result | None:
    """The same with two bundles that must go to distinct nodes: both nodes take part."""
    return _cycle(system, [{"CPU": 1}, {"CPU": 1}], "STRICT_SPREAD", repeat, n)


def _batch(system: Any, repeat: int) -> tuple[float, float] | None:
    """Create BATCH groups and wait until all are ready; then remove them all and wait until
    their CPUs are free. Returns both rates (groups/s), medians of ``repeat`` rounds."""
    util = _util(system)
    if util is None:
        return None
    api = system.api
    total = api.cluster_resources()["CPU"]
    created: list[float] = []
    removed: list[float] = []
    for _ in range(repeat + 1):  # the first round warms up
        start = time.perf_counter()
        groups = [util.placement_group([{"CPU": TINY}]) for _ in range(BATCH)]
        api.get([g.ready() for g in groups])
        created.append(BATCH / (time.perf_counter() - start))
        start = time.perf_counter()
        for group in groups:
            util.remove_placement_group(group)
        _cpus_free(system, total)
        removed.append(BATCH / (time.perf_counter() - start))
    return statistics.median(created[1:]), statistics.median(removed[1:])


_batches: dict[int, tuple[float, float] | None] = {}


def _batch_once(system: Any, repeat: int) -> tuple[float, float] | None:
    key = id(system)
    if key not in _batches:
        _batches[key] = _batch(system, repeat)
    return _batches[key]


def pg_create_batch(system: Any, repeat: int = 3) -> Result | None:
    rates = _batch_once(system, repeat)
    return None if rates is None else (rates[0], "groups/s")


def pg_remove_batch(system: Any, repeat: int = 3) -> Result | None:
    rates = _batch_once(system, repeat)
    return None if rates is None else (rates[1], "groups/s")


PLACEMENT: dict[str, Callable[[Any], Result | None]] = {
    "pg_cycle_pack": pg_cycle_pack,
    "pg_cycle_strict_spread": pg_cycle_strict_spread,
    "pg_create_100": pg_create_batch,
    "pg_remove_100": pg_remove_batch,
}
