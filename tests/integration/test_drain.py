"""Draining a node: what the autoscaler does before it removes one. A head and node agents, each
its own process tree on loopback; the node drained in a test is stopped at its end, and what ran
or lived there must be found elsewhere, complete and correct."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest

import ember
from ember.runtime import launcher, session
from ember.runtime.core import context
from ember.runtime.wire import auth
from ember.runtime.wire.protocol import ember_pb2 as pb
from tests.conftest import REPO, wait_until_gone

MB = 1 << 20


class Cluster:
    """The module's cluster: a head with a one-CPU node (this driver's), and the extra agents
    each test adds. Work asks for the 'pool' resource, which only the extra agents have."""

    def __init__(self, session_dir: str) -> None:
        self.session_dir = session_dir
        self.core = context.require_core()
        self.agents: list[launcher.LocalProcesses] = []

    def add(self, pool: int = 2, num_cpus: int = 2, **options: object) -> launcher.LocalProcesses:
        agent = launcher.start_agent(
            self.session_dir, self.core.head_address, num_cpus=num_cpus,
            resources={"pool": pool}, **options,  # type: ignore[arg-type]
        )
        self.agents.append(agent)
        wait_for(lambda: self.view(agent).alive, f"{agent.agent_address} to join")
        return agent

    def view(self, agent: launcher.LocalProcesses) -> pb.NodeView:
        nodes = self.call("GetClusterView", pb.Empty()).nodes  # type: ignore[attr-defined]
        return next(
            (n for n in nodes if n.info.address == agent.agent_address), pb.NodeView()
        )

    def node_id(self, agent: launcher.LocalProcesses) -> str:
        return self.view(agent).info.node_id.hex()

    def drain(self, agent: launcher.LocalProcesses, deadline: float = 0.0) -> pb.DrainReply:
        return self.call("DrainNode", pb.DrainRequest(
            address=agent.agent_address, deadline_seconds=deadline, reason="test"
        ))

    def call(self, method: str, request: object) -> object:
        core = self.core

        async def ask() -> object:
            return await getattr(core.channels.head(core.head_address), method)(request, timeout=10)

        return core.io.run(ask())

    def wait_drained(self, agent: launcher.LocalProcesses, timeout: float = 60.0) -> pb.DrainProgress:
        wait_for(
            lambda: self.view(agent).drain_state == pb.DRAINED,
            f"{agent.agent_address} to be drained",
            timeout,
        )
        return self.view(agent).drain

    def store(self, agent: launcher.LocalProcesses) -> pb.StoreInfo:
        core = self.core

        async def ask() -> pb.StoreInfo:
            return await core.channels.node_agent(agent.agent_address).GetStoreInfo(pb.Empty())

        return core.io.run(ask())

    def stop(self, agent: launcher.LocalProcesses) -> None:
        agent.stop()
        wait_for(lambda: not self.view(agent).alive, f"{agent.agent_address} to leave")


def wait_for(condition: object, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    ctx = ember.init(num_cpus=1)
    extra = Cluster(ctx.session_dir)
    try:
        yield extra
    finally:
        ember.shutdown()
        for agent in extra.agents:
            agent.stop()
    assert wait_until_gone(ctx.session_dir) == []


@pytest.fixture(autouse=True)
def nodes_of_one_test(cluster: Cluster) -> Iterator[None]:
    """A test that fails half-way must not leave its 'pool' nodes to the next one."""
    before = len(cluster.agents)
    yield
    for agent in cluster.agents[before:]:
        if any(process.poll() is None for process in agent.processes):
            cluster.stop(agent)


def wait_started(directory: Path, count: int) -> None:
    """Wait until ``count`` tasks have begun running, not merely been leased a worker: a
    worker still starting when a drain arrives gives its lease back and the task moves."""
    wait_for(lambda: len(os.listdir(directory)) >= count, f"{count} tasks to start")


def node_here() -> str:
    return ember.get_runtime_context().get_node_id()


@ember.remote(resources={"pool": 1})
def slow(i: int, seconds: float, starts: str = "") -> tuple[int, str]:
    if starts:
        open(os.path.join(starts, str(i)), "w").close()
    time.sleep(seconds)
    return i, node_here()


def test_running_tasks_finish_and_queued_ones_go_elsewhere(cluster: Cluster, tmp_path: Path) -> None:
    doomed = cluster.add(pool=2, num_cpus=2)
    refs = [slow.remote(i, 2.5, str(tmp_path)) for i in range(6)]
    # Two run on the only node with 'pool'; four wait there for a worker.
    wait_started(tmp_path, 2)
    # Too small for all four at once: some still wait when the first two finish, and must not
    # be given the drained node's workers then.
    spare = cluster.add(pool=2, num_cpus=2)
    reply = cluster.drain(doomed)
    assert reply.accepted and reply.node.address == doomed.agent_address
    results = ember.get(refs, timeout=60)
    assert sorted(i for i, _ in results) == list(range(6))
    where = [node for _, node in results]
    # The two that ran there finished there (no deadline); the queued ones ran on the spare.
    assert where.count(cluster.node_id(doomed)) == 2, where
    assert where.count(cluster.node_id(spare)) == 4, where
    progress = cluster.wait_drained(doomed)
    assert progress.leases_finished == 2 and progress.leases_stopped == 0
    # The four queued requests left the doomed node (the counts above): some on their own once
    # the spare had room (a full node hands waiting requests to a free one), the rest
    # redirected by the drain, which never counts one twice.
    assert progress.requests_redirected <= 4
    cluster.stop(doomed)
    # Nothing new goes to a draining node: new work runs on the spare.
    assert ember.get(slow.remote(7, 0.0), timeout=30) == (7, cluster.node_id(spare))
    cluster.stop(spare)


@ember.remote(resources={"pool": 1}, max_retries=1)
def stubborn(doomed: str, marker: str, starts: str) -> str:
    if node_here() == doomed:
        open(os.path.join(starts, "stubborn"), "w").close()
        time.sleep(120)  # past any deadline
    if not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)  # a real crash: this one uses up the only retry
    return node_here()


@ember.remote(resources={"pool": 1}, max_retries=0)
def once(doomed: str, starts: str) -> str:
    if node_here() == doomed:
        open(os.path.join(starts, "once"), "w").close()
        time.sleep(120)
    return node_here()


def test_deadline_stops_long_tasks_and_they_run_elsewhere(cluster: Cluster, tmp_path: Path) -> None:
    doomed = cluster.add(pool=2, num_cpus=2)
    doomed_id = cluster.node_id(doomed)
    starts = tmp_path / "started"
    starts.mkdir()
    retried = stubborn.remote(doomed_id, str(tmp_path / "crashed-once"), str(starts))
    single = once.remote(doomed_id, str(starts))
    wait_started(starts, 2)
    spare = cluster.add(pool=2, num_cpus=2)
    assert cluster.drain(doomed, deadline=1.0).accepted
    # Stopped at the deadline (on the doomed node it sleeps 120 s, past this get's wait), run
    # again on the spare without using up its retry: the crash there is what max_retries=1
    # allows.
    assert ember.get(retried, timeout=60) == cluster.node_id(spare)
    # max_retries=0: it may not run twice, so it fails, saying why.
    with pytest.raises(ember.exceptions.WorkerCrashedError) as failure:
        ember.get(single, timeout=30)
    message = str(failure.value)
    assert "drained" in message and "max_retries=0" in message
    assert doomed.agent_address in message
    progress = cluster.wait_drained(doomed)
    assert progress.leases_stopped == 2 and progress.leases_finished == 0
    cluster.stop(doomed)
    cluster.stop(spare)


@ember.remote(resources={"pool": 1}, num_cpus=0, max_restarts=1)
class Counter:
    def __init__(self) -> None:
        self.n = 0

    def add(self, k: int) -> tuple[int, str]:
        self.n += k
        return self.n, node_here()

    def pid(self) -> int:
        return os.getpid()


@ember.remote(resources={"pool": 1}, num_cpus=0)
class Fragile:  # max_restarts=0
    def ping(self) -> str:
        return node_here()


def test_actors_move_or_die_with_the_cause(cluster: Cluster) -> None:
    doomed = cluster.add(pool=2, num_cpus=2)
    doomed_id = cluster.node_id(doomed)
    counter, fragile = Counter.remote(), Fragile.remote()
    assert ember.get(counter.add.remote(5), timeout=30) == (5, doomed_id)
    assert ember.get(fragile.ping.remote(), timeout=30) == doomed_id
    spare = cluster.add(pool=2, num_cpus=2)
    assert cluster.drain(doomed).accepted
    progress = cluster.wait_drained(doomed)
    assert progress.actors_restarted == 1 and progress.actors_died == 1
    cluster.stop(doomed)
    # Restarted on the spare (state starts over, as after any restart) and answering.
    assert ember.get(counter.add.remote(1), timeout=30) == (1, cluster.node_id(spare))
    with pytest.raises(ember.exceptions.ActorDiedError) as died:
        ember.get(fragile.ping.remote(), timeout=30)
    assert "drained" in str(died.value) and doomed.agent_address in str(died.value)
    # The move did not count against max_restarts=1: a real crash is still allowed one restart.
    assert (actor_info(cluster, "Counter").num_restarts_due_to_drain) == 1
    os.kill(ember.get(counter.pid.remote(), timeout=30), signal.SIGKILL)
    wait_for(
        lambda: actor_info(cluster, "Counter").num_restarts == 2
        and actor_info(cluster, "Counter").state == pb.ALIVE,
        "the counter to restart after its crash",
    )
    assert ember.get(counter.add.remote(2), timeout=30) == (2, cluster.node_id(spare))
    cluster.stop(spare)


def actor_info(cluster: Cluster, class_name: str) -> pb.ActorInfo:
    actors = cluster.call("ListActors", pb.Empty()).actors  # type: ignore[attr-defined]
    return next(a for a in actors if a.class_name == class_name)


@ember.remote(resources={"pool": 1})
def blob(i: int) -> np.ndarray:
    return np.full(8 * MB // 8, float(i))


def test_results_only_on_the_drained_node_outlive_it(cluster: Cluster) -> None:
    # A store smaller than the results: some of them are spilled to disk there.
    doomed = cluster.add(pool=1, num_cpus=1, object_store_memory=40 * MB)
    refs = [blob.remote(i) for i in range(8)]
    ember.wait(refs, num_returns=len(refs), timeout=60)
    assert cluster.store(doomed).spilled > 0
    spare = cluster.add(pool=1, num_cpus=1)
    assert cluster.drain(doomed).accepted
    progress = cluster.wait_drained(doomed)
    assert progress.objects_copied == 8 and progress.bytes_copied >= 64 * MB
    cluster.stop(doomed)
    for i, ref in enumerate(refs):
        array = ember.get(ref, timeout=30)
        assert array.shape == (8 * MB // 8,) and array[0] == i and array[-1] == i
    # Passed on to a task, the moved objects are found too.
    assert ember.get(total.remote(refs[3]), timeout=30) == 3.0 * (8 * MB // 8)
    cluster.stop(spare)


@ember.remote
def total(array: np.ndarray) -> float:
    return float(array.sum())


def test_work_only_a_draining_node_could_hold_waits_for_a_new_node(cluster: Cluster) -> None:
    doomed = cluster.add(pool=1, num_cpus=1)
    assert cluster.drain(doomed).accepted  # the only node with 'pool': allowed
    cluster.wait_drained(doomed)
    ref = slow.remote(1, 0.0)
    ready, _ = ember.wait([ref], timeout=1.5)
    assert not ready  # waiting, not failed, and not run on the draining node
    spare = cluster.add(pool=1, num_cpus=1)
    assert ember.get(ref, timeout=30) == (1, cluster.node_id(spare))
    cluster.stop(doomed)
    cluster.stop(spare)


def test_draining_an_unknown_or_dead_node_says_so(cluster: Cluster) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        cluster.call("DrainNode", pb.DrainRequest(node_id=bytes(16)))
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    assert bytes(16).hex() in (unknown.value.details() or "")
    gone = cluster.add(pool=1, num_cpus=1)
    cluster.stop(gone)
    reply = cluster.call("DrainNode", pb.DrainRequest(address=gone.agent_address))
    assert not reply.accepted and "dead" in reply.rejection_reason  # type: ignore[attr-defined]


# ------------------------------------------------------------------ as a user types it

DRIVER = """
import sys
import numpy as np
import ember

