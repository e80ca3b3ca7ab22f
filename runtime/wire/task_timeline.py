"""The timeline's format: task times as owners send them (``pb.TaskTimes``, column by column),
read back as one span per task, and written as a Chrome trace (what ``chrome://tracing`` and
Perfetto open, and ``ray timeline`` writes).

It lives on the wire because three processes read it: the head's dashboard draws the spans,
the ``ember timeline`` command and ``ember.timeline()`` write the trace.

In the trace each node is a process and each worker a thread of it (one row per worker pid,
grouped by node), and each task one complete event from when its worker started it to when it
ended; the times before it (submitted, scheduled) are in the event's arguments. A task that
never reached a worker (it failed before) sits on its owner's row, from submitted to ended.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ember.runtime.wire.protocol import ember_pb2 as pb


@dataclass(frozen=True, slots=True)
class TaskSpan:
    """One task's times, in seconds since the epoch (0: it never got there)."""

    task_id: bytes
    name: str
    job_id: bytes
    owner_pid: int
    node_id: bytes  # where it ran (b"": nowhere)
    worker_pid: int
    submitted: float
    scheduled: float
    started: float
    ended: float
    failed: bool
    attempt: int
    reporter: bytes  # the node whose agent its owner reported to

    @property
    def ran(self) -> bool:
        return self.started > 0 and self.worker_pid > 0


def spans(times: Iterable[pb.TaskTimes], reporter: bytes = b"", since: float = 0.0) -> list[TaskSpan]:
    """Every task of ``times`` that ended at or after ``since``."""
    found = []
    for chunk in times:
        names, nodes = chunk.names, chunk.node_ids
        for i, task_id in enumerate(chunk.task_id):
            ended = chunk.ended[i]
            if ended < since:
                continue
            found.append(TaskSpan(
                task_id=task_id,
                name=names[chunk.name[i]],
                job_id=chunk.job_id,
                owner_pid=chunk.owner_pid,
                node_id=nodes[chunk.node[i]],
                worker_pid=chunk.worker_pid[i],
                submitted=chunk.submitted[i],
                scheduled=chunk.scheduled[i],
                started=chunk.started[i],
                ended=ended,
                failed=chunk.failed[i],
                attempt=chunk.attempt[i],
                reporter=reporter,
            ))
    return found


def cluster_spans(cluster: pb.ClusterTaskTimes, since: float = 0.0) -> list[TaskSpan]:
    found: list[TaskSpan] = []
    for node in cluster.nodes:
        found += spans(node.times, node.node_id, since)
    found.sort(key=lambda span: span.started or span.submitted)
    return found


def node_names(cluster: pb.ClusterTaskTimes) -> dict[bytes, str]:
    """How the trace names each node: its short id and agent address."""
    return {node.node_id: f"node {node.node_id.hex()[:12]} ({node.node_address})" for node in cluster.nodes}


def _micros(seconds: float) -> float:
    return round(seconds * 1e6, 1)


def chrome_trace(found: list[TaskSpan], names: Mapping[bytes, str]) -> dict[str, Any]:
    """The Chrome trace of ``found``: ``{"traceEvents": [...]}``, one complete ("X") event per
    task, with process and thread names as metadata ("M") events."""
    process_of: dict[bytes, int] = {}
    threads: set[tuple[int, int, str]] = set()
    events: list[dict[str, Any]] = []

    def process(node_id: bytes) -> int:
        number = process_of.get(node_id)
        if number is None:
            number = process_of[node_id] = len(process_of) + 1
        return number

    for span in found:
        if span.ran:
            pid, tid, row = process(span.node_id), span.worker_pid, f"worker {span.worker_pid}"
            start, end = span.started, span.ended
        else:  # never reached a worker: on its owner's row
            pid, tid, row = process(span.reporter), span.owner_pid, f"owner {span.owner_pid}"
            start, end = span.submitted, span.ended
        threads.add((pid, tid, row))
        events.append({
            "name": span.name,
            "cat": "task",
            "ph": "X",
            "ts": _micros(start),
            "dur": max(0.0, _micros(end) - _micros(start)),
            "pid": pid,
            "tid": tid,
            "cname": "terrible" if span.failed else "rail_response",
            "args": {
                "task_id": span.task_id.hex(),
                "job_id": span.job_id.hex(),
                "attempt": span.attempt,
                "state": "FAILED" if span.failed else "FINISHED",
                "owner_pid": span.owner_pid,
                "submitted": span.submitted,
                "scheduled": span.scheduled,
                "started": span.started,
                "ended": span.ended,
                "waited_seconds": round(max(0.0, (span.started or span.ended) - span.submitted), 6),
            },
        })
    meta: list[dict[str, Any]] = []
    for node_id, pid in process_of.items():
        label = names.get(node_id) or (f"node {node_id.hex()[:12]}" if node_id else "owners")
        meta.append({"name": "process_name", "ph": "M", "pid": pid, "tid": 0, "args": {"name": label}})
        meta.append({"name": "process_sort_index", "ph": "M", "pid": pid, "tid": 0, "args": {"sort_index": pid}})
    for pid, tid, row in sorted(threads):
        meta.append({"name": "thread_name", "ph": "M", "pid": pid, "tid": tid, "args": {"name": row}})
    return {"traceEvents": meta + events, "displayTimeUnit": "ms"}
