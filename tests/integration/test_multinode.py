"""Two node agents on one machine, each with its own object store: objects move between them,
tasks go where their data is, and SPREAD spreads."""

from __future__ import annotations

import socket
import time

import numpy as np
import pytest

import ember
from ember.runtime import launcher
from ember.runtime.core import context
from ember.runtime.wire.protocol import ember_pb2 as pb

MB = 1 << 20


@pytest.fixture(scope="module")
def two_nodes():
    ctx = ember.init(num_cpus=2)
    core = context.require_core()
    second = launcher.start_agent(
        ctx.session_dir, core.head_address, num_cpus=2, resources={"second": 4}
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len([n for n in ember.nodes() if n["Alive"]]) < 2:
        time.sleep(0.05)
    try:
        yield ctx, second.agent_address
    finally:
        ember.shutdown()
        second.stop()


def _node_of_second() -> str:
    return next(n["NodeID"] for n in ember.nodes() if "second" in n["Resources"])


def _store(address: str) -> pb.StoreInfo:
    core = context.require_core()

    async def ask() -> pb.StoreInfo:
        return await core.channels.node_agent(address).GetStoreInfo(pb.Empty())

    return core.io.run(ask())


@ember.remote(resources={"second": 1})
def on_second(n, value):
    return np.full(n, value)


@ember.remote(resources={"second": 1})
def sum_on_second(array):
    return float(array.sum()), ember.get_runtime_context().get_node_id()


@ember.remote
def where(array):
    return ember.get_runtime_context().get_node_id()


def test_two_stores(two_nodes):
    ctx, second = two_nodes
    assert ember.cluster_resources()["CPU"] == 4
    assert _store(second).arena != _store(context.require_core().local_agent).arena


def test_nodes_show_the_machine_name_and_the_address_as_ray_does(two_nodes):
    """The name people know a node by (in Kubernetes the pod's, which is its host name) and the
    address peers dial, under Ray's keys."""
    alive = [n for n in ember.nodes() if n["Alive"]]
    assert len(alive) == 2
    for node in alive:
        assert {
            "NodeID", "Alive", "NodeManagerAddress", "NodeManagerHostname", "NodeManagerPort",
            "NodeName", "Resources", "Labels", "MetricsExportPort", "DeathReasonMessage", "alive",
        } <= node.keys()
        assert node["NodeManagerAddress"] == "127.0.0.1"
        assert node["NodeManagerHostname"] == socket.gethostname() != "127.0.0.1"
        assert node["NodeName"] == "127.0.0.1"  # Ray's default node name: the address
    assert {n["NodeManagerPort"] for n in alive} == {
        int(address.rsplit(":", 1)[1]) for address in (two_nodes[1], context.require_core().local_agent)
    }


def test_result_made_on_another_node_is_copied_here(two_nodes):
    _, second = two_nodes
    ref = on_second.remote(4 * MB // 8, 2.5)
    array = ember.get(ref)
    assert array[0] == 2.5 and array.shape == (4 * MB // 8,)
    assert not array.flags.writeable


def test_object_put_here_is_read_on_another_node(two_nodes):
    ref = ember.put(np.ones(4 * MB // 8))
    total, node = ember.get(sum_on_second.remote(ref))
    assert total == 4 * MB // 8 and node == _node_of_second()


def test_concurrent_pulls_of_one_object_are_shared(two_nodes):
    _, second = two_nodes
    before = _store(second).created
    ref = ember.put(np.ones(16 * MB // 8))
    results = ember.get([sum_on_second.remote(ref) for _ in range(4)])
    assert all(total == 16 * MB // 8 for total, _ in results)
    copied = _store(second).created - before
    assert 16 * MB <= copied < 2 * 16 * MB, f"{copied} bytes arrived for one 16 MiB object"


def test_freeing_reaches_every_copy(two_nodes):
    _, second = two_nodes
    here = context.require_core().local_agent
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (_store(second).used or _store(here).used):
        time.sleep(0.05)
    ref = ember.put(np.ones(8 * MB // 8))
    ember.get(sum_on_second.remote(ref))
    assert _store(second).used >= 8 * MB
    del ref
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (_store(second).used or _store(here).used):
        time.sleep(0.05)
    assert _store(second).used == 0 and _store(here).used == 0


def test_tasks_go_where_their_data_is(two_nodes):
    big = on_second.remote(8 * MB // 8, 1.0)
    ember.wait([big])
    # No resource asks for the second node: only the data does.
    assert ember.get(where.remote(big)) == _node_of_second()
    small = ember.put(np.ones(10))
    assert ember.get(where.remote(small)) == context.node_id


def test_spread(two_nodes):
    @ember.remote(scheduling_strategy="SPREAD")
    def slow_node():
        time.sleep(0.3)
        return ember.get_runtime_context().get_node_id()

    nodes = set(ember.get([slow_node.remote() for _ in range(4)]))
    assert len(nodes) == 2


@ember.remote(max_retries=0)
def own_then_die(n):
    import os

    # A result made on the other node, owned by this worker; then the worker dies holding it.
    ref = on_second.remote(n, 7)
    ember.wait([ref], fetch_local=False)
    os._exit(1)


def test_objects_of_a_dead_owner_are_freed_on_every_node(two_nodes):
    _, second = two_nodes
    before = _store(second).objects
    with pytest.raises(ember.exceptions.WorkerCrashedError):
        ember.get(own_then_die.remote(MB // 8))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _store(second).objects > before:
        time.sleep(0.1)
    assert _store(second).objects == before, "the dead owner's object stayed on the other node"
