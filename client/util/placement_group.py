"""``ember.util.placement_group``: Ray's placement groups, with Ray's names and meanings.

    pg = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="STRICT_SPREAD")
    ember.get(pg.ready())
    f.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg, 0)).remote()
    remove_placement_group(pg)

A group reserves bundles of resources on nodes, all of them or none, and work scheduled in it
runs in its bundles. The head places it in the background (``runtime/head/placement_groups``);
creating one returns at once, and ``pg.ready()`` is an ObjectRef that resolves to the group when
every bundle is reserved. Unlike Ray, ``ready()`` fails (``PlacementGroupError``, naming the
bundle) when no node the cluster has or may add can ever hold the group, instead of waiting
forever; the group itself waits on, in case a node that fits joins.
"""

from __future__ import annotations

import numbers
from typing import Any

from ember.runtime.core import context
from ember.runtime.core.owner import Owner
from ember.runtime.objects import ids, serialization
from ember.runtime.objects.object_ref import ObjectRef
from ember.runtime.wire import label_selector
from ember.runtime.wire.protocol import ember_pb2 as pb

STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")
_STATES = {
    pb.PG_PENDING: "PENDING",
    pb.PG_CREATED: "CREATED",
    pb.PG_REMOVED: "REMOVED",
    pb.PG_RESCHEDULING: "RESCHEDULING",
}


def _core() -> Owner:
    core = context.current_core()
    if core is None:
        from ember.connection import auto_init

        core = auto_init()
    return core


class PlacementGroupID:
    """A placement group's id, as Ray's: ``hex()``, ``binary()``, ``is_nil()``."""

    __slots__ = ("_binary",)

    def __init__(self, binary: bytes) -> None:
        self._binary = bytes(binary)

    @classmethod
    def nil(cls) -> PlacementGroupID:
        return cls(b"")

    @classmethod
    def from_hex(cls, value: str) -> PlacementGroupID:
        return cls(bytes.fromhex(value))

    def binary(self) -> bytes:
        return self._binary

    def hex(self) -> str:
        return self._binary.hex()

    def is_nil(self) -> bool:
        return not any(self._binary)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PlacementGroupID) and other._binary == self._binary

    def __hash__(self) -> int:
        return hash(self._binary)

    def __repr__(self) -> str:
        return f"PlacementGroupID({self.hex()})"


class PlacementGroup:
    """A handle to a placement group. Pickles to its id (and bundles), so tasks can use it."""

    def __init__(self, id: PlacementGroupID, bundle_cache: list[dict[str, float]] | None = None) -> None:
        self.id = id
        self.bundle_cache = bundle_cache

    @staticmethod
    def empty() -> PlacementGroup:
        return PlacementGroup(PlacementGroupID.nil())

    @property
    def is_empty(self) -> bool:
        return self.id.is_nil()

    def ready(self) -> ObjectRef:
        """An ObjectRef that resolves to this group once every bundle is reserved."""
        if self.is_empty:
            return _core().put(self)
        data, _ = serialization.dumps(self)
        return _core().placement_groups.ready(self.id.binary(), data)

    def wait(self, timeout_seconds: float = 30) -> bool:
        """True if the group is created within ``timeout_seconds``."""
        if self.is_empty:
            return True
        return _core().placement_groups.wait(self.id.binary(), float(timeout_seconds))

    @property
    def bundle_specs(self) -> list[dict[str, float]]:
        self._fill_bundle_cache()
        return list(self.bundle_cache or [])

    @property
    def bundle_count(self) -> int:
        return len(self.bundle_specs)

    def _fill_bundle_cache(self) -> None:
        if not self.bundle_cache and not self.is_empty:
            info = _info(pb.PlacementGroupRequest(placement_group_id=self.id.binary()))
            if info is None:
                raise ValueError(f"placement group {self.id.hex()} does not exist in this cluster")
            self.bundle_cache = [dict(b.quantities) for b in info.spec.bundles]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PlacementGroup) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self.id.binary(), self.bundle_cache))

    def __repr__(self) -> str:
        return f"PlacementGroup({self.id.hex()})"


def _rebuild(binary: bytes, bundle_cache: list[dict[str, float]] | None) -> PlacementGroup:
    return PlacementGroup(PlacementGroupID(binary), bundle_cache)


def _info(request: pb.PlacementGroupRequest) -> pb.PlacementGroupInfo | None:
    return _core().placement_groups.info(request)


def _check_bundles(bundles: Any) -> list[dict[str, float]]:
    if not isinstance(bundles, list):
        raise ValueError(f"placement group bundles must be a list of dicts, got {type(bundles).__name__}")
    if not bundles:
        raise ValueError(
            'placement group bundles must be a non-empty list of resource dicts, e.g. '
            '[{"CPU": 1}, {"GPU": 1}]; got an empty list'
        )
    checked = []
    for index, bundle in enumerate(bundles):
        if not isinstance(bundle, dict) or not bundle:
            raise ValueError(f"placement group bundle {index} must be a non-empty dict of resources, got {bundle!r}")
        for name, amount in bundle.items():
            if not isinstance(name, str):
                raise ValueError(f"placement group bundle {index}: resource names must be strings, got {name!r}")
            if isinstance(amount, bool) or not isinstance(amount, numbers.Real) or amount < 0:
                raise ValueError(
                    f"placement group bundle {index}: {name} must be a number >= 0, got {amount!r}"
                )
            if "_group_" in name:
                raise ValueError(
                    f"placement group bundle {index}: {name!r} is a placement group's own resource name"
                )
        if all(amount == 0 for amount in bundle.values()):
            raise ValueError(
                f"placement group bundle {index} reserves nothing ({bundle!r}): bundles cannot be "
                f"empty or all zeros"
            )
        checked.append({name: float(amount) for name, amount in bundle.items() if amount})
    return checked


