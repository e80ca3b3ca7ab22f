"""The autoscaling policy: examples of its choices, and properties over random clusters."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ember.operator.autoscaling_policy import Gang, Node, Plan, Want, WorkerGroup, plan

CPU4 = WorkerGroup("cpu", {"CPU": 4.0, "memory": 16.0}, 0, 10)
GPU = WorkerGroup("gpu", {"CPU": 8.0, "GPU": 1.0, "memory": 32.0}, 0, 4)


def test_cpu_work_does_not_take_a_gpu_node_when_a_cpu_node_fits() -> None:
    result = plan([GPU, CPU4], [], [{"CPU": 1.0}] * 3, idle_timeout=60)
    assert result.replicas == {"gpu": 0, "cpu": 1}
    gpu_work = plan([GPU, CPU4], [], [{"CPU": 1.0, "GPU": 1.0}], idle_timeout=60)
    assert gpu_work.replicas == {"gpu": 1, "cpu": 0}


def test_demand_fills_free_room_before_adding_nodes() -> None:
    group = WorkerGroup("cpu", {"CPU": 4.0}, 0, 10, workers=("w1",))
    node = Node("w1", "cpu", available={"CPU": 3.0}, idle_seconds=0.0)
    assert plan([group], [node], [{"CPU": 1.0}] * 3, 60).replicas == {"cpu": 1}
    assert plan([group], [node], [{"CPU": 1.0}] * 4, 60).replicas == {"cpu": 2}


def test_first_fit_decreasing_packs_large_bundles_first() -> None:
    # 3 + 1 and 3 + 1 fill two 4-CPU nodes; in arrival order (1, 1, 3, 3) it would need three.
    demand = [{"CPU": 1.0}, {"CPU": 1.0}, {"CPU": 3.0}, {"CPU": 3.0}]
    assert plan([CPU4], [], demand, 60).replicas == {"cpu": 2}


def test_launches_are_capped_by_the_upscaling_mode() -> None:
    group = WorkerGroup("cpu", {"CPU": 1.0}, 0, 100, workers=tuple(f"w{i}" for i in range(4)))
    nodes = [Node(f"w{i}", "cpu", {"CPU": 0.0}, 0.0) for i in range(4)]
    demand = [{"CPU": 1.0}] * 50
    assert plan([group], nodes, demand, 60, "Conservative").replicas == {"cpu": 4 + 5}  # max(5, 1×4)
    assert plan([group], nodes, demand, 60, "Default").replicas == {"cpu": 4 + 8}  # 2×4
    assert plan([group], nodes, demand, 60, "Aggressive").replicas == {"cpu": 4 + 50}


def test_only_long_idle_nodes_go_and_never_below_the_minimum() -> None:
    group = WorkerGroup("cpu", {"CPU": 1.0}, 1, 10, workers=("a", "b", "c"))
    nodes = [
        Node("a", "cpu", {"CPU": 1.0}, idle_seconds=120.0),
        Node("b", "cpu", {"CPU": 1.0}, idle_seconds=30.0),
        Node("c", "cpu", {"CPU": 1.0}, idle_seconds=300.0),
    ]
    result = plan([group], nodes, [], idle_timeout=60)
    assert result.remove == {"cpu": ("c", "a")} and result.replicas == {"cpu": 1}
    # Demand that fits an idle node keeps it.
    kept = plan([group], nodes, [{"CPU": 1.0}], idle_timeout=60)
    assert sum(len(v) for v in kept.remove.values()) == 1


def test_requested_capacity_counts_against_totals() -> None:
    group = WorkerGroup("cpu", {"CPU": 4.0}, 0, 10, workers=("w1",))
    busy = Node("w1", "cpu", {"CPU": 0.0}, 0.0, total={"CPU": 4.0})
    # 8 CPUs asked for: the busy node's 4 count, one more node is needed.
    assert plan([group], [busy], [], 60, requested=[{"CPU": 1.0}] * 8).replicas == {"cpu": 2}
    # And nodes the request needs are not removed when idle.
    idle = Node("w1", "cpu", {"CPU": 4.0}, 500.0, total={"CPU": 4.0})
    assert plan([group], [idle], [], 60, requested=[{"CPU": 2.0}]).remove == {}


def test_work_no_group_can_hold_is_reported() -> None:
    result = plan([CPU4], [], [{"CPU": 64.0}], 60)
    assert result.unplaceable == ({"CPU": 64.0},) and result.replicas == {"cpu": 0}


SMALL = WorkerGroup("small", {"CPU": 1.0}, 0, 5)


def test_a_strict_spread_group_gets_a_node_per_bundle() -> None:
    # As single bundles, three 1-CPU bundles would fit... one node each anyway here; on 4-CPU
    # nodes they would share one, but STRICT_SPREAD needs three.
    spread = Gang(({"CPU": 1.0},) * 3, "STRICT_SPREAD")
    assert plan([CPU4], [], [], 60, gangs=[spread]).replicas == {"cpu": 3}
    assert plan([CPU4], [], [], 60, gangs=[Gang(({"CPU": 1.0},) * 3, "PACK")]).replicas == {"cpu": 1}
    assert plan([SMALL], [], [], 60, gangs=[spread]).replicas == {"small": 3}


def test_a_strict_pack_group_needs_one_node_for_all_its_bundles() -> None:
    pack = Gang(({"CPU": 3.0}, {"CPU": 1.0}), "STRICT_PACK")
    assert plan([CPU4], [], [], 60, gangs=[pack]).replicas == {"cpu": 1}
    too_big = Gang(({"CPU": 3.0}, {"CPU": 3.0}), "STRICT_PACK")
    result = plan([CPU4], [], [], 60, gangs=[too_big])
    assert result.replicas == {"cpu": 0} and result.unplaceable


def test_a_gang_is_added_whole_or_not_at_all() -> None:
    # Two workers of at most three exist and are busy: a STRICT_SPREAD group of two more
    # bundles cannot be completed (one node may be added), so none is added for it.
    group = WorkerGroup("small", {"CPU": 1.0}, 0, 3, workers=("w1", "w2"))
    nodes = [Node(w, "small", {"CPU": 0.0}, 0.0) for w in ("w1", "w2")]
    result = plan([group], nodes, [], 60, gangs=[Gang(({"CPU": 1.0},) * 2, "STRICT_SPREAD")])
    assert result.replicas == {"small": 2} and not result.unplaceable
    # Free room on a live node counts toward the gang: one new node completes it.
    nodes[0] = Node("w1", "small", {"CPU": 1.0}, 0.0)
    assert plan([group], nodes, [], 60, gangs=[Gang(({"CPU": 1.0},) * 2, "STRICT_SPREAD")]).replicas == {"small": 3}
    # More distinct nodes than the groups can ever have: reported, not waited for.
    never = plan([SMALL], [], [], 60, gangs=[Gang(({"CPU": 1.0},) * 6, "STRICT_SPREAD")])
    assert never.replicas == {"small": 0} and len(never.unplaceable) == 6


def test_a_gang_may_start_more_nodes_at_once_than_the_upscaling_speed() -> None:
    big = WorkerGroup("small", {"CPU": 1.0}, 0, 20)
    gang = Gang(({"CPU": 1.0},) * 8, "STRICT_SPREAD")
    assert plan([big], [], [], 60, "Conservative", gangs=[gang]).replicas == {"small": 8}
    # Nodes starting for a gang count: the next round adds none.
    starting = WorkerGroup("small", {"CPU": 1.0}, 0, 20, workers=tuple(f"s{i}" for i in range(8)))
    nodes = [Node(f"s{i}", "small", {}, 0.0, starting=True) for i in range(8)]
    assert plan([starting], nodes, [], 60, gangs=[gang]).replicas == {"small": 8}


# ---------------------------------------------------------------------- properties

shapes = st.fixed_dictionaries(
    {"CPU": st.sampled_from([1.0, 2.0, 4.0, 8.0])},
    optional={"GPU": st.sampled_from([1.0, 2.0]), "custom": st.sampled_from([1.0, 3.0])},
)
bundles = st.fixed_dictionaries(
    {"CPU": st.sampled_from([0.5, 1.0, 2.0, 3.0])}, optional={"GPU": st.just(1.0), "custom": st.just(1.0)}
)


@st.composite
def clusters(draw):  # type: ignore[no-untyped-def]
    groups, nodes = [], []
    for index in range(draw(st.integers(1, 3))):
        shape = draw(shapes)
        low = draw(st.integers(0, 2))
        high = draw(st.integers(low, low + 6))
        count = draw(st.integers(0, high))
        names = tuple(f"g{index}-w{i}" for i in range(count))
        groups.append(WorkerGroup(f"g{index}", shape, low, high, names))
        for name in names:
            if draw(st.booleans()):
                continue  # still starting
            used = draw(st.sampled_from([0.0, 0.5, 1.0]))
            idle = 0.0 if used else draw(st.sampled_from([0.0, 10.0, 100.0, 1000.0]))
            available = {k: v * (1 - used) for k, v in shape.items()}
            nodes.append(Node(name, f"g{index}", available, idle, total=dict(shape)))
    demand = draw(st.lists(bundles, max_size=30))
    mode = draw(st.sampled_from(["Conservative", "Default", "Aggressive"]))
    return groups, nodes, demand, mode


def _check_bounds(groups: list[WorkerGroup], nodes: list[Node], result: Plan, timeout: float) -> None:
    by_name = {n.name: n for n in nodes}
    for group in groups:
        assert group.min_replicas <= result.replicas[group.name] <= group.max_replicas
        for name in result.remove.get(group.name, ()):
            node = by_name[name]
            assert node.group == group.name and not node.starting
            assert node.idle_seconds >= timeout, "a busy or recently busy node was removed"


@settings(max_examples=300, deadline=None)
@given(clusters())
def test_plans_stay_within_bounds_and_remove_only_idle_nodes(cluster) -> None:  # type: ignore[no-untyped-def]
    groups, nodes, demand, mode = cluster
    result = plan(groups, nodes, demand, idle_timeout=60, upscaling_mode=mode)
    _check_bounds(groups, nodes, result, 60)
    if any(result.replicas[g.name] > max(len(g.workers), g.min_replicas) for g in groups):
        assert not any(result.remove.values()), "grew and shrank in one round"


@settings(max_examples=200, deadline=None)
@given(clusters())
def test_steady_demand_reaches_a_fixed_point(cluster) -> None:  # type: ignore[no-untyped-def]
    """Apply each plan: new workers start, then join with the waiting work placed on them;
    under the same waiting work the plans settle within a few rounds and stay settled."""
    groups, nodes, demand, mode = cluster
    history = []
    for _ in range(12):
        result = plan(groups, nodes, demand, idle_timeout=60, upscaling_mode=mode)
        _check_bounds(groups, nodes, result, 60)
        history.append(result.replicas)
        if not result.changes(groups):
            break
        groups, nodes, demand = _apply(groups, nodes, demand, result)
    else:
        raise AssertionError(f"no fixed point in 12 rounds: {history}")
    # Settled: one more round changes nothing either.
    assert not plan(groups, nodes, demand, idle_timeout=60, upscaling_mode=mode).changes(groups)


def _apply(groups, nodes, demand, result):  # type: ignore[no-untyped-def]
    """The cluster after a plan: removed workers gone, new ones live, waiting work placed
    first-fit on free room (what fits runs: its node is busy; the rest still waits)."""
    removed = {name for names in result.remove.values() for name in names}
    nodes = [n for n in nodes if n.name not in removed]
    live = {n.name for n in nodes}
    new_groups = []
    for group in groups:
        workers = [w for w in group.workers if w not in removed]
        index = 0
        while len(workers) < result.replicas[group.name]:
            name = f"{group.name}-n{len(group.workers)}-{index}"
            index += 1
            if name not in workers:
                workers.append(name)
        while len(workers) > result.replicas[group.name]:
            workers.pop()
        new_groups.append(WorkerGroup(group.name, group.shape, group.min_replicas, group.max_replicas, tuple(workers)))
        for worker in workers:
            if worker not in live:
                nodes.append(Node(worker, group.name, dict(group.shape), 0.0, total=dict(group.shape)))
    rooms = {n.name: dict(n.available) for n in nodes}
    waiting = []
    for bundle in sorted(demand, key=lambda b: (b.get("GPU", 0), b.get("CPU", 0)), reverse=True):
        spot = next((name for name, room in rooms.items()
                     if all(room.get(k, 0) + 1e-9 >= v for k, v in bundle.items())), None)
        if spot is None:
            waiting.append(bundle)
            continue
        for k, v in bundle.items():
            rooms[spot][k] = rooms[spot].get(k, 0) - v
    busy = {name for name, room in rooms.items() if room != {n.name: n.available for n in nodes}[name]}
    nodes = [
        Node(n.name, n.group, rooms[n.name], 0.0 if n.name in busy else n.idle_seconds, total=n.total)
        for n in nodes
    ]
    return new_groups, nodes, waiting


def test_work_with_a_label_selector_goes_to_matching_nodes_and_groups() -> None:
    zone_a = WorkerGroup("a", {"CPU": 4.0}, 0, 5, labels={"zone": "a"})
    zone_b = WorkerGroup("b", {"CPU": 4.0}, 0, 5, workers=("b1",), labels={"zone": "b"})
    free_b = Node("b1", "b", {"CPU": 4.0}, 0.0)  # room, but in the wrong zone
    wanted = [Want({"CPU": 1.0}, {"zone": "a"})] * 2
    assert plan([zone_a, zone_b], [free_b], wanted, 60).replicas == {"a": 1, "b": 1}
    # Free room on a node whose own labels match is used first.
    labelled = Node("b1", "b", {"CPU": 4.0}, 0.0, labels={"zone": "b", "rack": "r1"})
    assert plan([zone_a, zone_b], [labelled], [Want({"CPU": 1.0}, {"rack": "r1"})], 60).replicas == {"a": 0, "b": 1}
    # A selector no group's labels allow is reported, not waited for.
    nowhere = plan([zone_a, zone_b], [], [Want({"CPU": 1.0}, {"zone": "c"})], 60)
    assert nowhere.replicas == {"a": 0, "b": 1} and nowhere.unplaceable == ({"CPU": 1.0},)
    # Bundles of a gang select groups too.
    gang = Gang(({"CPU": 1.0},) * 2, "STRICT_SPREAD", ({"zone": "a"}, {"zone": "!a"}))
    assert plan([zone_a, WorkerGroup("b", {"CPU": 4.0}, 0, 5, labels={"zone": "b"})], [], [], 60,
                gangs=[gang]).replicas == {"a": 1, "b": 1}


def test_a_decision_costs_shapes_times_nodes_not_tasks_times_nodes(monkeypatch) -> None:
    """3,000 waiting tasks of one shape on 300 full nodes at their group's maximum: each spot
    is checked once per shape, not once per task (that was 900,000 checks, 16 s at 1,000 nodes
    and 6,400 tasks)."""
    from ember.operator import autoscaling_policy

    calls = 0
    fits = autoscaling_policy._fits

    def counted(bundle, free):
        nonlocal calls
        calls += 1
        return fits(bundle, free)

    monkeypatch.setattr(autoscaling_policy, "_fits", counted)
    workers = tuple(f"w{i}" for i in range(300))
    group = WorkerGroup("cpu", {"CPU": 4.0}, 0, 300, workers=workers)
    nodes = [Node(name, "cpu", {"CPU": 0.5}, 0.0) for name in workers]
    nodes[-1] = Node(workers[-1], "cpu", {"CPU": 2.0}, 0.0)  # room for two, at the end
    result = plan([group], nodes, [{"CPU": 1.0}] * 3_000, 60)
    assert result.replicas == {"cpu": 300}
    assert calls < 4 * (300 + 3_000), calls
