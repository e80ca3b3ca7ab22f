"""What a node agent answers about one task or one actor's calls (``FindTasks``: the detail
pages), and that its listing of every task (``ListTasks``) leaves the tracebacks out."""

from __future__ import annotations

from ember.runtime.node import node_metrics
from ember.runtime.node.node_metrics import NodeMetrics
from ember.runtime.wire.protocol import ember_pb2 as pb


def _metrics() -> NodeMetrics:
    return NodeMetrics(None, None, None)  # type: ignore[arg-type]  # the task lists need none of them


def test_a_tasks_attempts_come_with_their_tracebacks_and_the_listing_without() -> None:
    metrics = _metrics()
    metrics.add(pb.MetricsReport(pid=10, ended=[
        pb.TaskEvent(task_id=b"t1", attempt=0, state="failed", traceback="Traceback: first"),
        pb.TaskEvent(task_id=b"t2", state="finished"),
        pb.TaskEvent(task_id=b"t1", attempt=1, state="failed", traceback="Traceback: second"),
    ], running=[pb.TaskEvent(task_id=b"t3", state="running")]))
    found = metrics.find_tasks(pb.TaskLookup(task_id=b"t1"))
    assert [(e.attempt, e.traceback) for e in found.ended] == [(1, "Traceback: second"), (0, "Traceback: first")]
    assert not found.running and not found.pending
    assert [e.task_id for e in metrics.find_tasks(pb.TaskLookup(task_id=b"t3")).running] == [b"t3"]
    listed = metrics.task_list()
    assert len(listed.ended) == 3 and all(e.traceback == "" for e in listed.ended)
    # The listing cleared its copies, not what the agent keeps.
    assert metrics.find_tasks(pb.TaskLookup(task_id=b"t1")).ended[0].traceback == "Traceback: second"
    assert not metrics.find_tasks(pb.TaskLookup()).ended  # neither id: nothing matches


def test_an_actors_calls_are_the_latest_within_the_limit() -> None:
    metrics = _metrics()
    calls = [pb.TaskEvent(task_id=bytes([i]) * 16, actor_id=b"a1", state="finished") for i in range(150)]
    metrics.add(pb.MetricsReport(pid=11, ended=[*calls, pb.TaskEvent(task_id=b"x", actor_id=b"a2")]))
    found = metrics.find_tasks(pb.TaskLookup(actor_id=b"a1"))
    assert len(found.ended) == node_metrics.FOUND_KEPT
    assert found.ended[0].task_id == bytes([149]) * 16  # newest first
    assert len(metrics.find_tasks(pb.TaskLookup(actor_id=b"a1", limit=5)).ended) == 5
