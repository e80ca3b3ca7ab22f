"""Placement groups and scheduling strategies on three real nodes: the head's node (labelled
zone=home through ``ember.init(labels=...)``) and two more agents labelled zone=a and zone=b,
two CPUs each, all on loopback.

Written as a Ray user would (``ember.util.placement_group``, ``PlacementGroupSchedulingStrategy``,
``NodeAffinitySchedulingStrategy``, ``label_selector``); where a test needs a node busy, a task
pinned there waits for a file to appear.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import ember
from ember.exceptions import (
    ActorDiedError,
    PlacementGroupError,
    TaskUnschedulableError,
    WorkerCrashedError,
)
from ember.runtime import launcher
from ember.runtime.core import context
from ember.runtime.wire import auth
from ember.runtime.wire.protocol import ember_pb2 as pb
from ember.util import (
    get_current_placement_group,
    get_placement_group,
    placement_group,
    placement_group_table,
    remove_placement_group,
)
from ember.util.scheduling_strategies import (
    NodeAffinitySchedulingStrategy,
    PlacementGroupSchedulingStrategy,
)
from tests.conftest import wait_until_gone
from tests.integration.test_metrics import scrape, value


class Cluster:
    def __init__(self, session_dir: str, agents: dict[str, launcher.LocalProcesses]) -> None:
        self.session_dir = session_dir
        self.agents = agents  # by zone
        self.ids: dict[str, str] = {}  # zone ("head" for the head's node) -> node id

    def discover(self) -> None:
        ports = {zone: int(a.agent_address.rsplit(":", 1)[1]) for zone, a in self.agents.items()}
        for node in ember.nodes():
            if not node["Alive"]:
                continue
            zone = next((z for z, port in ports.items() if node["NodeManagerPort"] == port), "head")
            self.ids[zone] = node["NodeID"]

    def zone_of(self, node_id: str) -> str:
        return next(zone for zone, known in self.ids.items() if known == node_id)


def _wait_for(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    ctx = ember.init(num_cpus=2, labels={"zone": "home"})
    head = context.require_core().head_address
    agents = {
        zone: launcher.start_agent(ctx.session_dir, head, num_cpus=2, labels={"zone": zone})
        for zone in ("a", "b")
    }
    found = Cluster(ctx.session_dir, agents)
    try:
        _wait_for(lambda: len([n for n in ember.nodes() if n["Alive"]]) == 3, "three live nodes")
        found.discover()
        yield found
    finally:
        ember.shutdown()
        for agent in agents.values():
            agent.stop()
    assert wait_until_gone(ctx.session_dir) == []


@pytest.fixture
def release(tmp_path: Path) -> Iterator[Path]:
    """A file that tasks waiting on it see appear; made at the end of the test whatever happens."""
    path = tmp_path / "go"
    try:
        yield path
    finally:
        path.touch()


def _free_cpus() -> dict[str, float]:
    """Free CPUs by node id, as the nodes last reported."""
    view = ember.connection.head_call("GetClusterView", pb.Empty())
    return {
        n.info.node_id.hex(): n.available.quantities.get("CPU", 0.0) for n in view.nodes if n.alive
    }


@ember.remote(num_cpus=1)
def where() -> str:
    return ember.get_runtime_context().get_node_id()


@ember.remote(num_cpus=0)
def where_free() -> str:
    return ember.get_runtime_context().get_node_id()


@ember.remote
def hold_until(path: str, started: str = "") -> str:
    if started:
        Path(started).write_text(str(os.getpid()))
    while not os.path.exists(path):
        time.sleep(0.02)
    return ember.get_runtime_context().get_node_id()


def _in(pg, index: int = -1, capture: bool | None = None) -> PlacementGroupSchedulingStrategy:
    return PlacementGroupSchedulingStrategy(pg, index, capture)


def _nodes_of(pg) -> list[str]:
    return list(placement_group_table(pg)["bundles_to_node_id"].values())


# ---------------------------------------------------------------------- strategies


def test_each_strategy_puts_bundles_where_it_says(cluster: Cluster) -> None:
    spread3 = placement_group([{"CPU": 1}] * 3, strategy="STRICT_SPREAD")
    try:
        assert ember.get(spread3.ready(), timeout=30) == spread3
        nodes = _nodes_of(spread3)
        assert len(set(nodes)) == 3, nodes
        # Work sent to bundle i runs on bundle i's node.
        ran = ember.get([where.options(scheduling_strategy=_in(spread3, i)).remote() for i in range(3)])
        assert ran == nodes
    finally:
        remove_placement_group(spread3)
    # PACK keeps bundles together where the head sees room for them together: let the nodes
    # say their CPUs are back first.
    _wait_for(lambda: set(_free_cpus().values()) == {2.0}, "every CPU free again")

    pack = placement_group([{"CPU": 0.5}, {"CPU": 0.5}], strategy="STRICT_PACK")
    soft_pack = placement_group([{"CPU": 0.5}, {"CPU": 0.5}], strategy="PACK")
    spread = placement_group([{"CPU": 0.5}, {"CPU": 0.5}], strategy="SPREAD")
    try:
        ember.get([pack.ready(), soft_pack.ready(), spread.ready()], timeout=30)
        assert len(set(_nodes_of(pack))) == 1
        # PACK fits tightest: beside the first group, filling that node.
        assert set(_nodes_of(soft_pack)) == set(_nodes_of(pack))
        # SPREAD goes to the two nodes with room, one bundle each.
        assert len(set(_nodes_of(spread))) == 2 and not set(_nodes_of(spread)) & set(_nodes_of(pack))
        assert placement_group_table(pack)["strategy"] == "STRICT_PACK"
    finally:
        for pg in (pack, soft_pack, spread):
            remove_placement_group(pg)


def test_a_bundle_holds_what_it_reserves_and_no_more(cluster: Cluster, release: Path, tmp_path: Path) -> None:
    """Bundle resources are the bundle's: reserving takes them off the node, a task in the
    bundle takes them from the bundle, and a second task waits for the first."""
    pg = placement_group([{"CPU": 1}], strategy="STRICT_PACK")
    try:
        ember.get(pg.ready(), timeout=30)
        (node,) = _nodes_of(pg)
        _wait_for(lambda: _free_cpus()[node] == 1.0, "the node to report one CPU reserved")
        started = tmp_path / "started"
        first = hold_until.options(num_cpus=1, scheduling_strategy=_in(pg, 0)).remote(str(release), str(started))
        _wait_for(started.exists, "the first task to start")
        second = where.options(scheduling_strategy=_in(pg, 0)).remote()
        assert ember.wait([second], timeout=1.0)[0] == []  # the bundle's one CPU is taken
        # Outside the group the node's other CPU is free: work there does not wait.
        pinned = NodeAffinitySchedulingStrategy(node, soft=False)
        assert ember.get(where.options(scheduling_strategy=pinned).remote(), timeout=30) == node
        release.touch()
        assert ember.get([first, second], timeout=30) == [node, node]
    finally:
        remove_placement_group(pg)
    _wait_for(lambda: _free_cpus()[node] == 2.0, "the node's CPUs back after the removal")


# ---------------------------------------------------------------------- the API


def test_ready_wait_names_and_the_table(cluster: Cluster) -> None:
    pg = placement_group([{"CPU": 0.5}], name="named-pg")
    try:
        assert pg.wait(30)
        assert ember.get(pg.ready(), timeout=30) == pg
        ready, _ = ember.wait([pg.ready()], timeout=30)
        assert len(ready) == 1
        found = get_placement_group("named-pg")
        assert found == pg and found.bundle_specs == [{"CPU": 0.5}] and found.bundle_count == 1
        with pytest.raises(ValueError, match="named 'named-pg' already exists"):
            placement_group([{"CPU": 0.5}], name="named-pg")
        entry = placement_group_table()[pg.id.hex()]
        assert entry["name"] == "named-pg" and entry["state"] == "CREATED"
        assert entry["bundles"] == {0: {"CPU": 0.5}}
        assert entry["stats"]["scheduling_state"] == "FINISHED"
        # A group travels to tasks like any value, and compares equal there.
        assert ember.get(ember.remote(lambda g: g == pg).remote(pg)) is True
        # The head counts groups by state for Prometheus.
        head = ember.connection.head_call("GetClusterView", pb.Empty()).metrics_address
        assert value(scrape(head), "ember_placement_groups", state="created") >= 1
    finally:
        remove_placement_group(pg)
    _wait_for(lambda: placement_group_table(pg)["state"] == "REMOVED", "the group removed")
    with pytest.raises(ValueError, match="Failed to look up placement group with name: named-pg"):
        get_placement_group("named-pg")


def test_bad_groups_and_bad_requests_are_refused_by_name(cluster: Cluster) -> None:
    with pytest.raises(ValueError, match="empty list"):
        placement_group([])
    with pytest.raises(ValueError, match="bundle 1 reserves nothing"):
        placement_group([{"CPU": 1}, {"CPU": 0}])
    with pytest.raises(ValueError, match="bundle 0: CPU must be a number >= 0"):
        placement_group([{"CPU": -1}])
    with pytest.raises(ValueError, match="invalid placement group strategy 'TIGHT'"):
        placement_group([{"CPU": 1}], strategy="TIGHT")
    with pytest.raises(ValueError, match="lifetime must be None or 'detached'"):
        placement_group([{"CPU": 1}], lifetime="forever")
    pg = placement_group([{"CPU": 1}, {"CPU": 0.5}])
    try:
        with pytest.raises(ValueError, match="bundle index 2 is invalid .* has 2 bundles"):
            where.options(scheduling_strategy=_in(pg, 2)).remote()
        with pytest.raises(ValueError, match=r"needs \{CPU: 1\}, but bundle 1 reserves \{CPU: 0.5\}"):
            where.options(scheduling_strategy=_in(pg, 1)).remote()
        with pytest.raises(ValueError, match=r"needs \{CPU: 1, GPU: 1\}, but its bundles reserve \{CPU: 1\}, \{CPU: 0.5\}"):
            where.options(num_gpus=1, scheduling_strategy=_in(pg)).remote()
        with pytest.raises(ValueError, match="needs a placement group"):
            where.options(placement_group_bundle_index=0).remote()
    finally:
        remove_placement_group(pg)


def test_a_group_no_node_can_hold_fails_ready_naming_why(cluster: Cluster) -> None:
    too_many = placement_group([{"CPU": 1}] * 4, strategy="STRICT_SPREAD")
    too_big = placement_group([{"CPU": 1}, {"CPU": 3}])
    try:
        with pytest.raises(PlacementGroupError, match="STRICT_SPREAD puts each bundle on a node of its own"):
            ember.get(too_many.ready(), timeout=30)
        with pytest.raises(PlacementGroupError, match=r"bundle 1 needs \{CPU: 3\}, but no node can ever hold it"):
            ember.get(too_big.ready(), timeout=30)
        assert not too_many.wait(0.2)
        entry = placement_group_table(too_many)
        assert (entry["state"], entry["stats"]["scheduling_state"]) == ("PENDING", "INFEASIBLE")
        # Work sent into it fails the same way, naming the group.
        with pytest.raises(TaskUnschedulableError, match=f"placement group .*{too_big.id.hex()[:12]}.* cannot be placed"):
            ember.get(where_free.options(scheduling_strategy=_in(too_big)).remote(), timeout=30)
    finally:
        remove_placement_group(too_many)
        remove_placement_group(too_big)


# ---------------------------------------------------------------------- all or nothing


def test_a_group_waits_whole_while_a_node_is_busy(cluster: Cluster, release: Path, tmp_path: Path) -> None:
    """A STRICT_SPREAD group needing every node's two CPUs waits while one node is busy, and
    holds nothing meanwhile: the other nodes take work needing all their CPUs."""
    busy = cluster.ids["b"]
    started = tmp_path / "started"
    blocker = hold_until.options(
        num_cpus=2, scheduling_strategy=NodeAffinitySchedulingStrategy(busy, soft=False)
    ).remote(str(release), str(started))
    _wait_for(started.exists, "node b to be busy")
    pg = placement_group([{"CPU": 2}] * 3, strategy="STRICT_SPREAD")
    try:
        assert not pg.wait(1.0)
        entry = placement_group_table(pg)
        assert entry["state"] == "PENDING" and entry["stats"]["scheduling_state"] == "NO_RESOURCES"
        for zone in ("head", "a"):
            node = cluster.ids[zone]
            whole = where.options(
                num_cpus=2, scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)
            )
            assert ember.get(whole.remote(), timeout=30) == node
        release.touch()
        assert ember.get(blocker, timeout=30) == busy
        assert ember.get(pg.ready(), timeout=30) == pg
        assert sorted(_nodes_of(pg)) == sorted(cluster.ids.values())
    finally:
        remove_placement_group(pg)


def test_work_sent_before_its_group_is_placed_runs_once_it_is(cluster: Cluster, release: Path, tmp_path: Path) -> None:
    """Work submitted into a group still waiting for room waits with it, then runs in its
    bundle, here on the driver's own node (whose agent asked the head where to send it before
    the bundle was there). The bundle holds both at once (2 CPUs): with one, the actor, once
    placed, would hold it for its life and the task would wait for the group's removal."""
    home = cluster.ids["head"]
    started = tmp_path / "started"
    blocker = hold_until.options(
        num_cpus=2, scheduling_strategy=NodeAffinitySchedulingStrategy(home, soft=False)
    ).remote(str(release), str(started))
    _wait_for(started.exists, "the driver's node to be busy")
    pg = placement_group([{"CPU": 2}], bundle_label_selector=[{"zone": "!in(a, b)"}])
    try:
        early = where.options(scheduling_strategy=_in(pg, 0)).remote()
        actor = Member.options(scheduling_strategy=_in(pg)).remote()
        early_actor_node = actor.node.remote()
        assert ember.wait([early, early_actor_node], timeout=1.0)[0] == []
        release.touch()
        assert ember.get([early, early_actor_node], timeout=30) == [home, home]
        assert ember.get(blocker, timeout=30) == home
    finally:
        remove_placement_group(pg)


