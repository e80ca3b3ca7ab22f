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
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ember.runtime.core import user_metrics
from ember.runtime.core.task_record import QUEUED, RESOLVING, RUNNING, TERMINATE, LiveTasks
from ember.runtime.objects import serialization
from ember.runtime.wire import metrics_report, resources
from ember.runtime.wire.metrics_report import LATENCY_BOUNDS, RUN_BOUNDS, Buckets
from ember.runtime.wire.protocol import ember_pb2 as pb

if TYPE_CHECKING:
    from ember.runtime.core.task_record import TaskRecord

log = logging.getLogger("ember.runtime.metrics")

# The owner's task states by the names a report gives them, and by Ray's (the state API's).
STATE_NAMES = {
    RESOLVING: metrics_report.PENDING_ARGS,
    QUEUED: metrics_report.PENDING_RESOURCES,
    RUNNING: metrics_report.RUNNING,
}
RAY_STATES = {
    RESOLVING: "PENDING_ARGS_AVAIL",
    QUEUED: "PENDING_NODE_ASSIGNMENT",
    RUNNING: "RUNNING",
}
NORMAL_TASK, ACTOR_TASK = "NORMAL_TASK", "ACTOR_TASK"
RECENT = 300  # ended tasks kept for the next report
TIMED = 50_000  # ended tasks whose times one report carries (the timeline's)
RUNNING_SHOWN = 500  # running tasks listed in a report
PENDING_SHOWN = 500  # waiting tasks listed in a report
TRACEBACK_KEPT = 8 << 10  # characters of a failed task's error a report carries (its end)
TRACEBACK_BUDGET = 512 << 10  # characters of errors one report carries in all

# What the timeline keeps of a task that ended: id, name, node id, worker pid, submitted,
# scheduled, started, ended, failed, attempt.
Timed = tuple[bytes, str, bytes, int, float, float, float, float, bool, int]
_COLUMNS = (
    "task_id", "name", "node", "worker_pid", "submitted", "scheduled", "started", "ended",
    "failed", "attempt",
)

# Ray's ErrorType names for the errors a task can end with; a task's own exception is
# TASK_EXECUTION_EXCEPTION.
_ERROR_TYPES = {
    "TaskCancelledError": "TASK_CANCELLED",
    "WorkerCrashedError": "WORKER_DIED",
    "WorkerStartError": "WORKER_DIED",
    "ActorDiedError": "ACTOR_DIED",
    "ActorError": "ACTOR_DIED",
    "TaskUnschedulableError": "TASK_UNSCHEDULABLE_ERROR",
    "OwnerDiedError": "OWNER_DIED",
    "ObjectLostError": "OBJECT_LOST",
    "RuntimeConnectionError": "NODE_DIED",
}


def error_summary(data: bytes) -> tuple[str, str]:
    """``ValueError: bad input`` (what the dashboard shows of a failure) and Ray's ErrorType
    name for it; rare, so worth a ``loads``."""
    try:
        error = serialization.loads(data)
    except Exception:  # noqa: BLE001 - the class may not exist here
        return "(an error that cannot be read in the owner)", "TASK_EXECUTION_EXCEPTION"
    cause = getattr(error, "cause", None) or error
    lines = str(cause).strip().splitlines()
    kind = _ERROR_TYPES.get(type(error).__name__, "TASK_EXECUTION_EXCEPTION")
    return f"{type(cause).__name__}: {lines[0][:300] if lines else ''}", kind


def error_text(data: bytes) -> str:
    """A failed task's whole error, its remote traceback included (the end of it, when long),
    for its detail page; rare, so worth a ``loads``."""
    try:
        text = str(serialization.loads(data))
    except Exception as error:  # noqa: BLE001 - the class may not exist here
        return f"(an error that cannot be read in the owner: {type(error).__name__}: {error})"
    return text if len(text) <= TRACEBACK_KEPT else "...\n" + text[-TRACEBACK_KEPT:]


def _value_sizes(values: list[pb.ObjectValue | None]) -> tuple[int, ...]:
    """Bytes of each argument value: inline, or as large as its stored object."""
    return tuple(
        0 if value is None else len(value.data) or value.location.size for value in values
    )


