"""The reconcile of an ``EmberJob`` as a pure function: what exists in, what to do out.

The life of a job, as ``.status.jobDeploymentStatus`` tells it::

    Initializing ── its Cluster made (clusterSpec) or found (clusterSelector), Running, the job
         │          submitted (by the operator, or by a submitter Job)
         ▼
      Running ──── the head runs the entrypoint; jobStatus follows the head's
         │
         ├─► Complete     the entrypoint succeeded
         └─► Failed       it failed (or its cluster did) with no retry left, or it ran past
                          activeDeadlineSeconds
    Suspended ─── spec.suspend: the job is stopped and its own Cluster deleted; resuming starts
                  a new attempt

A failed attempt with retries left (``backoffLimit``) starts the next one on a new Cluster.
A finished job's own Cluster is deleted ``ttlSecondsAfterFinished`` after the end when
``shutdownAfterJobFinishes``; a selected Cluster is never the job's to delete.

What the handler observed comes in (``JobObserved``: the attempt's Cluster and submitter, what
the head says of the submission, earlier attempts' leftovers, the time); the plan says what to
create, delete, submit or stop, the whole status, and the events that tell the story. The
status is the plan's memory between passes: the attempt, the counts, when it started and
ended; everything else is observed again each pass, so a missed event or an operator restart
is just the next pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ember.operator import cluster_spec, job_children
from ember.operator.job_spec import OPERATOR, JobSpec, parse

TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")
READY_PHASES = ("Running", "Scaling")  # the head is Ready in both
STAMP = "%Y-%m-%dT%H:%M:%SZ"


@dataclass(frozen=True)
class HeadJob:
    """The head's record of the attempt's submission."""

    status: str  # PENDING, RUNNING, STOPPED, SUCCEEDED, FAILED
    message: str
    exit_code: int | None = None


@dataclass(frozen=True)
class JobObserved:
    cluster: Mapping[str, Any] | None  # the attempt's Cluster (its own, or the selected one)
    submitter: Mapping[str, Any] | None  # the attempt's submitter Job (SubmitterJob mode)
    head_job: HeadJob | None  # what the head says of the submission (None: it knows none, or was not asked)
    head_asked: bool  # the head answered (with head_job None: nothing was submitted yet)
    head_error: str  # why the head could not be asked
    now: datetime
    working_dir: str = ""  # the package URI of a ConfigMap working_dir, once uploaded
    waiting_for: str = ""  # something the attempt needs that is not there yet (a ConfigMap)
    submit_error: str = ""  # the head refused the submission (operator mode): the attempt failed
    create_error: str = ""  # the API server refused the attempt's Cluster or submitter Job
    stale: tuple[tuple[str, str], ...] = ()  # (kind, name) of earlier attempts' Clusters and submitters


@dataclass(frozen=True)
class JobPlan:
    creates: tuple[Mapping[str, Any], ...] = ()
    deletes: tuple[tuple[str, str], ...] = ()
    submit: bool = False  # submit the attempt through the head (operator mode)
    stop: bool = False  # ask the head to stop the attempt's submission
    status: Mapping[str, Any] = field(default_factory=dict)
    events: tuple[tuple[str, str, str], ...] = ()


class _Pass:
    """One plan being made: the spec, the status so far, what to do."""

    def __init__(self, ejob: Mapping[str, Any], observed: JobObserved) -> None:
        self.ejob = ejob
        self.spec: JobSpec = parse(ejob)
        self.seen = observed
        previous = dict(ejob.get("status") or {})
        self.status: dict[str, Any] = {
            "jobDeploymentStatus": previous.get("jobDeploymentStatus", ""),
            "jobStatus": previous.get("jobStatus", ""),
            "attempt": int(previous.get("attempt") or 1),
            "failed": int(previous.get("failed") or 0),
            "succeeded": int(previous.get("succeeded") or 0),
            "reason": previous.get("reason", ""),
            "message": previous.get("message", ""),
            "observedGeneration": (ejob.get("metadata") or {}).get("generation", 0),
        }
        for key in ("startTime", "endTime", "endpoints"):
            if key in previous:
                self.status[key] = previous[key]
        self.creates: list[Mapping[str, Any]] = []
        self.deletes: list[tuple[str, str]] = list(observed.stale)
        self.events: list[tuple[str, str, str]] = []
        self.submit = False
        self.stop = False

    @property
    def attempt(self) -> int:
        return int(self.status["attempt"])

    @property
    def deployment(self) -> str:
        return str(self.status["jobDeploymentStatus"])

    def move(self, deployment: str, reason: str, message: str, event: str = "", kind: str = "Normal") -> None:
        self.status["jobDeploymentStatus"] = deployment
        self.status["message"] = message
        if event:
            self.events.append((kind, event, message))
        self.status["reason"] = reason

    def say(self, message: str) -> None:
        self.status["message"] = message

    def stamp(self) -> str:
        return self.seen.now.strftime(STAMP)

    def plan(self) -> JobPlan:
        self.status["submissionId"] = self.spec.submission_id(self.attempt)
        self.status["clusterName"] = self.spec.cluster_name(self.attempt)
        return JobPlan(
            creates=tuple(self.creates), deletes=tuple(dict.fromkeys(self.deletes)), submit=self.submit,
            stop=self.stop, status=self.status, events=tuple(self.events),
        )


def plan(ejob: Mapping[str, Any], observed: JobObserved) -> JobPlan:
    work = _Pass(ejob, observed)
    spec = work.spec
    if work.deployment in ("Complete", "Failed"):
        _finished(work)
        return work.plan()
    if spec.suspend:
        _suspend(work)
        return work.plan()
    if work.deployment == "Suspended":
        if "startTime" in work.status:  # an attempt began before the suspend: the next one runs
            work.status["attempt"] = work.attempt + 1
        work.status["jobStatus"] = ""
        work.status["startTime"] = work.stamp()
        work.status.pop("endTime", None)
        work.move("Initializing", "", f"spec.suspend is false: starting attempt {work.attempt} again", "Resumed")
        return work.plan()
    if not work.deployment:
        work.status["startTime"] = work.stamp()
        where = f"Cluster {spec.cluster_name(work.attempt)}"
        work.move("Initializing", "", f"starting on {where}", "Initializing")
    if _past_deadline(work):
        return work.plan()
    _attempt(work)
    return work.plan()


def _finished(work: _Pass) -> None:
    """A job that ended: its own Cluster goes ``ttlSecondsAfterFinished`` later, if asked."""
    spec, seen = work.spec, work.seen
    if not (spec.owns_cluster and spec.shutdown_after_finish and seen.cluster is not None):
        return
    ended = _time(work.status.get("endTime")) or seen.now
    due = ended + timedelta(seconds=spec.ttl_seconds)
    name = spec.cluster_name(work.attempt)
    if seen.now >= due:
        work.deletes.append(("Cluster", name))
        work.events.append(("Normal", "DeletedCluster",
                            f"the job finished: deleting its Cluster {name} (shutdownAfterJobFinishes)"))


def _suspend(work: _Pass) -> None:
    spec, seen = work.spec, work.seen
    if work.deployment == "Suspended":
        return
    if seen.head_job is not None and seen.head_job.status not in TERMINAL:
        work.stop = True
    if spec.owns_cluster and seen.cluster is not None:
        work.deletes.append(("Cluster", spec.cluster_name(work.attempt)))
    if seen.submitter is not None:
        work.deletes.append(("Job", spec.submitter_name(work.attempt)))
    if work.status["jobStatus"] and work.status["jobStatus"] not in TERMINAL:
        work.status["jobStatus"] = "STOPPED"
    what = "its Cluster deleted" if spec.owns_cluster else "its Cluster kept (clusterSelector)"
    work.move("Suspended", "Suspended", f"spec.suspend is true: the job is stopped, {what}", "Suspended")


def _past_deadline(work: _Pass) -> bool:
    spec, seen = work.spec, work.seen
    started = _time(work.status.get("startTime"))
    if spec.deadline_seconds is None or started is None:
        return False
    if seen.now - started <= timedelta(seconds=spec.deadline_seconds):
        return False
    if seen.head_job is not None and seen.head_job.status not in TERMINAL:
        work.stop = True
        work.status["jobStatus"] = "STOPPED"
    work.status["failed"] += 1
    work.status["endTime"] = work.stamp()
    work.move("Failed", "DeadlineExceeded",
              f"the job ran longer than activeDeadlineSeconds ({spec.deadline_seconds}s): stopped",
              "DeadlineExceeded", "Warning")
    return True


def _attempt(work: _Pass) -> None:
    """Bring the current attempt forward: its Cluster, its submission, its end."""
    spec, seen = work.spec, work.seen
    name = spec.cluster_name(work.attempt)
    cluster = seen.cluster
    if seen.create_error:
        _attempt_failed(work, f"the API server refused what it needs: {seen.create_error}")
        return
    if cluster is None:
        if work.deployment == "Running":
            _attempt_failed(work, f"its Cluster {name} is gone")
        elif spec.owns_cluster:
            work.creates.append(job_children.cluster(work.ejob, spec, work.attempt))
            work.move("Initializing", "", f"creating Cluster {name}", "CreatedCluster")
        else:
            work.say(f"waiting for Cluster {name} (spec.clusterSelector) to exist")
        return
    cluster_status = cluster.get("status") or {}
    if cluster_status.get("endpoints"):
        work.status["endpoints"] = dict(cluster_status["endpoints"])
    phase = str(cluster_status.get("phase") or "Pending")
    if phase == "Failed":
        why = next((c.get("message") for c in cluster_status.get("conditions") or [] if c.get("status") == "False"), "")
        _attempt_failed(work, f"its Cluster {name} failed" + (f": {why}" if why else ""))
        return
    if seen.head_job is None:
        _submit(work, name, phase, cluster)
        return
    job = seen.head_job
    work.status["jobStatus"] = job.status
    if work.deployment != "Running":
        work.move("Running", "", f"job {spec.submission_id(work.attempt)} runs on Cluster {name}", "Running")
    if job.status == "SUCCEEDED":
        work.status["succeeded"] += 1
        work.status["endTime"] = work.stamp()
        work.move("Complete", "", f"the job succeeded on Cluster {name}: {job.message}", "Complete")
    elif job.status in TERMINAL:
        _attempt_failed(work, f"the job {job.status}: {job.message}")
    else:
        work.say(job.message or job.status)


def _submit(work: _Pass, name: str, phase: str, cluster: Mapping[str, Any]) -> None:
    """The Cluster is there and the head knows no submission of this attempt: submit it, once
    the Cluster runs and the head answers."""
    spec, seen = work.spec, work.seen
    if seen.submit_error:
        _attempt_failed(work, f"the head refused the job: {seen.submit_error}")
        return
    if phase not in READY_PHASES:
        work.say(f"waiting for Cluster {name} to be Running (it is {phase})")
        return
    if not seen.head_asked:
        work.say(f"waiting for the head of Cluster {name}: {seen.head_error}")
        return
    if work.deployment == "Running":
        _attempt_failed(work, f"the head of Cluster {name} no longer knows the job (it restarted without its state?)")
        return
    if seen.waiting_for:
        work.say(f"waiting for {seen.waiting_for}")
        return
    if spec.submission_mode == OPERATOR:
        work.submit = True
        work.say(f"submitting job {spec.submission_id(work.attempt)} to Cluster {name}")
        return
    submitter = seen.submitter
    job_name = spec.submitter_name(work.attempt)
    if submitter is None:
        target = cluster_spec.parse(cluster)
        work.creates.append(job_children.submitter(work.ejob, spec, work.attempt, target, seen.working_dir))
        work.events.append(("Normal", "CreatedSubmitter",
                            f"created Job {job_name} to submit the job to Cluster {name}"))
        work.say(f"Job {job_name} submits the job to Cluster {name}")
        return
    failure = job_children.submitter_failure(submitter)
    if failure:
        _attempt_failed(work, f"its submitter Job {job_name} failed ({failure}); kubectl logs job/{job_name} says why")
    else:
        work.say(f"Job {job_name} submits the job to Cluster {name}")


def _attempt_failed(work: _Pass, why: str) -> None:
    """The attempt is over without success: the next one, on a new Cluster, if retries are left."""
    spec = work.spec
    work.status["failed"] += 1
    failed = work.status["failed"]
    if failed <= spec.backoff_limit:
        if spec.owns_cluster and work.seen.cluster is not None:
            work.deletes.append(("Cluster", spec.cluster_name(work.attempt)))
        if work.seen.submitter is not None:
            work.deletes.append(("Job", spec.submitter_name(work.attempt)))
        attempt = work.attempt
        work.status["attempt"] = attempt + 1
        work.status["jobStatus"] = ""
        work.move("Initializing", "Retrying",
                  f"attempt {attempt} failed: {why}; retrying ({failed} of {spec.backoff_limit} retries)",
                  "Retrying", "Warning")
        return
    work.status["endTime"] = work.stamp()
    reason = "BackoffLimitExceeded" if spec.backoff_limit else "JobFailed"
    tail = f" (after {failed} attempts, backoffLimit {spec.backoff_limit})" if spec.backoff_limit else ""
    work.move("Failed", reason, f"{why}{tail}", "Failed", "Warning")


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.strptime(str(value), STAMP)
    except ValueError:
        return None
    from datetime import UTC

    return parsed.replace(tzinfo=UTC)


def requeue_after(ejob: Mapping[str, Any], now: datetime) -> float | None:
    """Seconds until a finished job's Cluster is due for deletion (None: nothing is due)."""
    spec = parse(ejob)
    status = ejob.get("status") or {}
    if status.get("jobDeploymentStatus") not in ("Complete", "Failed") or not spec.shutdown_after_finish:
        return None
    ended = _time(status.get("endTime"))
    if ended is None:
        return None
    return max(0.0, (ended + timedelta(seconds=spec.ttl_seconds) - now).total_seconds())
