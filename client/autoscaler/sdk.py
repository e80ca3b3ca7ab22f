"""``ray.autoscaler.sdk``'s ``request_resources``, for programs written against Ray."""

from __future__ import annotations

from ember import connection
from ember.runtime.wire import resources
from ember.runtime.wire.protocol import ember_pb2 as pb


def request_resources(
    num_cpus: int | None = None, bundles: list[dict[str, float]] | None = None
) -> None:
    """Ask for room for ``num_cpus`` one-CPU bundles plus ``bundles``; replaces the last call."""
    if num_cpus is not None and (not isinstance(num_cpus, int) or num_cpus < 0):
        raise TypeError(f"request_resources: num_cpus must be a non-negative int, got {num_cpus!r}")
    wanted: list[dict[str, float]] = [{"CPU": 1.0}] * (num_cpus or 0)
    for bundle in bundles or []:
        if not isinstance(bundle, dict) or not bundle:
            raise TypeError(f"request_resources: each bundle is a non-empty dict, got {bundle!r}")
        for name, amount in bundle.items():
            if not isinstance(name, str) or not isinstance(amount, int | float) or amount < 0:
                raise ValueError(f"request_resources: bad amount {name!r}: {amount!r} in {bundle!r}")
        resources.to_fixed({k: float(v) for k, v in bundle.items()})  # rejects what cannot be held
        wanted.append({k: float(v) for k, v in bundle.items()})
    connection.head_call(
        "RequestResources", pb.ResourceRequest(bundles=[pb.ResourceSet(quantities=b) for b in wanted])
    )
