"""Where the head sends work a node will not take: a node with room for its shape, that its
node affinity and label selector allow, where the placement group it runs in has its bundles.

Node agents ask (``FindNode``) when a lease request cannot be granted where it arrived, and the
head's actor directory asks for each actor it places. The answer is a node, or "wait" (no node
has room now, but one could: work ends, a placement group is being placed, an autoscaler may
add a node), or the reason no node ever can, naming the group, bundle, node or labels at fault.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ember.runtime.head.bundle_placement import NodeType
from ember.runtime.head.membership import NodeState
from ember.runtime.head.placement_group_record import PENDING
from ember.runtime.head.placement_groups import PlacementGroups
from ember.runtime.wire import bundle_resources, label_selector, resources
from ember.runtime.wire.protocol import ember_pb2 as pb
from ember.runtime.wire.resources import Shape


class Drains(Protocol):
    def could_hold(self, shape: Shape) -> bool: ...


class Nodes(Protocol):
    """What choosing needs of the head: its nodes, drains, and what an autoscaler may add."""

    nodes: dict[bytes, NodeState]
    node_types: list[NodeType] | None
    drains: Drains

    def alive_nodes(self) -> list[NodeState]: ...


@dataclass
class Choice:
    node: NodeState | None = None
    wait: bool = False  # no node now, but one could come: ask again
    reason: str = ""  # neither: why no node ever can


class LeasePlacement:
    def __init__(self, head: Nodes, groups: PlacementGroups) -> None:
        self.head = head
        self.groups = groups

    def choose(
        self,
        shape: Shape,
        constraints: pb.SchedulingConstraints | None = None,
        exclude: bytes = b"",
        free_only: bool = False,
    ) -> Choice:
        """The node to send work of ``shape`` to: one with it free, else (unless
        ``free_only``) one that holds it when idle; or wait; or why not."""
        in_groups = bundle_resources.groups_of(shape)
        for group_hex in in_groups:
            refused = self._group_refuses(group_hex)
            if refused:
                return Choice(reason=refused)
        selector = dict(constraints.label_selector) if constraints is not None else {}
        affinity = constraints.node_affinity if constraints is not None else b""
        candidates = [n for n in self.head.alive_nodes() if n.node_id != exclude and n.drain is None]
        if affinity:
            target = self.head.nodes.get(affinity)
            trouble = _affinity_trouble(affinity, target, shape)
            if not trouble and target is not None:
                candidates = [target]
            elif not constraints.soft:  # type: ignore[union-attr]
                return Choice(reason=trouble)
        if selector:
            candidates = [n for n in candidates if label_selector.matches(selector, n.info.labels)]
        feasible = [n for n in candidates if resources.fits(shape, n.capacity())]
        free = [n for n in feasible if resources.fits(shape, n.available)]
        chosen = free or ([] if free_only else feasible)
        if chosen:
            return Choice(node=max(chosen, key=lambda n: n.available.get("CPU", 0)))
        if feasible or (in_groups and self._group_could_hold(shape)):
            return Choice(wait=True)
        if not in_groups and self.could_hold_later(shape, selector):
            return Choice(wait=True)
        return Choice(reason=self._why_not(shape, selector, in_groups))

    def _group_refuses(self, group_hex: str) -> str:
        record = self.groups.group_of(group_hex)
        if record is None:
            return (
                f"it runs in placement group {group_hex[:12]}, which this cluster does not know "
                f"(removed long ago, or made for another cluster)"
            )
        if record.state == pb.PG_REMOVED:
            return f"{record.describe()} was removed ({record.info.removal_reason})"
        if record.state in PENDING and record.info.infeasible:
            return f"{record.describe()} cannot be placed: {record.info.waiting_for}"
        return ""

    def _group_could_hold(self, shape: Shape) -> bool:
        """A group is being placed, or its bundle is on a node that is draining or asked: the
        work waits for where the bundle will be. Not when no bundle could ever hold it."""
        for group_hex in bundle_resources.groups_of(shape):
            record = self.groups.group_of(group_hex)
            if record is not None and (record.state in PENDING or record.unconfirmed):
                # Being placed, or (after a head restart) its nodes have yet to list it.
                return self._fits_a_bundle(shape, record.bundles, group_hex)
        return any(
            resources.fits(shape, node.capacity()) for node in self.head.alive_nodes()
        )

    @staticmethod
    def _fits_a_bundle(shape: Shape, bundles: list[Shape], group_hex: str) -> bool:
        return any(
            resources.fits(shape, bundle_resources.committed(bundle, group_hex, index))
            for index, bundle in enumerate(bundles)
        )

    def could_hold_later(self, shape: Shape, selector: dict[str, str] | None = None) -> bool:
        """No live node can take the shape now, but a node could, after a drain ends or once
        an autoscaler adds one (of a type whose labels the selector allows): the work waits
        (and shows as demand) rather than failing."""
        head = self.head
        if head.node_types is None:
            return True
        if any(node_type.could_hold(shape, selector or {}) for node_type in head.node_types):
            return True
        if selector:
            return any(
                n.drain is not None and resources.fits(shape, n.capacity())
                and label_selector.matches(selector, n.info.labels)
                for n in head.alive_nodes()
            )
        return head.drains.could_hold(shape)

    def largest_node(self) -> str:
        largest = max(self.head.alive_nodes(), key=lambda n: n.total.get("CPU", 0), default=None)
        return resources.describe(largest.total) if largest else "no nodes"

    def _why_not(self, shape: Shape, selector: dict[str, str], in_groups: set[str]) -> str:
        needs = bundle_resources.describe(shape)
        if in_groups:
            record = self.groups.group_of(next(iter(in_groups)))
            reserved = (
                ", ".join(resources.describe(b) for b in record.bundles) if record is not None else "?"
            )
            return f"it needs {needs}, more than the group's bundles reserve ({reserved})"
        if selector:
            matching = [
                n for n in self.head.alive_nodes()
                if label_selector.matches(selector, n.info.labels)
            ]
            if not matching:
                return (
                    f"no node of the cluster has labels matching {label_selector.describe(selector)}"
                )
            largest = max(matching, key=lambda n: n.total.get("CPU", 0))
            return (
                f"it needs {needs}, but no node with labels matching "
                f"{label_selector.describe(selector)} has that much (largest: "
                f"{resources.describe(largest.total)})"
            )
        return (
            f"it needs {needs}, but no node of the cluster has that much "
            f"(largest node: {self.largest_node()})"
        )


def _affinity_trouble(node_id: bytes, node: NodeState | None, shape: Shape) -> str:
    """Why the node an affinity names cannot take the work ("" when it can, now or later)."""
    if node is None:
        return f"its node affinity names node {node_id.hex()}, which is not in the cluster"
    if not node.alive:
        return f"its node affinity names {node.describe()}, which died: {node.death_cause}"
    if node.drain is not None:
        return f"its node affinity names {node.describe()}, which is being drained"
    if not resources.fits(shape, node.capacity()):
        return (
            f"its node affinity names {node.describe()}, which can never hold "
            f"{bundle_resources.describe(shape)} (it has {resources.describe(node.total)})"
        )
    return ""