@pytest.mark.parametrize("round_", range(4))
def test_two_groups_that_cannot_both_fit_never_each_hold_half(cluster: Cluster, round_: int) -> None:
    """Two drivers' threads create, at the same moment, groups that each need every node's
    CPUs; in odd rounds node b's agent is stopped meanwhile, so that its answer to the first
    group comes late. Exactly one group is created, the other waits whole, and once the first
    is removed the second is created: no deadlock, nothing held by half a group."""
    groups: list = []

    def create() -> None:
        groups.append(placement_group([{"CPU": 2}] * 3, strategy="STRICT_SPREAD"))

    stopped = round_ % 2 == 1
    agent_pid = cluster.agents["b"].pids[0]
    if stopped:
        os.kill(agent_pid, signal.SIGSTOP)
    try:
        threads = [threading.Thread(target=create) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        if stopped:
            time.sleep(0.5)  # both groups wait on the silent node
            assert [g.wait(0) for g in groups] == [False, False]
    finally:
        if stopped:
            os.kill(agent_pid, signal.SIGCONT)
    try:
        first, _ = ember.wait([g.ready() for g in groups], num_returns=1, timeout=30)
        assert len(first) == 1
        winner = ember.get(first[0])
        loser = next(g for g in groups if g != winner)
        assert not loser.wait(1.0)
        entry = placement_group_table(loser)
        assert entry["state"] == "PENDING" and set(entry["bundles_to_node_id"].values()) == {""}
        _wait_for(lambda: set(_free_cpus().values()) == {0.0}, "every CPU held by the winner")
        remove_placement_group(winner)
        assert ember.get(loser.ready(), timeout=30) == loser
    finally:
        for group in groups:
            remove_placement_group(group)
    _wait_for(lambda: set(_free_cpus().values()) == {2.0}, "every CPU free again")


# ---------------------------------------------------------------------- removal


@ember.remote(num_cpus=1)
class Member:
    def node(self) -> str:
        return ember.get_runtime_context().get_node_id()

    def group(self) -> str | None:
        current = get_current_placement_group()
        return current.id.hex() if current else None

    def pid(self) -> int:
        return os.getpid()


def test_removing_a_group_kills_its_tasks_and_actors(cluster: Cluster, release: Path, tmp_path: Path) -> None:
    pg = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="STRICT_SPREAD")
    ember.get(pg.ready(), timeout=30)
    started = tmp_path / "started"
    task = hold_until.options(num_cpus=1, max_retries=0, scheduling_strategy=_in(pg, 0)).remote(
        str(release), str(started)
    )
    actor = Member.options(scheduling_strategy=_in(pg, 1), max_restarts=2).remote()
    assert ember.get(actor.node.remote(), timeout=30) == _nodes_of(pg)[1]
    assert ember.get(actor.group.remote()) == pg.id.hex()
    _wait_for(started.exists, "the task in the group to start")
    task_pid = int(started.read_text())
    actor_pid = ember.get(actor.pid.remote())
    remove_placement_group(pg)
    with pytest.raises(WorkerCrashedError, match="was removed"):
        ember.get(task, timeout=30)
    with pytest.raises(ActorDiedError, match="placement group .* was removed"):
        ember.get(actor.node.remote(), timeout=30)  # max_restarts notwithstanding
    _wait_for(lambda: not _alive(task_pid) and not _alive(actor_pid), "both workers to exit")
    # A retry, or new work, finds the group gone and says so.
    with pytest.raises(TaskUnschedulableError, match=f"{pg.id.hex()[:12]}.* was removed"):
        ember.get(where.options(scheduling_strategy=_in(pg)).remote(), timeout=30)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_removing_a_pending_group_fails_what_waits_for_it(cluster: Cluster, release: Path, tmp_path: Path) -> None:
    started = tmp_path / "started"
    blocker = hold_until.options(
        num_cpus=2, scheduling_strategy=NodeAffinitySchedulingStrategy(cluster.ids["a"], soft=False)
    ).remote(str(release), str(started))
    _wait_for(started.exists, "node a to be busy")
    pg = placement_group([{"CPU": 2}] * 3, strategy="STRICT_SPREAD")
    ready = pg.ready()
    queued = where.options(scheduling_strategy=_in(pg)).remote()
    waiting_actor = Member.options(scheduling_strategy=_in(pg)).remote()
    assert ember.wait([ready, queued], timeout=0.5)[0] == []
    remove_placement_group(pg)
    with pytest.raises(PlacementGroupError, match="was removed before it was ready"):
        ember.get(ready, timeout=30)
    with pytest.raises(TaskUnschedulableError, match="was removed"):
        ember.get(queued, timeout=30)
    with pytest.raises(ActorDiedError, match="was removed"):
        ember.get(waiting_actor.node.remote(), timeout=30)
    release.touch()
    ember.get(blocker, timeout=30)


