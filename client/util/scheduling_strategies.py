"""``ember.util.scheduling_strategies``: Ray's scheduling strategy objects, for ``.options()``.

    f.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg, 0)).remote()
    f.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False)).remote()

Besides these, ``scheduling_strategy`` takes "DEFAULT" (the node with the task's arguments, or
the caller's; it also stops a task from running in its parent's placement group) and "SPREAD".
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ember.util.placement_group import PlacementGroup


class PlacementGroupSchedulingStrategy:
    """Run in ``placement_group``'s bundle ``placement_group_bundle_index`` (-1: any bundle
    with room); with ``placement_group_capture_child_tasks``, what the task or actor submits
    without a strategy of its own runs in the group too. ``placement_group=None`` runs the work
    outside any group (the way out of a parent's capture)."""

    def __init__(
        self,
        placement_group: PlacementGroup | None,
        placement_group_bundle_index: int = -1,
        placement_group_capture_child_tasks: bool | None = None,
    ) -> None:
        self.placement_group = placement_group
        self.placement_group_bundle_index = placement_group_bundle_index
        self.placement_group_capture_child_tasks = placement_group_capture_child_tasks

    def __repr__(self) -> str:
        return (
            f"PlacementGroupSchedulingStrategy({self.placement_group!r}, "
            f"bundle_index={self.placement_group_bundle_index}, "
            f"capture_child_tasks={self.placement_group_capture_child_tasks})"
        )


class NodeAffinitySchedulingStrategy:
    """Run on the node ``node_id`` (its hex id, as ``ember.nodes()`` and
    ``get_runtime_context().get_node_id()`` give it). With ``soft=False`` the work fails if that
    node is gone or can never hold it; with ``soft=True`` it runs elsewhere then. While the node
    is alive and could hold it, the work waits for room there either way."""

    def __init__(
        self,
        node_id: str,
        soft: bool,
        _spill_on_unavailable: bool = False,
        _fail_on_unavailable: bool = False,
    ) -> None:
        if not isinstance(node_id, str):
            node_id = node_id.hex()
        self.node_id = node_id
        self.soft = soft
        self._spill_on_unavailable = _spill_on_unavailable
        self._fail_on_unavailable = _fail_on_unavailable

    def __repr__(self) -> str:
        return f"NodeAffinitySchedulingStrategy(node_id={self.node_id}, soft={self.soft})"
