"""What becomes of the tasks a process owns once they are submitted.

Each submitter runs its tasks and reports here (``TaskOutcomes``, ``CallOutcomes``): a result
is stored for the refs that want it (or, if nobody holds one any more, dropped and its copy in
the object store freed); a task whose worker died, or whose node was drained, or that raised an
exception it is to be retried on, is queued again while its retries last; otherwise it ends with
an error every get of its results raises. A finished task whose results live in an object store
is kept, with its arguments, while a result is referenced (its lineage), to run it again if
every copy is lost. Everything here runs on the I/O thread.
"""

from __future__ import annotations

import logging

from ember.runtime.core.actor_submitter import ActorSubmitter
from ember.runtime.core.borrowing import Borrowing
from ember.runtime.core.memory_store import ERROR, MemoryStore, StoredValue, error_value
from ember.runtime.core.process_metrics import ProcessMetrics
from ember.runtime.core.reference_table import ReferenceTable
from ember.runtime.core.store_client import StoreClient
from ember.runtime.core.task_record import FINISHED, QUEUED, RESOLVING, RUNNING, TaskRecord
from ember.runtime.core.task_submitter import TaskSubmitter
from ember.runtime.objects.exceptions import (
    RuntimeConnectionError,
    RuntimeEnvSetupError,
    TaskCancelledError,
    TaskUnschedulableError,
    WorkerCrashedError,
    WorkerStartError,
)
from ember.runtime.objects.object_ref import ObjectRef, RefCore
from ember.runtime.wire.protocol import ember_pb2 as pb

log = logging.getLogger("ember.runtime.core.task_manager")


