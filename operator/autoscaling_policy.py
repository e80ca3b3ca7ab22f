"""The autoscaling policy: how many workers each group should have, and which ones to remove.

A pure function of what the head reports (demand, the live nodes with their free capacity and
idle time) and of the worker groups (node shape, min, max, the workers they have). The
Kubernetes operator and the local provider both apply its plan; it never talks to anything, so
it is tested on its own, properties included.

Scale up: the demand is first fitted onto the free capacity of live nodes, then onto nodes
still starting, and what is left onto new nodes, largest bundles first (first-fit decreasing).
A new node comes from the group that fits a bundle with the least waste, and never from a group
with GPUs for a bundle that needs none while a group without GPUs fits it. Launches are capped
at ``max(5, speed × running)`` nodes starting at once (``upscalingMode``).

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

Shape = Mapping[str, float]

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


@dataclass(frozen=True)
class Node:
    """A live node as the head reports it; ``name`` is the worker it runs on."""

    name: str
    group: str
    available: Shape
    idle_seconds: float  # 0 while busy
    starting: bool = False  # a worker created but not (yet) a live node
    total: Shape = field(default_factory=dict)  # what it offers in all (default: its group's)


@dataclass(frozen=True)
class Gang:
    """A placement group waiting for room: its bundles not placed yet, and its strategy."""

    bundles: tuple[Shape, ...]
    strategy: str = "PACK"


@dataclass(frozen=True)
class Plan:
    replicas: dict[str, int]  # desired workers per group
    remove: dict[str, tuple[str, ...]] = field(default_factory=dict)  # which, per group
    unplaceable: tuple[Shape, ...] = ()  # bundles no group can ever hold

    def changes(self, groups: Sequence[WorkerGroup]) -> bool:
        current = {g.name: len(g.workers) for g in groups}
        return self.replicas != current or any(self.remove.values())


def _fits(bundle: Shape, free: Shape) -> bool:
    return all(free.get(name, 0.0) + EPSILON >= amount for name, amount in bundle.items() if amount > 0)


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


def plan(
    groups: Sequence[WorkerGroup],
    nodes: Iterable[Node],
    demand: Iterable[Shape],
    idle_timeout: float,
    upscaling_mode: str = "Default",
    requested: Iterable[Shape] = (),
    gangs: Iterable[Gang] = (),
) -> Plan:
    """Desired replicas per group and the workers to remove; see the module's docstring.

    ``demand`` is work waiting now, fitted onto free capacity; ``requested`` is capacity a
    program asked for (``request_resources``), fitted onto what the nodes offer in all;
    ``gangs`` are placement groups waiting, each fitted whole onto free capacity or not at all.
    """
    nodes = list(nodes)
    by_group = {g.name: g for g in groups}
    replicas = {g.name: max(len(g.workers), g.min_replicas) for g in groups}
    replicas = {name: min(count, by_group[name].max_replicas) for name, count in replicas.items()}

    # Capacity there is, or will be: live nodes' free room, nodes starting, nodes added below.
    free: list[tuple[str, str, dict[str, float]]] = [
        (n.name, n.group, dict(n.available)) for n in nodes if not n.starting
    ]
    live = {n.name for n in nodes if not n.starting}
    for group in groups:
        for worker in group.workers:
            if worker not in live:
                free.append((worker, group.name, dict(group.shape)))
        for extra in range(replicas[group.name] - len(group.workers)):  # raised to the minimum
            free.append((f"{group.name}/min-{extra}", group.name, dict(group.shape)))

    running = len(live)
    starting = sum(1 for g in groups for w in g.workers if w not in live) + sum(
        replicas[g.name] - len(g.workers) for g in groups
    )
    speed = SPEEDS.get(upscaling_mode, SPEEDS["Default"])
    launch_budget = max(MIN_LAUNCH_BURST, speed * running) - starting

    needed: set[str] = set()  # nodes the demand is placed on: never removed
    unplaceable: list[Shape] = []
    added = 0

    def place(bundles: Iterable[Shape], capacity: list[tuple[str, str, dict[str, float]]]) -> None:
        nonlocal added
        for bundle in sorted(bundles, key=_size, reverse=True):
            if not any(v > 0 for v in bundle.values()):
                continue
            spot = next((entry for entry in capacity if _fits(bundle, entry[2])), None)
            if spot is not None:
                _take(bundle, spot[2])
                needed.add(spot[0])
                continue
            candidates = [
                g for g in groups if _fits(bundle, g.shape) and replicas[g.name] < g.max_replicas
            ]
            if not candidates:
                if not any(_fits(bundle, g.shape) for g in groups):
                    unplaceable.append(bundle)
                continue  # every group that fits is at its maximum
            if added >= launch_budget:
                continue  # the rest waits for the next round
            group = min(candidates, key=lambda g: (_waste(bundle, g.shape), g.name))
            replicas[group.name] += 1
            added += 1
            room = dict(group.shape)
            _take(bundle, room)
            name = f"{group.name}/new-{replicas[group.name]}"
            capacity.append((name, group.name, room))
            needed.add(name)

    # Requested capacity counts against what nodes offer in all, used or not.
    totals = [
        (n.name, n.group, dict(n.total or by_group[n.group].shape))
        for n in nodes
        if n.group in by_group
    ]
    known = {name for name, _, _ in totals}
    totals += [(name, group, dict(room)) for name, group, room in free if name not in known]
    place(requested, totals)
    # New nodes added for the request are free capacity for the waiting work too.
    free += [(name, group, dict(by_group[group].shape)) for name, group, _ in totals if "/new-" in name]

    def place_gang(gang: Gang) -> None:
        """All of the gang's bundles onto capacity (new nodes if need be), or none of them."""
        nonlocal added, free
        trial = [(name, group, dict(room)) for name, group, room in free]
        trial_replicas = dict(replicas)
        trial_added = added
        used: list[str] = []
        bundles = list(gang.bundles)
        if gang.strategy == "STRICT_PACK":
            bundles = [_sum(bundles)]
        for bundle in sorted(bundles, key=_size, reverse=True):
            if not any(v > 0 for v in bundle.values()):
                continue
            fitting = [e for e in trial if _fits(bundle, e[2])]
            if gang.strategy == "STRICT_SPREAD":
                fitting = [e for e in fitting if e[0] not in used]
            elif gang.strategy == "SPREAD":
                fitting.sort(key=lambda e: e[0] in used)
            elif gang.strategy == "PACK":
                fitting.sort(key=lambda e: e[0] not in used)
            if fitting:
                spot = fitting[0]
                _take(bundle, spot[2])
                used.append(spot[0])
                continue
            candidates = [
                g for g in groups if _fits(bundle, g.shape) and trial_replicas[g.name] < g.max_replicas
            ]
            if not candidates:
                if not any(_fits(bundle, g.shape) for g in groups) or _never(gang, groups, nodes):
                    unplaceable.extend(gang.bundles)
                return  # every group that fits is at its maximum: the gang waits whole
            if trial_added >= launch_budget and added > 0:
                return  # this round launched other nodes already: the gang waits whole
            group = min(candidates, key=lambda g: (_waste(bundle, g.shape), g.name))
            trial_replicas[group.name] += 1
            trial_added += 1
            room = dict(group.shape)
            _take(bundle, room)
            name = f"{group.name}/new-{trial_replicas[group.name]}"
            trial.append((name, group.name, room))
            used.append(name)
        free = trial
        replicas.update(trial_replicas)
        added = trial_added
        needed.update(used)

    for gang in gangs:
        place_gang(gang)
    place(demand, free)

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
