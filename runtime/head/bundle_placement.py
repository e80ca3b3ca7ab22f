"""Where a placement group's bundles go: a pure choice over the head's view of the nodes.

``choose`` assigns every bundle not yet placed to a node with it free now, by the group's
strategy, or returns None: a group is placed whole or not at all. ``infeasible`` says why no
node the cluster has, or an autoscaler may add, could ever hold the group ("" when some could,
once work ends or nodes join). The strategies are Ray's:

- ``STRICT_PACK``: every bundle on one node.
- ``PACK``: on as few nodes as possible (one if it fits), best-fit.
- ``SPREAD``: on distinct nodes where possible, least-loaded first.
- ``STRICT_SPREAD``: every bundle on a node of its own (a matching of bundles to nodes).

Bundles already placed (a group rescheduled after a node died) count: a ``STRICT_SPREAD``
group's new bundles avoid their nodes, a ``STRICT_PACK`` group's go to theirs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ember.runtime.wire import label_selector, resources

STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")


@dataclass(frozen=True)
class Candidate:
    """A node as placement sees it: what is free now, what it has in all, its labels."""

    node_id: bytes
    available: Mapping[str, int]
    total: Mapping[str, int]
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class NodeType:
    """A node an autoscaler may add: what it offers, and the labels it starts with."""

    shape: Mapping[str, int]
    labels: Mapping[str, str] = field(default_factory=dict)

    def could_hold(self, shape: Mapping[str, int], selector: Mapping[str, str]) -> bool:
        return resources.fits(shape, self.shape) and (
            not selector or label_selector.matches(selector, self.labels)
        )


@dataclass(frozen=True)
class Bundle:
    index: int
    shape: Mapping[str, int]
    selector: Mapping[str, str] = field(default_factory=dict)


def _allows(bundle: Bundle, node: Candidate) -> bool:
    return not bundle.selector or label_selector.matches(bundle.selector, node.labels)


def _fits(bundle: Bundle, free: Mapping[str, int], node: Candidate) -> bool:
    return _allows(bundle, node) and resources.fits(bundle.shape, free)


def _size(bundle: Bundle) -> tuple[int, int, int]:
    shape = bundle.shape
    return (shape.get("GPU", 0), shape.get("CPU", 0), sum(shape.values()))


def _left(free: Mapping[str, int], total: Mapping[str, int]) -> float:
    """How much of a node would stay free, as a fraction per resource summed (best fit: least)."""
    return sum(free.get(name, 0) / amount for name, amount in total.items() if amount > 0)


def choose(
    bundles: Sequence[Bundle],
    strategy: str,
    nodes: Sequence[Candidate],
    placed: Mapping[int, bytes] | None = None,
) -> dict[int, bytes] | None:
    """The node for each of ``bundles`` (those not placed yet), or None if the group cannot be
    completed now. ``placed`` maps the group's bundles already placed to their nodes."""
    placed = dict(placed or {})
    if not bundles:
        return {}
    free = {node.node_id: dict(node.available) for node in nodes}
    if strategy == "STRICT_PACK":
        return _strict_pack(bundles, nodes, free, placed)
    if strategy == "STRICT_SPREAD":
        return _strict_spread(bundles, nodes, free, placed)
    order = sorted(bundles, key=_size, reverse=True)
    if strategy == "PACK":
        together = _strict_pack(bundles, nodes, free, placed, strict=False)
        if together is not None:
            return together
    used: dict[bytes, int] = {}
    for node_id in placed.values():
        used[node_id] = used.get(node_id, 0) + 1
    chosen: dict[int, bytes] = {}
    for bundle in order:
        fitting = [n for n in nodes if _fits(bundle, free[n.node_id], n)]
        if not fitting:
            return None
        if strategy == "PACK":
            # Nodes the group is on first, then the tightest fit.
            best = min(fitting, key=lambda n: (
                -used.get(n.node_id, 0), _after(free[n.node_id], bundle.shape, n.total), n.node_id,
            ))
        else:  # SPREAD: nodes the group is not on first, then the least loaded
            best = min(fitting, key=lambda n: (
                used.get(n.node_id, 0), -_after(free[n.node_id], bundle.shape, n.total), n.node_id,
            ))
        chosen[bundle.index] = best.node_id
        resources.subtract(free[best.node_id], bundle.shape)
        used[best.node_id] = used.get(best.node_id, 0) + 1
    return chosen


def _after(free: Mapping[str, int], shape: Mapping[str, int], total: Mapping[str, int]) -> float:
    rest = dict(free)
    resources.subtract(rest, shape)
    return _left(rest, total)


