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

from ember.runtime.core import user_metrics
from ember.runtime.core.task_record import QUEUED, RESOLVING, RUNNING
from ember.runtime.objects import serialization
from ember.runtime.wire import metrics_report
from ember.runtime.wire.metrics_report import LATENCY_BOUNDS, RUN_BOUNDS, Buckets
from ember.runtime.wire.protocol import ember_pb2 as pb

if TYPE_CHECKING:
    from ember.runtime.core.task_record import TaskRecord

log = logging.getLogger("ember.runtime.metrics")

# The owner's task states by the names a report gives them.
STATE_NAMES = {
    RESOLVING: metrics_report.PENDING_ARGS,
    QUEUED: metrics_report.PENDING_RESOURCES,
    RUNNING: metrics_report.RUNNING,
}
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
