"""Work queued at a full node moves to a node that joins with room: the node an autoscaler adds
a moment after the work arrived gets its share instead of sitting idle."""

from __future__ import annotations

import os
import time
from pathlib import Path

import ember

# The drain tests' cluster: a head with this driver's node, and the 'pool' nodes a test adds.
from tests.integration.test_drain import Cluster, cluster, wait_for  # noqa: F401


@ember.remote(resources={"pool": 1})
def step(i: int, starts: str) -> str:
    open(os.path.join(starts, str(i)), "w").close()
    time.sleep(1.5)
    return ember.get_runtime_context().get_node_id()


def test_requests_waiting_at_a_full_node_move_to_one_that_joins(cluster: Cluster, tmp_path: Path) -> None:  # noqa: F811
    first = cluster.add(pool=1, num_cpus=1)
    refs = [step.remote(i, str(tmp_path)) for i in range(4)]
    wait_for(lambda: len(os.listdir(tmp_path)) >= 1, "the first task to start")
    # The other three now wait at the only node with 'pool', which is busy.
    second = cluster.add(pool=1, num_cpus=1)
    where = ember.get(refs, timeout=60)
    # Without the move all four run on the first node, one after another.
    assert where.count(cluster.node_id(second)) >= 1, where
    assert where.count(cluster.node_id(first)) + where.count(cluster.node_id(second)) == 4
    cluster.stop(first)
    cluster.stop(second)