ember.init(address=sys.argv[1], logging_level="WARNING")

@ember.remote
def make(n):
    return np.full(n, 7.0)

put = ember.put(np.arange(2_000_000, dtype=np.float64))
made = make.remote(2_000_000)
ember.wait([made], timeout=60)
print("ready", ember.get_runtime_context().get_node_id(), flush=True)
sys.stdin.readline()  # the node holding both is drained and stopped now
print("put", float(ember.get(put, timeout=30).sum()), flush=True)
print("made", float(ember.get(made, timeout=30).sum()), flush=True)
ember.shutdown()
"""


def _ember(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ember.cli", *args],
        capture_output=True, text=True, timeout=120, cwd=str(REPO), env=env,
    )


def test_ember_drain_keeps_an_outside_drivers_objects(tmp_path: Path) -> None:
    """A driver on no node of the cluster (a laptop) stores its values on its entry node;
    ``ember drain`` moves them, and the driver reads them after that node is gone."""
    session_dir = session.new_session_dir()
    processes: list[launcher.LocalProcesses] = []
    driver = None
    previous = auth.token()
    auth.set_token(auth.generate())  # this cluster's, given to its processes and the commands
    env = dict(os.environ, EMBER_TOKEN=auth.token())
    try:
        head = launcher.start_head(session_dir)
        processes.append(head)
        # The nodes are on other loopback addresses than the driver's: it is on none of them,
        # and its first node (the entry node, where its values go) is the one drained.
        entry = launcher.start_agent(session_dir, head.head_address, host="127.0.0.2", num_cpus=1)
        processes.append(entry)
        address = f"ember://{head.head_address}"
        _wait_nodes(head.head_address, 1)
        spare = launcher.start_agent(session_dir, head.head_address, host="127.0.0.3", num_cpus=1)
        processes.append(spare)
        _wait_nodes(head.head_address, 2)
        driver = subprocess.Popen(
            [sys.executable, "-c", DRIVER, address], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(REPO), env=env,
        )
        assert driver.stdout is not None and driver.stdin is not None
        # It submits through its entry node, and stores its values there.
        assert driver.stdout.readline().split() == ["ready", _node_id(head.head_address, entry)]

        unknown = _ember("drain", "ffffffff", "--address", head.head_address, env=env)
        assert unknown.returncode == 1
        assert "no node 'ffffffff'" in unknown.stderr and entry.agent_address in unknown.stderr

        drained = _ember(
            "drain", entry.agent_address, "--address", address, "--deadline", "30", env=env
        )
        assert drained.returncode == 0, drained.stderr
        assert "is drained" in drained.stdout, drained.stdout
        assert "objects: 2 copied to other nodes" in drained.stdout, drained.stdout
        assert "it can be stopped" in drained.stdout

        again = _ember("drain", entry.agent_address, "--address", address, env=env)
        assert again.returncode == 0 and "already draining" in again.stdout

        entry.stop()
        driver.stdin.write("go\n")
        driver.stdin.flush()
        out, err = driver.communicate(timeout=60)
        assert driver.returncode == 0, err
        expected = float(np.arange(2_000_000, dtype=np.float64).sum())
        assert out.split() == ["put", str(expected), "made", str(7.0 * 2_000_000)], out + err
    finally:
        if driver is not None and driver.poll() is None:
            driver.kill()
            driver.wait()
        for process in reversed(processes):
            process.stop()
        auth.set_token(previous)
    assert wait_until_gone(session_dir) == []


def _node_id(head_address: str, agent: launcher.LocalProcesses) -> str:
    from ember import status_report

    nodes = status_report.fetch(head_address).nodes
    return next(n.info.node_id.hex() for n in nodes if n.info.address == agent.agent_address)


def _wait_nodes(head_address: str, count: int) -> None:
    from ember import status_report

    wait_for(
        lambda: len([n for n in status_report.fetch(head_address).nodes if n.alive]) == count,
        f"{count} nodes",
    )