class _Ended:
    """A task that ended, as the report will describe it: built into a ``TaskEvent`` only if
    it is among the latest at report time, and into the timeline's columns at report time,
    not on the task's path."""

    __slots__ = (
        "task", "time", "run_seconds", "failed", "error", "pid", "node", "worker_id", "node_id",
        "scheduled", "started", "attempt", "ref_sizes",
    )

    def __init__(
        self, task: TaskRecord, run_seconds: float, failed: bool, error: bytes, end_time: float,
        actor: pb.ActorInfo | None,
    ) -> None:
        self.task = task
        # The worker's clock when it ran the task; the owner's when it never did.
        self.time = end_time or time.time()
        self.started = end_time - run_seconds if end_time else 0.0
        self.run_seconds = run_seconds
        self.failed = failed
        self.error = error
        self.scheduled = task.scheduled
        self.attempt = task.attempt
        # Taken now: the record forgets its arguments' values once it ends. Most tasks have
        # no ObjectRef arguments, and pay one test for this.
        values = task.arg_values
        self.ref_sizes = _value_sizes(values) if values else ()
        lease = task.lease  # taken now: the record forgets its lease once it ends
        if lease is not None:
            self.pid, self.node, self.worker_id, self.node_id = (
                lease.worker_pid, lease.agent.address, lease.worker_id, lease.node_id
            )
        elif actor is not None and task.scheduled:
            self.pid, self.node, self.worker_id, self.node_id = (
                actor.pid, "", actor.worker_id, actor.node_id
            )
        else:
            self.pid, self.node, self.worker_id, self.node_id = 0, "", b"", b""


