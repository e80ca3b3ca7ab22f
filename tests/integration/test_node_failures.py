"""Nodes that die: killed outright, or fallen silent. A head and three node agents, each its
own process tree on loopback; one agent at a time is lost while a job runs."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest

import ember
from ember.runtime import launcher
from ember.runtime.core import context
from tests.conftest import processes_of_session, wait_until_gone

NODE_TIMEOUT = 3.0


class Nodes:
    """The extra agents of the cluster: each has a 'pool' resource, so actors can move."""

    def __init__(self, session_dir: str, head_address: str) -> None:
        self.session_dir = session_dir
        self.head_address = head_address
        self.agents: list[launcher.LocalProcesses] = []

    def add(self) -> launcher.LocalProcesses:
        agent = launcher.start_agent(
            self.session_dir, self.head_address, num_cpus=2, resources={"pool": 1}
        )
        self.agents.append(agent)
        return agent

    def node_id(self, agent: launcher.LocalProcesses) -> str:
        port = int(agent.agent_address.rsplit(":", 1)[1])
        return next(n["NodeID"] for n in ember.nodes() if n["NodeManagerPort"] == port)


def _wait_alive(count: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len([n for n in ember.nodes() if n["Alive"]]) == count:
            return
        time.sleep(0.05)
    raise AssertionError(f"expected {count} live nodes: {ember.nodes()}")


def _view(node_id: str) -> dict:
    return next(n for n in ember.nodes() if n["NodeID"] == node_id)


@pytest.fixture(scope="module")
def nodes() -> Iterator[Nodes]:
    os.environ["EMBER_NODE_TIMEOUT_S"] = str(NODE_TIMEOUT)
    try:
        ctx = ember.init(num_cpus=2)
    finally:
        del os.environ["EMBER_NODE_TIMEOUT_S"]
    extra = Nodes(ctx.session_dir, context.require_core().head_address)
    try:
        yield extra
    finally:
        ember.shutdown()
        for agent in extra.agents:
            agent.stop()
    assert wait_until_gone(ctx.session_dir) == []


@ember.remote(max_retries=3)
def slow_square(x: int) -> tuple[int, str]:
    time.sleep(0.4)
    return x * x, ember.get_runtime_context().get_node_id()


@ember.remote(max_restarts=1, resources={"pool": 1}, num_cpus=0)
class Counter:
    def __init__(self) -> None:
        self.n = 0

    def add(self) -> int:
        self.n += 1
        return self.n

    def node(self) -> str:
        return ember.get_runtime_context().get_node_id()


def test_killed_agent_work_is_retried_and_actor_restarted_elsewhere(nodes: Nodes) -> None:
    first, second = nodes.add(), nodes.add()
    _wait_alive(3)
    counter = Counter.remote()
    actor_node = ember.get(counter.node.remote())
    assert ember.get(counter.add.remote()) == 1
    victim = first if nodes.node_id(first) == actor_node else second
    survivor = second if victim is first else first
    victim_id = nodes.node_id(victim)

    refs = [slow_square.options(scheduling_strategy="SPREAD").remote(i) for i in range(30)]
    # Kill only once the victim node is running some of them.
    deadline = time.monotonic() + 20
    ran_there = False
    while not ran_there and time.monotonic() < deadline:
        done, _ = ember.wait(refs, num_returns=len(refs), timeout=0.1)
        ran_there = any(ember.get(ref)[1] == victim_id for ref in done)
    assert ran_there, "no task ran on the victim node"
    victim_tree = [p for p in processes_of_session(nodes.session_dir) if _in_tree(p, victim.pids[0])]
    os.kill(victim.pids[0], signal.SIGKILL)

    results = ember.get(refs, timeout=60)
    assert [value for value, _ in results] == [i * i for i in range(30)]

    view = _view(victim_id)
    assert not view["Alive"]
    assert "session with the head closed" in view["DeathReasonMessage"]
    # The actor started again, on the other 'pool' node, with fresh state (max_restarts=1).
    assert ember.get(counter.node.remote(), timeout=30) == nodes.node_id(survivor)
    assert ember.get(counter.add.remote()) == 1
    # The agent's zygote and workers did not outlive it.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(p) for p in victim_tree):
        time.sleep(0.05)
    assert not [p for p in victim_tree if _alive(p)]


def test_silent_node_is_declared_dead_and_refused_when_it_comes_back(nodes: Nodes) -> None:
    alive_before = len([n for n in ember.nodes() if n["Alive"]])
    agent = nodes.add()
    _wait_alive(alive_before + 1)
    node_id = nodes.node_id(agent)
    assert _view(node_id)["Alive"]
    os.kill(agent.pids[0], signal.SIGSTOP)
    try:
        deadline = time.monotonic() + NODE_TIMEOUT + 5
        while time.monotonic() < deadline and _view(node_id)["Alive"]:
            time.sleep(0.1)
        view = _view(node_id)
        assert not view["Alive"]
        assert "no report for" in view["DeathReasonMessage"]
    finally:
        os.kill(agent.pids[0], signal.SIGCONT)
    # Back, it learns it was declared dead and exits, taking its workers with it.
    assert agent.processes[0].wait(15) == 0
    # Work still runs on the nodes that are left.
    assert ember.get(slow_square.remote(3))[0] == 9


def _in_tree(pid: int, root: int) -> bool:
    while pid > 1:
        if pid == root:
            return True
        try:
            with open(f"/proc/{pid}/stat") as f:
                pid = int(f.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            return False
    return False


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@ember.remote(num_returns=2)
def make_array(seed: int):
    import numpy as np

    return np.full(1 << 18, seed, dtype=np.int64), ember.get_runtime_context().get_node_id()


def test_objects_only_on_a_killed_node_are_rebuilt_from_lineage(nodes: Nodes) -> None:
    alive_before = len([n for n in ember.nodes() if n["Alive"]])
    victim = nodes.add()
    _wait_alive(alive_before + 1)
    victim_id = nodes.node_id(victim)
    # Only the small second results are fetched: the 2 MiB arrays stay where they were made.
    # SPREAD learns of a new node within seconds (NODES_REFRESH): try a few rounds.
    pairs: list = []
    on_victim: list[int] = []
    for _ in range(20):
        more = [make_array.options(scheduling_strategy="SPREAD").remote(len(pairs) + i) for i in range(6)]
        where = ember.get([node for _, node in more])
        on_victim += [len(pairs) + i for i, node in enumerate(where) if node == victim_id]
        pairs += more
        if on_victim:
            break
        time.sleep(0.5)
    assert on_victim, "no array was made on the victim node"
    os.kill(victim.pids[0], signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _view(victim_id)["Alive"]:
        time.sleep(0.05)
    for i in on_victim:
        array = ember.get(pairs[i][0], timeout=60)
        assert array.shape == (1 << 18,) and int(array[0]) == i and int(array[-1]) == i