# ---------------------------------------------------------------------- children


@ember.remote(num_cpus=0)
def child_group() -> str | None:
    current = get_current_placement_group()
    return current.id.hex() if current else None


@ember.remote(num_cpus=0)
def parent(strategy: object = None) -> tuple[str | None, str | None]:
    mine = get_current_placement_group()
    chosen = child_group.options(scheduling_strategy=strategy) if strategy else child_group
    return (mine.id.hex() if mine else None), ember.get(chosen.remote())


def test_capture_child_tasks(cluster: Cluster) -> None:
    pg = placement_group([{"CPU": 1}])
    try:
        ember.get(pg.ready(), timeout=30)
        group = pg.id.hex()
        captured = parent.options(scheduling_strategy=_in(pg, capture=True))
        assert ember.get(captured.remote(), timeout=30) == (group, group)
        # Without capture the child runs outside the group; "DEFAULT" and a strategy with no
        # group opt out of a capturing parent.
        assert ember.get(parent.options(scheduling_strategy=_in(pg)).remote(), timeout=30) == (group, None)
        assert ember.get(captured.remote("DEFAULT"), timeout=30) == (group, None)
        assert ember.get(captured.remote(_in(None)), timeout=30) == (group, None)
        # An actor capturing its children: the tasks it submits run in its group.
        actor = Capturer.options(scheduling_strategy=_in(pg, capture=True)).remote()
        assert ember.get(actor.spawn.remote(), timeout=30) == group
        assert get_current_placement_group() is None  # the driver is in no group
    finally:
        remove_placement_group(pg)