class TaskManager:
    """``tasks`` (those not finished) and ``lineage`` are the owner's tables, shared with the
    parts that read them; ``core`` is what refs found inside results count themselves in."""

    # The submitters the tasks run through (set by ``runs_on``): retries and cancellation go
    # through them, and they report back here.
    submitter: TaskSubmitter
    actors: ActorSubmitter

    def __init__(
        self,
        tasks: dict[bytes, TaskRecord],
        lineage: dict[bytes, TaskRecord],
        store: MemoryStore,
        references: ReferenceTable,
        borrowing: Borrowing,
        objects: StoreClient,
        metrics: ProcessMetrics,
        core: RefCore,
    ) -> None:
        self.tasks = tasks
        self.lineage = lineage
        self.store = store
        self.references = references
        self.escaped = borrowing.escaped
        self.borrowers = borrowing.borrowers
        self.objects = objects
        self.metrics = metrics
        self.core = core

    def runs_on(self, submitter: TaskSubmitter, actors: ActorSubmitter) -> None:
        """The submitters are made after this manager (they take it, to report to): attach
        them before any task is submitted."""
        self.submitter = submitter
        self.actors = actors

    def on_task_result(self, task: TaskRecord, result: pb.TaskResult) -> None:
        if task.state == FINISHED:
            return
        if result.application_error and self._retry_exception(task, result):
            return
        if task.cancelled:
            self.finish(task, error_value(TaskCancelledError(f"{task.describe()} was cancelled")))
            return
        returns = result.returns
        store = self.store
        references = self.references
        stored_remotely = False
        for object_id, value in zip(task.return_ids, returns, strict=False):
            if (
                references.count(object_id) == 0
                and object_id not in self.escaped
                and object_id not in self.borrowers
            ):
                # Nobody holds a ref to this return any more.
                if value.HasField("location"):
                    self.objects.free(object_id, value.location)
                continue
            contained = None
            if value.contained:
                contained = [ObjectRef(r.id, r.owner, self.core) for r in value.contained]
            location = value.location if value.HasField("location") else None
            stored_remotely = stored_remotely or location is not None
            stored = StoredValue(value.data, value.kind, contained, location)
            if task.call_site:
                stored.call_site = task.call_site
            store.put(object_id, stored)
        error = returns[0].data if result.application_error and returns else b""
        self.metrics.task_ended(
            task, result.run_seconds, result.application_error, error, result.end_time
        )
        task.move(FINISHED)
        self.tasks.pop(task.task_id, None)
        if task.actor_id is not None:
            self.actors.call_finished(task)
        if stored_remotely and task.actor_id is None and task.options.max_retries != 0:
            self.lineage[task.task_id] = task  # keeps its arguments, to run it again
        else:
            task.forget_arguments()

    def _retry_exception(self, task: TaskRecord, result: pb.TaskResult) -> bool:
        policy = task.options.retry_exceptions
        if not policy or task.retries_left() <= 0:
            return False
        if isinstance(policy, tuple) and not set(policy).intersection(result.error_types):
            return False
        task.attempt += 1
        log.info("retrying %s after it raised (attempt %d)", task.describe(), task.attempt + 1)
        self.submitter.pump(self.submitter.requeue_front(task))
        return True

    def retry_after_crash(self, task: TaskRecord, reason: str) -> bool:
        """A worker died under the task: requeue it if it may be retried."""
        if task.state == FINISHED:
            return True
        task.last_failure = reason
        if task.cancelled or task.retries_left() <= 0:
            return False
        task.attempt += 1
        log.warning(
            "%s failed because %s; retrying (attempt %d)", task.describe(), reason, task.attempt + 1
        )
        self.submitter.pump(self.submitter.requeue_front(task))
        return True

    def retry_preempted(self, task: TaskRecord, reason: str) -> None:
        """The task's node was drained and its deadline passed while the task ran: run it again
        elsewhere without using up a retry, unless max_retries=0 forbids a second run."""
        if task.state == FINISHED:
            return
        if task.cancelled:
            self.finish(task, error_value(TaskCancelledError(f"{task.describe()} was cancelled")))
            return
        if task.options.max_retries == 0:
            error = WorkerCrashedError(
                f"{task.describe()} was stopped: {reason}; max_retries=0 forbids running it again"
            )
            self.finish(task, error_value(error))
            return
        task.attempt += 1
        task.preemptions += 1
        log.info("%s stopped: %s; running it elsewhere", task.describe(), reason)
        self.submitter.requeue_front(task)

    def fail_crashed(self, tasks: list[TaskRecord], reason: str) -> None:
        for task in tasks:
            if task.state == FINISHED:
                continue
            if task.cancelled:
                error: Exception = TaskCancelledError(f"{task.describe()} was cancelled")
            else:
                attempts = task.attempt + 1
                error = WorkerCrashedError(
                    f"{task.describe()} failed: its worker died ({reason}); "
                    f"{attempts} attempt{'s' if attempts != 1 else ''}, "
                    f"max_retries={task.options.max_retries}"
                )
            self.finish(task, error_value(error))

    def fail_rejected(self, tasks: list[TaskRecord], rejected: pb.LeaseRejected) -> None:
        """A node agent refused the lease the tasks wait for: say why, do not ask forever."""
        kind: type[Exception] = RuntimeConnectionError
        if rejected.infeasible:
            kind = TaskUnschedulableError
        elif rejected.worker_start_failed:
            kind = WorkerStartError
        elif rejected.runtime_env_failed:
            kind = RuntimeEnvSetupError
        for task in tasks:
            self.finish(task, error_value(kind(f"{task.describe()} cannot run: {rejected.reason}")))

    def fail_unreachable(self, tasks: list[TaskRecord], reason: str) -> None:
        for task in tasks:
            self.finish(task, error_value(RuntimeConnectionError(f"{task.describe()}: {reason}")))

    def finish(self, task: TaskRecord, value: StoredValue) -> None:
        """End a task with one value (an error) for each of its returns."""
        if task.state == FINISHED:
            return
        if value.kind == ERROR:
            self.metrics.task_ended(task, 0.0, failed=True, error=value.data)
        task.move(FINISHED)
        self.tasks.pop(task.task_id, None)
        task.forget_arguments()
        for object_id in task.return_ids:
            self.store.put(object_id, value)
        if task.actor_id is not None:
            self.actors.call_finished(task)

    def cancel(self, task_id: bytes, force: bool) -> None:
        """Cancel a task this process submitted: one not yet running ends now; a running one
        is interrupted (or its worker killed, with ``force``) and ends when it answers."""
        task = self.tasks.get(task_id)
        if task is None or task.state == FINISHED:
            return
        task.cancelled = True
        if task.actor_id is not None:
            if task.state in (RESOLVING, QUEUED):
                # It keeps no place in the actor's queue once finished.
                self.finish(task, error_value(TaskCancelledError(f"{task.describe()} was cancelled")))
            elif task.state == RUNNING:
                self.actors.cancel_running(task, force)
            return
        if task.state == RESOLVING or (
            task.state == QUEUED and self.submitter.remove_queued(task)
        ):
            self.finish(task, error_value(TaskCancelledError(f"{task.describe()} was cancelled")))
        elif task.state == RUNNING:
            task.force_cancel = force
            self.submitter.cancel_running(task, force)

    async def resubmit(self, task: TaskRecord, why: str) -> bool:
        """Run a finished task again, its results lost; False if it may not run again."""
        if task.state != FINISHED:
            return True  # already being rebuilt for another reader
        if task.retries_left() <= 0:
            return False
        log.warning("rebuilding the results of %s: %s", task.describe(), why)
        for object_id in task.return_ids:
            self.store.delete(object_id)
        task.attempt += 1
        task.move(QUEUED)
        self.tasks[task.task_id] = task
        self.submitter.enqueue(task)
        return True
