"""The autoscaling policy: how many workers each group should have, and which ones to remove.

A pure function of what the head reports (demand, the live nodes with their free capacity and
idle time) and of the worker groups (node shape, min, max, the workers they have). The
Kubernetes operator and the local provider both apply its plan; it never talks to anything, so
it is tested on its own, properties included.

Scale up: the demand is first fitted onto the free capacity of live nodes, then onto nodes
still starting, and what is left onto new nodes, largest bundles first (first-fit decreasing).
A new node comes from the group that fits a bundle with the least waste, and never from a group
with GPUs for a bundle that needs none while a group without GPUs fits it. Work with a label
selector goes only to nodes, and new nodes only of groups, whose labels it allows. Launches are
capped at ``max(5, speed × running)`` nodes starting at once (``upscalingMode``).

Placement groups waiting for room are gangs: a group's bundles are placed all at once or not at
all, by the group's strategy (``STRICT_SPREAD``: a node each; ``STRICT_PACK``: one node for all;
``PACK`` and ``SPREAD``: as they fit). Nodes are added for a gang only if the whole gang then
fits, and a gang may start more nodes at once than the upscaling speed allows otherwise (half a
gang would be of no use).

Scale down: only nodes idle for ``idle_timeout`` seconds (nothing runs there, no actor, no
object only it holds — the head says so), never below a group's minimum, and never a node the
demand needs. The operator drains them before deleting them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ember.runtime.wire import label_selector

Shape = Mapping[str, float]
Labels = Mapping[str, str]

# How many nodes may be starting at once, as a multiple of the nodes already running.
SPEEDS = {"Conservative": 1.0, "Default": 2.0, "Aggressive": math.inf}
MIN_LAUNCH_BURST = 5
EPSILON = 1e-9


@dataclass(frozen=True)
class WorkerGroup:
    name: str
    shape: Shape  # what one node of the group offers: CPU, GPU, memory, custom resources
    min_replicas: int
    max_replicas: int
    workers: tuple[str, ...] = ()  # the group's workers, running or starting
    labels: Labels = field(default_factory=dict)  # the node labels its nodes start with


@dataclass(frozen=True)
class Node:
    """A live node as the head reports it; ``name`` is the worker it runs on."""

    name: str
    group: str
    available: Shape
    idle_seconds: float  # 0 while busy
    starting: bool = False  # a worker created but not (yet) a live node
    total: Shape = field(default_factory=dict)  # what it offers in all (default: its group's)
    labels: Labels = field(default_factory=dict)  # its node labels (default: its group's)


@dataclass(frozen=True)
class Want:
    """Work waiting for a node: its shape, and the labels it needs of one (label selector)."""

    shape: Shape
    selector: Labels = field(default_factory=dict)


@dataclass(frozen=True)
class Gang:
    """A placement group waiting for room: its bundles not placed yet, its strategy, and the
    label selector of each bundle (if any)."""

    bundles: tuple[Shape, ...]
    strategy: str = "PACK"
    selectors: tuple[Labels, ...] = ()


@dataclass(frozen=True)
class Plan:
    replicas: dict[str, int]  # desired workers per group
    remove: dict[str, tuple[str, ...]] = field(default_factory=dict)  # which, per group
    unplaceable: tuple[Shape, ...] = ()  # bundles no group can ever hold

    def changes(self, groups: Sequence[WorkerGroup]) -> bool:
        current = {g.name: len(g.workers) for g in groups}
        return self.replicas != current or any(self.remove.values())


@dataclass
class _Spot:
    """Room for demand on one node: live, starting, or to be added."""

    name: str
    group: str
    room: dict[str, float]
    labels: Labels


def _fits(bundle: Shape, free: Shape) -> bool:
    return all(free.get(name, 0.0) + EPSILON >= amount for name, amount in bundle.items() if amount > 0)


def _allows(selector: Labels, labels: Labels) -> bool:
    return not selector or label_selector.matches(selector, labels)


def _take(bundle: Shape, free: dict[str, float]) -> None:
    for name, amount in bundle.items():
        free[name] = free.get(name, 0.0) - amount


def _size(bundle: Shape) -> tuple[float, ...]:
    """Largest first: GPUs, then CPUs, then everything else summed."""
    return (
        bundle.get("GPU", 0.0),
        bundle.get("CPU", 0.0),
        sum(v for k, v in bundle.items() if k not in ("GPU", "CPU")),
    )


def _sum(bundles: Iterable[Shape]) -> dict[str, float]:
    total: dict[str, float] = {}
    for bundle in bundles:
        for name, amount in bundle.items():
            total[name] = total.get(name, 0.0) + amount
    return total


def _never(gang: Gang, groups: Sequence[WorkerGroup], nodes: Sequence[Node]) -> bool:
    """A STRICT_SPREAD gang needs more distinct nodes than the groups can ever have."""
    if gang.strategy != "STRICT_SPREAD":
        return False
    most = sum(g.max_replicas for g in groups)
    extra = sum(1 for n in nodes if n.group not in {g.name for g in groups})
    return len(gang.bundles) > most + extra


def _waste(bundle: Shape, shape: Shape) -> tuple[int, float]:
    gpu_for_nothing = int(shape.get("GPU", 0.0) > 0 and bundle.get("GPU", 0.0) <= 0)
    left = sum(max(0.0, shape.get(k, 0.0) - bundle.get(k, 0.0)) / max(shape.get(k, 1.0), 1.0) for k in shape)
    return gpu_for_nothing, left


def _wants(demand: Iterable[Shape | Want]) -> list[Want]:
    return [item if isinstance(item, Want) else Want(item) for item in demand]


def plan(
    groups: Sequence[WorkerGroup],
    nodes: Iterable[Node],
    demand: Iterable[Shape | Want],
    idle_timeout: float,
    upscaling_mode: str = "Default",
    requested: Iterable[Shape] = (),
    gangs: Iterable[Gang] = (),
) -> Plan:
    """Desired replicas per group and the workers to remove; see the module's docstring.

    ``demand`` is work waiting now (shapes, or ``Want`` with a label selector), fitted onto
    free capacity; ``requested`` is capacity a program asked for (``request_resources``),
    fitted onto what the nodes offer in all; ``gangs`` are placement groups waiting, each
    fitted whole onto free capacity or not at all.
    """
    nodes = list(nodes)
    by_group = {g.name: g for g in groups}
    replicas = {g.name: max(len(g.workers), g.min_replicas) for g in groups}
    replicas = {name: min(count, by_group[name].max_replicas) for name, count in replicas.items()}

    def labels_of(node: Node) -> Labels:
        group = by_group.get(node.group)
        return node.labels or (group.labels if group is not None else {})

    # Capacity there is, or will be: live nodes' free room, nodes starting, nodes added below.
    free: list[_Spot] = [
        _Spot(n.name, n.group, dict(n.available), labels_of(n)) for n in nodes if not n.starting
    ]
    live = {n.name for n in nodes if not n.starting}
    for group in groups:
        for worker in group.workers:
            if worker not in live:
                free.append(_Spot(worker, group.name, dict(group.shape), group.labels))
        for extra in range(replicas[group.name] - len(group.workers)):  # raised to the minimum
            free.append(_Spot(f"{group.name}/min-{extra}", group.name, dict(group.shape), group.labels))

    running = len(live)
    starting = sum(1 for g in groups for w in g.workers if w not in live) + sum(
        replicas[g.name] - len(g.workers) for g in groups
    )
    speed = SPEEDS.get(upscaling_mode, SPEEDS["Default"])
    launch_budget = max(MIN_LAUNCH_BURST, speed * running) - starting

    needed: set[str] = set()  # nodes the demand is placed on: never removed
    unplaceable: list[Shape] = []
    added = 0

    def groups_for(bundle: Shape, selector: Labels) -> list[WorkerGroup]:
        return [g for g in groups if _fits(bundle, g.shape) and _allows(selector, g.labels)]

    def new_spot(group: WorkerGroup, counts: dict[str, int], bundle: Shape) -> _Spot:
        counts[group.name] += 1
        room = dict(group.shape)
        _take(bundle, room)
        return _Spot(f"{group.name}/new-{counts[group.name]}", group.name, room, group.labels)

    def place(wants: Iterable[Want], capacity: list[_Spot]) -> None:
        """First fit, in O(shapes × spots + wants): room only shrinks during a decision and new
        spots are appended, so a spot that could not take a shape never can later; each shape
        resumes its search where its last one ended (a scan per want was O(wants × spots): 16 s
        for 6,400 tasks at 1,000 nodes)."""
        nonlocal added
        cursor: dict[tuple[object, ...], int] = {}  # by shape and selector: spots before it are full
        for want in sorted(wants, key=lambda w: _size(w.shape), reverse=True):
            bundle = want.shape
            if not any(v > 0 for v in bundle.values()):
                continue
            key = (tuple(sorted(bundle.items())), tuple(sorted(want.selector.items())))
            index = cursor.get(key, 0)
            while index < len(capacity) and not (
                _fits(bundle, capacity[index].room) and _allows(want.selector, capacity[index].labels)
            ):
                index += 1
            cursor[key] = index
            if index < len(capacity):
                spot = capacity[index]
                _take(bundle, spot.room)
                needed.add(spot.name)
                continue
            fitting = groups_for(bundle, want.selector)
            candidates = [g for g in fitting if replicas[g.name] < g.max_replicas]
            if not candidates:
                if not fitting:
                    unplaceable.append(bundle)
                continue  # every group that fits is at its maximum
            if added >= launch_budget:
                continue  # the rest waits for the next round
            group = min(candidates, key=lambda g: (_waste(bundle, g.shape), g.name))
            added += 1
            spot = new_spot(group, replicas, bundle)
            capacity.append(spot)
            needed.add(spot.name)

    # Requested capacity counts against what nodes offer in all, used or not.
    totals = [
        _Spot(n.name, n.group, dict(n.total or by_group[n.group].shape), labels_of(n))
        for n in nodes
        if n.group in by_group
    ]
    known = {spot.name for spot in totals}
    totals += [_Spot(s.name, s.group, dict(s.room), s.labels) for s in free if s.name not in known]
    place(_wants(requested), totals)
    # New nodes added for the request are free capacity for the waiting work too.
    free += [
        _Spot(s.name, s.group, dict(by_group[s.group].shape), s.labels) for s in totals if "/new-" in s.name
    ]

    def place_gang(gang: Gang) -> None:
        """All of the gang's bundles onto capacity (new nodes if need be), or none of them."""
        nonlocal added, free
        trial = [_Spot(s.name, s.group, dict(s.room), s.labels) for s in free]
        trial_replicas = dict(replicas)
        trial_added = added
        used: list[str] = []
        selectors = list(gang.selectors) or [{} for _ in gang.bundles]
        wants = [Want(b, selectors[i] if i < len(selectors) else {}) for i, b in enumerate(gang.bundles)]
        if gang.strategy == "STRICT_PACK":
            merged: dict[str, str] = {}
            for want in wants:
                merged.update(want.selector)
            wants = [Want(_sum(w.shape for w in wants), merged)]
        for want in sorted(wants, key=lambda w: _size(w.shape), reverse=True):
            bundle = want.shape
            if not any(v > 0 for v in bundle.values()):
                continue
            fitting_spots = [s for s in trial if _fits(bundle, s.room) and _allows(want.selector, s.labels)]
            if gang.strategy == "STRICT_SPREAD":
                fitting_spots = [s for s in fitting_spots if s.name not in used]
            elif gang.strategy == "SPREAD":
                fitting_spots.sort(key=lambda s: s.name in used)
            elif gang.strategy == "PACK":
                fitting_spots.sort(key=lambda s: s.name not in used)
            if fitting_spots:
                spot = fitting_spots[0]
                _take(bundle, spot.room)
                used.append(spot.name)
                continue
            fitting = groups_for(bundle, want.selector)
            candidates = [g for g in fitting if trial_replicas[g.name] < g.max_replicas]
            if not candidates:
                if not fitting or _never(gang, groups, nodes):
                    unplaceable.extend(gang.bundles)
                return  # every group that fits is at its maximum: the gang waits whole
            if trial_added >= launch_budget and added > 0:
                return  # this round launched other nodes already: the gang waits whole
            group = min(candidates, key=lambda g: (_waste(bundle, g.shape), g.name))
            trial_added += 1
            spot = new_spot(group, trial_replicas, bundle)
            trial.append(spot)
            used.append(spot.name)
        free = trial
        replicas.update(trial_replicas)
        added = trial_added
        needed.update(used)

    for gang in gangs:
        place_gang(gang)
    place(_wants(demand), free)

    remove: dict[str, tuple[str, ...]] = {}
    if not added:  # never shrink in the round that grows: the two would fight
        for group in groups:
            idle = sorted(
                (
                    n
                    for n in nodes
                    if n.group == group.name
                    and not n.starting
                    and n.name not in needed
                    and n.idle_seconds >= idle_timeout
                    and n.name in group.workers
                ),
                key=lambda n: -n.idle_seconds,
            )
            spare = replicas[group.name] - group.min_replicas
            chosen = tuple(n.name for n in idle[: max(0, spare)])
            if chosen:
                remove[group.name] = chosen
                replicas[group.name] -= len(chosen)
    return Plan(replicas=replicas, remove=remove, unplaceable=tuple(unplaceable))