@ember.remote(num_cpus=0)
class Capturer:
    def spawn(self) -> str | None:
        return ember.get(child_group.remote())


# ---------------------------------------------------------------------- node affinity, labels


def test_node_affinity_hard_and_soft(cluster: Cluster) -> None:
    for zone, node in cluster.ids.items():
        for soft in (False, True):
            strategy = NodeAffinitySchedulingStrategy(node, soft=soft)
            assert ember.get([where.options(scheduling_strategy=strategy).remote() for _ in range(3)]) == [node] * 3, zone
    actor = Member.options(scheduling_strategy=NodeAffinitySchedulingStrategy(cluster.ids["b"], soft=False)).remote()
    assert ember.get(actor.node.remote(), timeout=30) == cluster.ids["b"]
    ember.kill(actor)  # its CPU is for the tests after this one
    gone = "ab" * 16
    with pytest.raises(TaskUnschedulableError, match=f"node affinity names node {gone}, which is not in the cluster"):
        ember.get(where.options(scheduling_strategy=NodeAffinitySchedulingStrategy(gone, soft=False)).remote(), timeout=30)
    soft = where.options(scheduling_strategy=NodeAffinitySchedulingStrategy(gone, soft=True))
    assert ember.get(soft.remote(), timeout=30) in cluster.ids.values()
    too_big = where.options(num_cpus=3, scheduling_strategy=NodeAffinitySchedulingStrategy(cluster.ids["a"], soft=False))
    with pytest.raises(TaskUnschedulableError, match=r"can never hold \{CPU: 3\}"):
        ember.get(too_big.remote(), timeout=30)
    with pytest.raises(ValueError, match="needs a node id in hex"):
        where.options(scheduling_strategy=NodeAffinitySchedulingStrategy("not-hex", soft=False))


