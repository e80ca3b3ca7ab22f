"""Metrics a driver or worker keeps about the tasks it owns, sent to its node agent.

Owners know what no other process knows: how long their tasks waited and ran, and how many
wait now. Counting costs an integer add and a bisect per task; every ``REPORT_INTERVAL`` the
increments since the last report go to the node agent in one message, and the agent serves
the node's sum to Prometheus. Nothing here is on a task's path but the counting.
"""

from __future__ import annotations

import collections
import logging
import os
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ember.runtime import serialization, user_metrics
from ember.runtime.buckets import Buckets
from ember.runtime.protocol import ember_pb2 as pb
from ember.runtime.task_record import QUEUED, RESOLVING, RUNNING

if TYPE_CHECKING:
    from ember.runtime.task_record import TaskRecord

log = logging.getLogger("ember.runtime.metrics")

REPORT_INTERVAL = 2.0  # seconds
STALE_AFTER = 3 * REPORT_INTERVAL + 1  # a process silent this long has exited

# Submission to start, as the owner sees it (round trip minus the run): sub-millisecond when
# a warm lease is reused, seconds when the cluster is full.
LATENCY_BOUNDS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)
RUN_BOUNDS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)

# What the owner's task states are called in metrics (Ray's names, lower case).
STATE_NAMES = {RESOLVING: "pending_args", QUEUED: "pending_resources", RUNNING: "running"}
RECENT = 300  # ended tasks kept for the next report
RUNNING_SHOWN = 500  # running tasks listed in a report


def error_summary(data: bytes) -> str:
    """``ValueError: bad input``: what the dashboard shows of a failure (rare: worth a loads)."""
    try:
        error = serialization.loads(data)
    except Exception:  # noqa: BLE001 - the class may not exist here
        return "(an error that cannot be read in the owner)"
    cause = getattr(error, "cause", None) or error
    lines = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {lines[0][:300] if lines else ''}"


class ProcessMetrics:
    def __init__(self, component: str) -> None:
        self.component = component
        self.finished = 0
        self.failed = 0
        self.latency = Buckets(LATENCY_BOUNDS)
        self.run_time = Buckets(RUN_BOUNDS)
        self._quiet = False  # the last report said nothing: skip until something happens
        self.ended: collections.deque[pb.TaskEvent] = collections.deque(maxlen=RECENT)

    def task_ended(
        self, task: TaskRecord, run_seconds: float, failed: bool, error: bytes = b""
    ) -> None:
        if failed:
            self.failed += 1
        else:
            self.finished += 1
        lease = task.lease
        self.ended.append(pb.TaskEvent(
            task_id=task.task_id,
            name=task.options.name,
            state="failed" if failed else "finished",
            time=time.time(),
            run_seconds=run_seconds,
            error=error_summary(error) if failed and error else "",
            attempt=task.attempt,
            worker_pid=lease.worker_pid if lease is not None else 0,
            node_address=lease.agent.address if lease is not None else "",
        ))
        if run_seconds > 0:
            self.run_time.observe(run_seconds)
            waited = time.monotonic() - task.submitted - run_seconds
            self.latency.observe(max(0.0, waited))

    def report(self, tasks: Iterable[TaskRecord]) -> pb.MetricsReport | None:
        """What happened since the last report; None when there is nothing to say."""
        counts: dict[str, int] = {}
        running: list[pb.TaskEvent] = []
        for task in tasks:
            name = STATE_NAMES.get(task.state)
            if name is not None:
                counts[name] = counts.get(name, 0) + 1
            lease = task.lease
            if task.state == RUNNING and lease is not None and len(running) < RUNNING_SHOWN:
                running.append(pb.TaskEvent(
                    task_id=task.task_id,
                    name=task.options.name,
                    state="running",
                    attempt=task.attempt,
                    worker_pid=lease.worker_pid,
                    node_address=lease.agent.address,
                ))
        report = pb.MetricsReport(
            pid=os.getpid(),
            component=self.component,
            tasks=counts,
            tasks_finished=self.finished,
            tasks_failed=self.failed,
            user=user_metrics.REGISTRY.take(),
            ended=self.ended,
            running=running,
        )
        self.ended.clear()
        self.finished = self.failed = 0
        latency, run_time = self.latency.take(), self.run_time.take()
        if latency is not None:
            report.scheduling_latency.CopyFrom(latency)
        if run_time is not None:
            report.run_time.CopyFrom(run_time)
        quiet = not (counts or report.tasks_finished or report.tasks_failed or report.user or report.ended)
        if quiet and self._quiet:
            return None
        self._quiet = quiet
        return report
