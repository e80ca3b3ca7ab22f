"""The timeline's format: task times read back from their columns, the Chrome trace made of
them, and what a node agent keeps of them."""

from __future__ import annotations

import json

from ember.runtime.node.task_times import TaskTimesKept
from ember.runtime.wire import task_timeline
from ember.runtime.wire.protocol import ember_pb2 as pb

NODE_A, NODE_B = b"\xaa" * 16, b"\xbb" * 16


def _times(job: bytes = b"\x01", owner: int = 100, base: float = 1000.0, count: int = 3) -> pb.TaskTimes:
    times = pb.TaskTimes(job_id=job, owner_pid=owner, names=["f", "g"], node_ids=[NODE_A, NODE_B, b""])
    for i in range(count):
        never_ran = i == 2
        times.task_id.append(bytes([i]) * 16)
        times.name.append(i % 2)
        times.node.append(2 if never_ran else i % 2)
        times.worker_pid.append(0 if never_ran else 200 + i)
        times.submitted.append(base + i)
        times.scheduled.append(0.0 if never_ran else base + i + 0.1)
        times.started.append(0.0 if never_ran else base + i + 0.2)
        times.ended.append(base + i + 0.5)
        times.failed.append(never_ran)
        times.attempt.append(0)
    return times


def test_spans_read_each_column_back_and_skip_what_ended_before_since() -> None:
    found = task_timeline.spans([_times()], reporter=NODE_A)
    assert [(s.name, s.node_id, s.worker_pid, s.ran) for s in found] == [
        ("f", NODE_A, 200, True), ("g", NODE_B, 201, True), ("f", b"", 0, False),
    ]
    assert found[1].submitted == 1001.0 and found[1].scheduled == 1001.1 and found[1].ended == 1001.5
    assert found[2].failed and found[2].reporter == NODE_A
    assert [s.task_id[0] for s in task_timeline.spans([_times()], since=1001.5)] == [1, 2]


def test_the_trace_has_one_event_per_task_on_its_workers_row_grouped_by_node() -> None:
    cluster = pb.ClusterTaskTimes(nodes=[
        pb.NodeTaskTimes(node_id=NODE_A, node_address="10.0.0.1:5", times=[_times()]),
        pb.NodeTaskTimes(node_id=NODE_B, node_address="10.0.0.2:5"),
    ])
    trace = task_timeline.chrome_trace(task_timeline.cluster_spans(cluster), task_timeline.node_names(cluster))
    json.loads(json.dumps(trace))
    events = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    assert len(events) == 3
    processes = {e["pid"]: e["args"]["name"] for e in trace["traceEvents"] if e["name"] == "process_name"}
    threads = {(e["pid"], e["tid"]): e["args"]["name"] for e in trace["traceEvents"] if e["name"] == "thread_name"}
    by_task = {e["args"]["task_id"][:2]: e for e in events}
    f, g, never = by_task["00"], by_task["01"], by_task["02"]
    assert processes[f["pid"]] == f"node {NODE_A.hex()[:12]} (10.0.0.1:5)"
    assert processes[g["pid"]] == f"node {NODE_B.hex()[:12]} (10.0.0.2:5)"
    assert threads[(f["pid"], 200)] == "worker 200" and threads[(g["pid"], 201)] == "worker 201"
    assert f["ts"] == 1000.2e6 and abs(f["dur"] - 0.3e6) < 1
    assert f["args"]["waited_seconds"] == 0.2 and f["args"]["state"] == "FINISHED"
    # Never ran: on its owner's row, on the node its owner reported to, from submitted to ended.
    assert (never["pid"], never["tid"]) == (f["pid"], 100)
    assert threads[(never["pid"], 100)] == "owner 100"
    assert never["ts"] == 1002e6 and never["args"]["state"] == "FAILED"


def test_a_node_keeps_the_latest_tasks_and_selects_by_job_and_time() -> None:
    kept = TaskTimesKept(kept=5)
    kept.add(_times(job=b"\x01", base=1000.0))
    kept.add(_times(job=b"\x02", base=2000.0))
    assert kept.count == 3 and kept.dropped == 3  # past 5 tasks, the oldest report is forgotten
    kept.add(pb.TaskTimes(job_id=b"\x02", dropped=7))  # untimed tasks are counted
    assert kept.count == 3 and kept.dropped == 3 + 7
    assert [t.job_id for t in kept.select(pb.TaskTimesRequest())] == [b"\x02"]
    assert kept.select(pb.TaskTimesRequest(job_id=b"\x01")) == []
    assert kept.select(pb.TaskTimesRequest(since=3000.0)) == []
    assert len(kept.select(pb.TaskTimesRequest(job_id=b"\x02", since=2002.5))) == 1