def placement_group(
    bundles: list[dict[str, float]],
    strategy: str = "PACK",
    name: str = "",
    lifetime: str | None = None,
    _soft_target_node_id: str | None = None,
    bundle_label_selector: list[dict[str, str]] | None = None,
    topology_strategy: dict[str, str] | None = None,
) -> PlacementGroup:
    """Create a placement group of ``bundles`` placed by ``strategy`` (PACK, SPREAD,
    STRICT_PACK, STRICT_SPREAD); returns at once, use ``ready()`` or ``wait()``."""
    checked = _check_bundles(bundles)
    if strategy not in STRATEGIES:
        raise ValueError(
            f"invalid placement group strategy {strategy!r}; supported strategies are "
            f"{', '.join(STRATEGIES)}"
        )
    if lifetime not in (None, "detached"):
        raise ValueError(f"placement group lifetime must be None or 'detached', got {lifetime!r}")
    if not isinstance(name, str):
        raise ValueError(f"placement group name must be a string, got {type(name).__name__}")
    if _soft_target_node_id is not None:
        raise ValueError("placement_group: _soft_target_node_id is not supported by ember")
    if topology_strategy is not None:
        raise ValueError(
            "placement_group: topology_strategy is not supported by ember; use strategy= (and "
            "bundle_label_selector to keep bundles to nodes with a label)"
        )
    selectors = []
    if bundle_label_selector:
        if not isinstance(bundle_label_selector, list) or len(bundle_label_selector) != len(checked):
            raise ValueError(
                f"bundle_label_selector must be a list with one selector per bundle "
                f"({len(checked)}), got {bundle_label_selector!r}"
            )
        selectors = [
            pb.LabelSelector(conditions=label_selector.check(s, f"bundle_label_selector[{i}]"))
            for i, s in enumerate(bundle_label_selector)
        ]
    core = _core()
    group_id = ids.random_id()
    core.placement_groups.create(pb.PlacementGroupSpec(
        placement_group_id=group_id,
        name=name,
        namespace=core.job_config.namespace,
        strategy=strategy,
        bundles=[pb.ResourceSet(quantities=b) for b in checked],
        bundle_label_selector=selectors,
        detached=lifetime == "detached",
        job_id=core.job_id,
        creator_address=core.address,
    ))
    return PlacementGroup(PlacementGroupID(group_id), checked)


def remove_placement_group(placement_group: PlacementGroup) -> None:
    """Remove the group: its bundles are given back, and the tasks and actors in it die."""
    if not isinstance(placement_group, PlacementGroup):
        raise ValueError(
            f"remove_placement_group expects a PlacementGroup, got {type(placement_group).__name__}"
        )
    if not placement_group.is_empty:
        _core().placement_groups.remove(placement_group.id.binary())


def get_placement_group(placement_group_name: str) -> PlacementGroup:
    """The group of that name in this job's namespace."""
    if not placement_group_name:
        raise ValueError("get_placement_group needs the group's name")
    core = _core()
    info = _info(pb.PlacementGroupRequest(name=placement_group_name, namespace=core.job_config.namespace))
    if info is None or info.state == pb.PG_REMOVED:
        raise ValueError(
            f"Failed to look up placement group with name: {placement_group_name} "
            f"(namespace '{core.job_config.namespace}')"
        )
    return PlacementGroup(
        PlacementGroupID(info.spec.placement_group_id), [dict(b.quantities) for b in info.spec.bundles]
    )


def table_entry(info: pb.PlacementGroupInfo) -> dict[str, Any]:
    """One group as Ray's ``placement_group_table`` shows it (plus what ember knows more)."""
    spec = info.spec
    return {
        "placement_group_id": spec.placement_group_id.hex(),
        "name": spec.name,
        "namespace": spec.namespace,
        "bundles": {i: dict(b.quantities) for i, b in enumerate(spec.bundles)},
        "bundles_to_node_id": {i: node.hex() for i, node in enumerate(info.bundle_nodes)},
        "strategy": spec.strategy,
        "state": _STATES.get(info.state, "PENDING"),
        "is_detached": spec.detached,
        "creator_job_id": spec.job_id.hex(),
        "waiting_for": info.waiting_for,
        "removal_reason": info.removal_reason,
        "stats": {
            "end_to_end_creation_latency_ms": info.creation_seconds * 1000.0,
            "scheduling_attempt": info.scheduling_attempts,
            "scheduling_state": info.scheduling_state,
        },
    }


def placement_group_table(placement_group: PlacementGroup | None = None) -> dict[str, Any]:
    """The head's record of one group, or of every group by id (removed ones included)."""
    if placement_group is not None:
        info = _info(pb.PlacementGroupRequest(placement_group_id=placement_group.id.binary()))
        return table_entry(info) if info is not None else {}
    listed = _core().placement_groups.list()
    return {entry["placement_group_id"]: entry for entry in map(table_entry, listed.groups)}


def get_current_placement_group() -> PlacementGroup | None:
    """The group the calling task or actor runs in; None in a driver or outside any group."""
    if context.current_core() is None:
        return None
    group_id, _ = context.current_placement_group()
    return PlacementGroup(PlacementGroupID(group_id)) if group_id else None
