"""The state API across two node agents: the head asks every node, and a node that does not
answer is named (an error by default, a warning when a partial answer is accepted), as Ray's."""

from __future__ import annotations

import os
import signal
import time
import warnings
from functools import partial

import pytest

import ember as ray
from ember.runtime import launcher
from ember.runtime.core import context
from ember.util.state import StateApiError, list_nodes, list_objects, list_tasks, summarize_tasks
from tests.conftest import eventually, wait_until_gone


@pytest.fixture(scope="module")
def two_nodes():
    # A node silent for the whole test must not be declared dead meanwhile.
    previous = os.environ.get("EMBER_NODE_TIMEOUT_S")
    os.environ["EMBER_NODE_TIMEOUT_S"] = "120"
    try:
        ctx = ray.init(num_cpus=2)
    finally:
        if previous is None:
            del os.environ["EMBER_NODE_TIMEOUT_S"]
        else:
            os.environ["EMBER_NODE_TIMEOUT_S"] = previous
    second = launcher.start_agent(
        ctx.session_dir, context.require_core().head_address, num_cpus=2, resources={"second": 4}
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len([n for n in ray.nodes() if n["Alive"]]) < 2:
        time.sleep(0.05)
    try:
        yield ctx, second
    finally:
        ray.shutdown()
        second.stop()
    assert wait_until_gone(ctx.session_dir) == []


@ray.remote(resources={"second": 1})
def on_second(x):
    return x


@ray.remote
def on_first(x):
    return x


@ray.remote(resources={"second": 1})
class Holder:
    def __init__(self, refs):
        self.ref = refs[0]

    def pid(self):
        return os.getpid()


_eventually = partial(eventually, timeout=20.0)


def test_tasks_and_objects_of_both_nodes(two_nodes):
    second_id = next(n["NodeID"] for n in ray.nodes() if "second" in n["Resources"])
    first_id = ray.get_runtime_context().get_node_id()
    ray.get([on_second.remote(i) for i in range(4)] + [on_first.remote(i) for i in range(4)])
    rows = _eventually(
        lambda: list_tasks(filters=[("state", "=", "FINISHED")], limit=1000),
        lambda rows: {r.name for r in rows} >= {"on_first", "on_second"},
    )
    assert {r.node_id for r in rows if r.name == "on_second"} == {second_id}
    assert {r.node_id for r in rows if r.name == "on_first"} == {first_id}
    summary = summarize_tasks()["cluster"]["summary"]
    assert summary["on_second"]["state_counts"] == {"FINISHED": 4}

    shared = ray.put("shared")
    holder = Holder.remote([shared])
    holder_pid = ray.get(holder.pid.remote())
    holders = {(r.type, r.pid) for r in list_objects(filters=[("object_id", "=", shared.hex())])}
    assert holders == {("DRIVER", os.getpid()), ("WORKER", holder_pid)}
    assert {n.state for n in list_nodes()} == {"ALIVE"} and len(list_nodes()) == 2


def test_a_node_that_does_not_answer_is_named(two_nodes):
    _, second = two_nodes
    agent = next(p for p in second.processes if p.poll() is None)
    os.kill(agent.pid, signal.SIGSTOP)
    try:
        with pytest.raises(StateApiError, match=r"could not get every task.*did not answer"):
            list_tasks()
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            rows = list_tasks(raise_on_missing_output=False, limit=1000)
        assert any("did not answer" in str(w.message) for w in said)
        assert any(r.name == "on_first" for r in rows)  # the first node still answered
    finally:
        os.kill(agent.pid, signal.SIGCONT)
    assert len(list_nodes(filters=[("state", "=", "ALIVE")])) == 2
