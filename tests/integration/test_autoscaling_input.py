"""What an autoscaler reads from the head: demand (waiting tasks and actors, requested
capacity) and how long each node has been idle; and work that only a node an autoscaler may
add could hold waits for it instead of failing."""

from __future__ import annotations

import time

import pytest

import ember
from ember import connection
from ember.runtime import launcher
from ember.runtime.core import context
from ember.runtime.objects.exceptions import TaskUnschedulableError
from ember.runtime.wire.protocol import ember_pb2 as pb


def demand() -> pb.Demand:
    return connection.head_call("GetDemand", pb.Empty())


def wait_for(check, timeout: float = 15.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.1)


@ember.remote(resources={"accelerator": 1})
def needs_accelerator() -> str:
    return ember.get_runtime_context().get_node_id()


def test_nodes_become_idle_and_busy(cluster) -> None:
    node_id = bytes.fromhex(cluster.node_id)
    idle = wait_for(lambda: [n for n in demand().nodes if n.node_id == node_id and n.idle_seconds >= 1.0])
    assert idle, "the node never reported being idle"

    @ember.remote
    def nap() -> None:
        time.sleep(3)

    ref = nap.remote()
    busy = wait_for(lambda: [n for n in demand().nodes if n.node_id == node_id and n.idle_seconds == 0.0])
    assert busy, "a node running a task still reported idle"
    ember.get(ref)
    # A put object whose only copy is on the node keeps it busy too.
    import numpy as np

    big = ember.put(np.ones(1 << 18))
    time.sleep(2.5)
    assert [n.idle_seconds for n in demand().nodes if n.node_id == node_id] == [0.0]
    del big
    assert wait_for(lambda: [n for n in demand().nodes if n.node_id == node_id and n.idle_seconds > 0])


def test_request_resources_is_demand_until_withdrawn(cluster) -> None:
    ember.autoscaler.request_resources(num_cpus=3, bundles=[{"GPU": 1, "CPU": 2}])
    requested = [dict(b.quantities) for b in demand().requested]
    assert requested == [{"CPU": 1.0}] * 3 + [{"GPU": 1.0, "CPU": 2.0}]
    ember.autoscaler.sdk.request_resources(bundles=[{"CPU": 4}])
    assert [dict(b.quantities) for b in demand().requested] == [{"CPU": 4.0}]
    ember.autoscaler.request_resources()
    assert list(demand().requested) == []
    with pytest.raises(ValueError):
        ember.autoscaler.request_resources(bundles=[{"CPU": -1}])


def test_work_no_node_fits_fails_unless_an_autoscaler_could_add_a_node(cluster) -> None:
    with pytest.raises(TaskUnschedulableError, match="accelerator"):
        ember.get(needs_accelerator.remote(), timeout=30)
    # An autoscaler says it may add nodes with an accelerator: the same task now waits, and
    # shows as demand, until such a node joins.
    connection.head_call("SetNodeTypes", pb.NodeTypes(shapes=[pb.ResourceSet(quantities={"CPU": 1, "accelerator": 1})]))
    try:
        ref = needs_accelerator.remote()
        waiting = wait_for(lambda: [d for d in demand().tasks if d.shape.quantities.get("accelerator") == 1.0])
        assert waiting and waiting[0].count >= 1
        ready, _ = ember.wait([ref], timeout=1.0)
        assert not ready
        core = context.require_core()
        added = launcher.start_agent(cluster.session_dir, core.head_address, num_cpus=1, resources={"accelerator": 1})
        try:
            node = ember.get(ref, timeout=60)
            assert node != cluster.node_id
            assert wait_for(lambda: not [d for d in demand().tasks if d.shape.quantities.get("accelerator")])
        finally:
            added.stop()
    finally:
        connection.head_call("SetNodeTypes", pb.NodeTypes())