def test_label_selectors_for_tasks_and_actors(cluster: Cluster) -> None:
    ids = cluster.ids
    on = lambda selector: where.options(label_selector=selector).remote()  # noqa: E731
    assert set(ember.get([on({"zone": "a"}) for _ in range(4)])) == {ids["a"]}
    assert set(ember.get([on({"zone": "!a"}) for _ in range(6)])) <= {ids["b"], ids["head"]}
    assert set(ember.get([on({"zone": "in(a, b)"}) for _ in range(6)])) <= {ids["a"], ids["b"]}
    assert set(ember.get([on({"zone": "!in(a,b)"}) for _ in range(4)])) == {ids["head"]}
    assert set(ember.get([on({"zone": "home"}) for _ in range(2)])) == {ids["head"]}
    actor = Member.options(label_selector={"zone": "b"}).remote()
    assert ember.get(actor.node.remote(), timeout=30) == ids["b"]
    ember.kill(actor)
    with pytest.raises(TaskUnschedulableError, match=r"no node of the cluster has labels matching \{zone: c\}"):
        ember.get(on({"zone": "c"}), timeout=30)
    nowhere = Member.options(label_selector={"zone": "c"}).remote()
    with pytest.raises(ActorDiedError, match=r"labels matching \{zone: c\}"):
        ember.get(nowhere.node.remote(), timeout=30)
    with pytest.raises(ValueError, match=r"invalid condition 'in\(\)' for label 'zone'"):
        where.options(label_selector={"zone": "in()"})
    # Bundles select nodes by label too.
    pg = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="SPREAD", bundle_label_selector=[{"zone": "b"}, {"zone": "a"}])
    try:
        ember.get(pg.ready(), timeout=30)
        assert _nodes_of(pg) == [ids["b"], ids["a"]]
    finally:
        remove_placement_group(pg)


