"""Where a task or actor may run: ``scheduling_strategy``, the placement group options and
``label_selector``, resolved once per ``.options()`` into what the owner sends.

A placement group strategy renames the work's resources to the group's bundle resources
(``bundle_resources.in_group``): that is all a node needs to grant it only inside the bundle.
Node affinity and label selectors travel beside the shape, in every lease request. The rules
are Ray's: work that names no strategy at all runs in its parent's group when the parent
captures its children (decided at submission, ``captured``); "DEFAULT", "SPREAD" and
``PlacementGroupSchedulingStrategy(None)`` never do.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from ember.runtime.core import context
from ember.runtime.core.task_record import ActorOptions, TaskOptions
from ember.runtime.wire import bundle_resources, label_selector, resources
from ember.runtime.wire.protocol import ember_pb2 as pb
from ember.runtime.wire.resources import Shape

STRATEGY_NAMES = ("DEFAULT", "SPREAD")
DEFAULT_GROUP = "default"  # the placement_group option's default: capture applies


@dataclass(frozen=True)
class Placement:
    shape: Shape
    hold: Shape | None
    strategy: str = "DEFAULT"
    placement_group: bytes = b""
    capture_child_tasks: bool = False
    may_capture: bool = False
    constraints: pb.SchedulingConstraints | None = None
    constraints_key: tuple[object, ...] = ()


def check_strategy(value: Any, what: str) -> None:
    """The ``scheduling_strategy`` option, checked where it is written."""
    from ember.util.placement_group import PlacementGroup
    from ember.util.scheduling_strategies import (
        NodeAffinitySchedulingStrategy,
        PlacementGroupSchedulingStrategy,
    )

    if value is None or value in STRATEGY_NAMES:
        return
    if isinstance(value, PlacementGroupSchedulingStrategy):
        group = value.placement_group
        if group is not None and not isinstance(group, PlacementGroup):
            raise ValueError(
                f"{what}: PlacementGroupSchedulingStrategy needs a PlacementGroup (or None), got "
                f"{type(group).__name__}"
            )
        index = value.placement_group_bundle_index
        if isinstance(index, bool) or not isinstance(index, int):
            raise ValueError(f"{what}: placement_group_bundle_index must be an int, got {index!r}")
        return
    if isinstance(value, NodeAffinitySchedulingStrategy):
        try:
            node_id = bytes.fromhex(value.node_id)
        except ValueError:
            node_id = b""
        if not node_id:
            raise ValueError(
                f"{what}: NodeAffinitySchedulingStrategy needs a node id in hex (as "
                f"ember.nodes() gives it), got {value.node_id!r}"
            )
        if value._spill_on_unavailable or value._fail_on_unavailable:
            raise ValueError(
                f"{what}: NodeAffinitySchedulingStrategy's _spill_on_unavailable and "
                f"_fail_on_unavailable are not supported"
            )
        return
    raise ValueError(
        f"{what}: scheduling_strategy must be 'DEFAULT', 'SPREAD', a "
        f"PlacementGroupSchedulingStrategy or a NodeAffinitySchedulingStrategy, got {value!r}"
    )


def resolve(options: Mapping[str, Any], shape: Shape, hold: Shape | None, what: str) -> Placement:
    """The placement of work with ``options``, whose resources are ``shape`` (to be placed)
    and ``hold`` (kept while it lives: actors; None: the shape)."""
    from ember.util.scheduling_strategies import (
        NodeAffinitySchedulingStrategy,
        PlacementGroupSchedulingStrategy,
    )

    strategy = options.get("scheduling_strategy")
    group: Any = options.get("placement_group", DEFAULT_GROUP)
    index = options.get("placement_group_bundle_index", -1)
    capture = options.get("placement_group_capture_child_tasks")
    constraints = pb.SchedulingConstraints()
    name = "DEFAULT"
    if isinstance(strategy, NodeAffinitySchedulingStrategy):
        constraints.node_affinity = bytes.fromhex(strategy.node_id)
        constraints.soft = bool(strategy.soft)
        group = None
    elif isinstance(strategy, str):
        name = strategy
        group = None
    elif isinstance(strategy, PlacementGroupSchedulingStrategy):
        group = strategy.placement_group
        index = strategy.placement_group_bundle_index
        capture = strategy.placement_group_capture_child_tasks
    if group is not None and group != DEFAULT_GROUP and not is_group(group):
        raise ValueError(f"{what}: placement_group must be a PlacementGroup, got {type(group).__name__}")
    may_capture = group == DEFAULT_GROUP
    if options.get("label_selector"):
        constraints.label_selector.update(label_selector.check(options["label_selector"], f"{what}: label_selector"))
    placement = Placement(
        shape=shape, hold=hold, strategy=name, may_capture=may_capture,
        capture_child_tasks=bool(capture),
    )
    if group is not None and group != DEFAULT_GROUP and not group.is_empty:
        placement = _in_group(placement, group, index, what)
    elif index != -1:
        raise ValueError(
            f"{what}: placement_group_bundle_index={index} needs a placement group (it must be -1 "
            f"without one)"
        )
    if constraints.node_affinity or constraints.label_selector:
        key = (constraints.node_affinity, constraints.soft, tuple(sorted(constraints.label_selector.items())))
        placement = dataclasses.replace(placement, constraints=constraints, constraints_key=key)
    return placement


def is_group(value: Any) -> bool:
    from ember.util.placement_group import PlacementGroup

    return isinstance(value, PlacementGroup)


def _in_group(placement: Placement, group: Any, index: int, what: str) -> Placement:
    """The placement inside ``group``'s bundle ``index`` (-1: any), checked against its bundles."""
    bundles = group.bundle_specs
    described = f"placement group {group.id.hex()[:12]}"
    if index < -1 or index >= len(bundles):
        raise ValueError(
            f"{what}: bundle index {index} is invalid for {described}, which has "
            f"{len(bundles)} bundle{'s' if len(bundles) != 1 else ''} (valid: -1 to {len(bundles) - 1})"
        )
    reserved = [resources.to_fixed(b) for b in bundles]
    candidates = [reserved[index]] if index >= 0 else reserved
    for needed, kind in ((placement.shape, "it needs"), (placement.hold, "it keeps")):
        if needed is not None and not any(resources.fits(needed, b) for b in candidates):
            where = f"bundle {index} reserves" if index >= 0 else "its bundles reserve"
            raise ValueError(
                f"{what} cannot run in {described}: {kind} {resources.describe(needed)}, but "
                f"{where} {', '.join(resources.describe(b) for b in candidates)}"
            )
    return _converted(placement, group.id.binary(), index, placement.capture_child_tasks)