def _strict_pack(
    bundles: Sequence[Bundle],
    nodes: Sequence[Candidate],
    free: Mapping[bytes, Mapping[str, int]],
    placed: Mapping[int, bytes],
    strict: bool = True,
) -> dict[int, bytes] | None:
    needed = resources.total(bundle.shape for bundle in bundles)
    homes = set(placed.values())
    if strict and len(homes) > 1:
        return None
    fitting = [
        n for n in nodes
        if (not strict or not homes or n.node_id in homes)
        and all(_allows(b, n) for b in bundles)
        and resources.fits(needed, free[n.node_id])
    ]
    if not fitting:
        return None
    best = min(fitting, key=lambda n: (
        n.node_id not in homes, _after(free[n.node_id], needed, n.total), n.node_id,
    ))
    return {bundle.index: best.node_id for bundle in bundles}


def _strict_spread(
    bundles: Sequence[Bundle],
    nodes: Sequence[Candidate],
    free: Mapping[bytes, Mapping[str, int]],
    placed: Mapping[int, bytes],
) -> dict[int, bytes] | None:
    taken = set(placed.values())
    # Least-loaded nodes first, so that the matching leaves the fullest ones for other work.
    open_nodes = sorted(
        (n for n in nodes if n.node_id not in taken),
        key=lambda n: (-_left(free[n.node_id], n.total), n.node_id),
    )
    edges = {
        bundle.index: [n.node_id for n in open_nodes if _fits(bundle, free[n.node_id], n)]
        for bundle in bundles
    }
    matched = _match(edges)
    if len(matched) < len(bundles):
        return None
    return matched


def _match(edges: Mapping[int, Sequence[bytes]]) -> dict[int, bytes]:
    """A maximum matching of bundles to distinct nodes (augmenting paths; groups are small)."""
    owner: dict[bytes, int] = {}

    def augment(index: int, seen: set[bytes]) -> bool:
        for node_id in edges[index]:
            if node_id in seen:
                continue
            seen.add(node_id)
            if node_id not in owner or augment(owner[node_id], seen):
                owner[node_id] = index
                return True
        return False

    for index in sorted(edges, key=lambda i: len(edges[i])):
        augment(index, set())
    return {index: node_id for node_id, index in owner.items()}


def infeasible(
    bundles: Sequence[Bundle],
    strategy: str,
    nodes: Sequence[Candidate],
    node_types: Sequence[NodeType] | None,
    placed: Mapping[int, bytes] | None = None,
) -> str:
    """Why no node the cluster has (``nodes``, by their totals) or an autoscaler may add
    (``node_types``; None: an autoscaler that has not said yet) could ever complete the group;
    "" when some could."""
    if node_types is None or not bundles:
        return ""
    placed = dict(placed or {})
    largest = max(nodes, key=lambda n: (n.total.get("CPU", 0), n.node_id), default=None)
    biggest = f"largest node: {resources.describe(largest.total)}" if largest else "no nodes"

    def new_node_fits(shape: Mapping[str, int], selector: Mapping[str, str]) -> bool:
        return any(node_type.could_hold(shape, selector) for node_type in node_types)

    for bundle in bundles:
        if not any(_fits(bundle, n.total, n) for n in nodes) and not new_node_fits(bundle.shape, bundle.selector):
            wanted = f" on a node with labels {label_selector.describe(bundle.selector)}" if bundle.selector else ""
            return (
                f"bundle {bundle.index} needs {resources.describe(bundle.shape)}{wanted}, but no "
                f"node can ever hold it ({biggest})"
            )
    if strategy == "STRICT_PACK":
        totals = {n.node_id: dict(n.total) for n in nodes}
        if _strict_pack(bundles, nodes, totals, placed) is None:
            needed = resources.total(b.shape for b in bundles)
            if placed or not new_node_fits(needed, _merged(bundles)):
                return (
                    f"STRICT_PACK puts every bundle on one node, and no node can ever hold "
                    f"{resources.describe(needed)} ({biggest})"
                )
    if strategy == "STRICT_SPREAD":
        # Bundles a new node can hold get one each; the others need distinct nodes of the
        # cluster's own.
        rest = [b for b in bundles if not new_node_fits(b.shape, b.selector)]
        totals = {n.node_id: dict(n.total) for n in nodes}
        if rest and _strict_spread(rest, nodes, totals, placed) is None:
            return (
                f"STRICT_SPREAD puts each bundle on a node of its own, and the cluster has no "
                f"{len(bundles)} distinct nodes that can each hold one"
                + (f" beside the {len(set(placed.values()))} it is already on" if placed else "")
            )
    return ""


def _merged(bundles: Sequence[Bundle]) -> dict[str, str]:
    merged: dict[str, str] = {}
    for bundle in bundles:
        merged.update(bundle.selector)
    return merged