# ---------------------------------------------------------------------- lifetime


def test_a_group_ends_with_its_job_unless_detached(cluster: Cluster) -> None:
    from tests.conftest import run_driver

    script = (
        "import ember, sys\n"
        "from ember.util import placement_group\n"
        f"ember.init(address='{context.require_core().head_address}', namespace='pg-life', logging_level='ERROR')\n"
        "for name, lifetime in (('mine', None), ('kept', 'detached')):\n"
        "    pg = placement_group([{'CPU': 0.25}], name=name, lifetime=lifetime)\n"
        "    ember.get(pg.ready(), timeout=30)\n"
        "    print(pg.id.hex())\n"
    )
    result = run_driver(script, env=dict(os.environ, EMBER_TOKEN=auth.token()))
    assert result.returncode == 0, result.stderr
    mine, kept = result.stdout.split()
    _wait_for(lambda: placement_group_table()[mine]["state"] == "REMOVED", "the job's group to go")
    assert "its job" in placement_group_table()[mine]["removal_reason"]
    entry = placement_group_table()[kept]
    assert entry["state"] == "CREATED" and entry["is_detached"]
    from ember.util.placement_group import PlacementGroup, PlacementGroupID

    remove_placement_group(PlacementGroup(PlacementGroupID.from_hex(kept)))