def _converted(placement: Placement, group_id: bytes, index: int, capture: bool) -> Placement:
    group_hex = group_id.hex()
    return dataclasses.replace(
        placement,
        shape=bundle_resources.in_group(placement.shape, group_hex, index),
        hold=bundle_resources.in_group(placement.hold, group_hex, index) if placement.hold is not None else None,
        placement_group=group_id,
        capture_child_tasks=capture,
        may_capture=False,
    )


Options = TypeVar("Options", TaskOptions, ActorOptions)


def captured(options: Options) -> Options:
    """``options`` as the running task or actor's captured child: in its placement group (any
    bundle) when it captures its children and the work named no strategy; unchanged otherwise."""
    if not options.may_capture or not context.capturing:
        return options
    group_id, capture = context.current_placement_group()
    if not group_id or not capture:
        return options
    group_hex = group_id.hex()
    changes: dict[str, Any] = {
        "shape": bundle_resources.in_group(options.shape, group_hex, -1),
        "placement_group": group_id,
        "capture_child_tasks": True,
        "may_capture": False,
    }
    if isinstance(options, TaskOptions):
        changes["key"] = resources.key_of(changes["shape"])
    else:
        changes["hold"] = bundle_resources.in_group(options.hold, group_hex, -1)
    return dataclasses.replace(options, **changes)