class ProcessMetrics:
    def __init__(self, component: str, job_id: bytes = b"", owner_address: str = "") -> None:
        self.component = component
        self.job_id = job_id
        self.owner_address = owner_address
        self.finished = 0
        self.failed = 0
        self.latency = Buckets(LATENCY_BOUNDS)
        self.run_time = Buckets(RUN_BOUNDS)
        self._quiet = False  # the last report said nothing: skip until something happens
        self.ended: collections.deque[_Ended] = collections.deque(maxlen=RECENT)
        # Tasks that ended since the last report, by (name, is an actor task, failed).
        self.ended_counts: dict[tuple[str, bool, bool], int] = {}
        self.listed_ended = 0  # of those, since the last report (``ended`` keeps the latest)
        # Every task that ended since the last report (to TIMED), as the timeline's columns
        # want it: plain values, so that no task record (nor its arguments) is kept for it.
        self.timed: list[Timed] = []
        self.untimed = 0  # those beyond TIMED
        # The actor a call went to (its worker's pid and node), for calls that ended.
        self.actor_info: Callable[[bytes], pb.ActorInfo | None] = lambda actor_id: None
        self._required: dict[object, pb.ResourceSet] = {}  # by shape key
        # The owner's unfinished tasks by state, kept as they change state (its task records
        # are made with it as their tally).
        self.live = LiveTasks()
        self._traceback_budget = TRACEBACK_BUDGET  # what this report may still carry of errors

    def task_ended(
        self, task: TaskRecord, run_seconds: float, failed: bool, error: bytes = b"",
        end_time: float = 0.0,
    ) -> None:
        """Count a task that ended; ``end_time`` is the worker's (0: it never ran)."""
        if failed:
            self.failed += 1
        else:
            self.finished += 1
        if task.method != TERMINATE:  # the owner's own last call to an actor: not the user's
            self.listed_ended += 1
            actor = self.actor_info(task.actor_id) if task.actor_id is not None else None
            ended = _Ended(task, run_seconds, failed, error, end_time, actor)
            self.ended.append(ended)
            if len(self.timed) < TIMED:
                self.timed.append((
                    task.task_id, task.options.name, ended.node_id, ended.pid, task.created,
                    ended.scheduled, ended.started, ended.time, failed, ended.attempt,
                ))
            else:
                self.untimed += 1
            key = (task.options.name, task.actor_id is not None, failed)
            counts = self.ended_counts
            counts[key] = counts.get(key, 0) + 1
        if run_seconds > 0:
            self.run_time.observe(run_seconds)
            waited = time.monotonic() - task.submitted - run_seconds
            self.latency.observe(max(0.0, waited))

    def _event(self, task: TaskRecord, state: str) -> pb.TaskEvent:
        """What the state API shows of a task (the parts every state shares)."""
        options = task.options
        required = self._required.get(options.key)
        if required is None:
            required = self._required[options.key] = pb.ResourceSet(
                quantities=resources.to_float(options.shape)
            )
        return pb.TaskEvent(
            task_id=task.task_id,
            name=options.name,
            state=state,
            attempt=task.attempt,
            job_id=self.job_id,
            type=ACTOR_TASK if task.actor_id is not None else NORMAL_TASK,
            actor_id=task.actor_id or b"",
            func_name=task.function.name,
            required=required,
            created=task.created,
            owner_address=self.owner_address,
        )

    def _ended_event(self, ended: _Ended) -> pb.TaskEvent:
        event = self._event(ended.task, "failed" if ended.failed else "finished")
        event.time = ended.time
        event.run_seconds = ended.run_seconds
        event.worker_pid = ended.pid
        event.node_address = ended.node
        event.worker_id = ended.worker_id
        event.node_id = ended.node_id
        if ended.failed:
            event.error, event.error_type = (
                error_summary(ended.error) if ended.error else ("", "TASK_EXECUTION_EXCEPTION")
            )
            if ended.error and self._traceback_budget > 0:
                event.traceback = error_text(ended.error)
                self._traceback_budget -= len(event.traceback)
        event.args_size = len(ended.task.args)
        event.ref_arg_sizes.extend(ended.ref_sizes)
        event.scheduled = ended.scheduled
        event.started = ended.started
        return event

    def _times(self) -> pb.TaskTimes:
        times = pb.TaskTimes(job_id=self.job_id, owner_pid=os.getpid(), dropped=self.untimed)
        for field, values in _columns(self.timed).items():
            getattr(times, field).extend(values)
        self.timed = []
        self.untimed = 0
        return times

    def report(self) -> pb.MetricsReport | None:
        """What happened since the last report; None when there is nothing to say. Costs
        what it lists (at most ``RUNNING_SHOWN`` + ``PENDING_SHOWN`` tasks), not what waits."""
        members = self.live.members
        counts = {STATE_NAMES[state]: len(tasks) for state, tasks in members.items() if tasks}
        live = {(name, actor, RAY_STATES[state]): n for (name, actor, state), n in self.live.counts().items()}
        running: list[pb.TaskEvent] = []
        for task in members[RUNNING]:
            if len(running) >= RUNNING_SHOWN:
                break
            if task.method == TERMINATE:
                continue
            event = self._event(task, "running")
            lease = task.lease
            event.time = task.scheduled  # when its owner sent it to its worker
            if lease is not None:
                event.worker_pid = lease.worker_pid
                event.node_address = lease.agent.address
                event.worker_id = lease.worker_id
                event.node_id = lease.node_id
            running.append(event)
        pending: list[pb.TaskEvent] = []
        for state in (QUEUED, RESOLVING):
            name = STATE_NAMES[state]
            for task in members[state]:
                if len(pending) >= PENDING_SHOWN:
                    break
                if task.method != TERMINATE:
                    pending.append(self._event(task, name))
        self._traceback_budget = TRACEBACK_BUDGET
        report = pb.MetricsReport(
            pid=os.getpid(),
            component=self.component,
            tasks=counts,
            tasks_finished=self.finished,
            tasks_failed=self.failed,
            user=user_metrics.REGISTRY.take(),
            ended=[self._ended_event(ended) for ended in self.ended],
            running=running,
            pending=pending,
            live_counts=[_count(key, n) for key, n in live.items()],
            ended_counts=[
                _count((name, actor, "FAILED" if failed else "FINISHED"), n)
                for (name, actor, failed), n in self.ended_counts.items()
            ],
            ended_dropped=max(0, self.listed_ended - len(self.ended)),
        )
        if self.timed or self.untimed:
            report.times.CopyFrom(self._times())
        self.ended.clear()
        self.ended_counts = {}
        self.listed_ended = 0
        self.finished = self.failed = 0
        latency, run_time = self.latency.take(), self.run_time.take()
        if latency is not None:
            report.scheduling_latency.CopyFrom(latency)
        if run_time is not None:
            report.run_time.CopyFrom(run_time)
        quiet = not (
            counts or report.tasks_finished or report.tasks_failed or report.user or report.ended
            or report.HasField("times")
        )
        if quiet and self._quiet:
            return None
        self._quiet = quiet
        return report


def _columns(timed: list[Timed]) -> dict[str, list[Any]]:
    """The timeline's columns of tasks that ended (``pb.TaskTimes``), names and nodes by index.
    Transposed and indexed by C loops (``zip``, ``map``): a report may carry 50,000 tasks, and
    it is built on the I/O thread that also moves tasks."""
    if not timed:
        return {"names": [], "node_ids": []}
    columns: dict[str, list[Any]] = {
        field: list(column) for field, column in zip(_COLUMNS, zip(*timed, strict=True), strict=True)
    }
    for field, table in (("name", "names"), ("node", "node_ids")):
        distinct = list(dict.fromkeys(columns[field]))
        index = {value: i for i, value in enumerate(distinct)}
        columns[field] = list(map(index.__getitem__, columns[field]))
        columns[table] = distinct
    return columns


def _count(key: tuple[str, bool, str], count: int) -> pb.TaskCount:
    name, actor, state = key
    return pb.TaskCount(name=name, type=ACTOR_TASK if actor else NORMAL_TASK, state=state, count=count)
