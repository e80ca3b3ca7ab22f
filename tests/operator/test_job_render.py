"""The reconcile of an EmberJob as a pure function: each step of a job's life, planned from
what was observed, with no API and no head."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from ember.operator import job_render
from ember.operator.job_render import HeadJob, JobObserved, plan, requeue_after

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
UID = "0123456789abcdef"


def ejob(status: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "ember.dev/v1alpha1", "kind": "EmberJob",
        "metadata": {"name": "train", "namespace": "ml", "uid": UID, "generation": 1},
        "spec": {"entrypoint": "python -m train", "clusterSpec": {"workerGroups": [{"name": "cpu", "replicas": 1}]},
                 **spec},
    }
    if status is not None:
        body["status"] = status
    return body


def cluster(phase: str = "Running", name: str = "train-1", **status: Any) -> dict[str, Any]:
    return {"apiVersion": "ember.dev/v1alpha1", "kind": "Cluster",
            "metadata": {"name": name, "namespace": "ml"},
            "spec": {"image": "ember:9", "head": {"ports": {"client": 10001}}},
            "status": {"phase": phase, "endpoints": {"client": f"{name}-head.ml.svc:10001"}, **status}}


def seen(**given: Any) -> JobObserved:
    values: dict[str, Any] = {"cluster": None, "submitter": None, "head_job": None, "head_asked": False,
                              "head_error": "not asked", "now": NOW}
    values.update(given)
    return JobObserved(**values)


def running(**extra: Any) -> dict[str, Any]:
    return {"jobDeploymentStatus": "Running", "jobStatus": "RUNNING", "attempt": 1,
            "startTime": NOW.strftime(job_render.STAMP), **extra}


def reasons(p: job_render.JobPlan) -> list[str]:
    return [reason for _, reason, _ in p.events]


def test_a_new_job_makes_its_cluster_owned_by_it() -> None:
    p = plan(ejob(), seen())
    (made,) = p.creates
    assert made["kind"] == "Cluster" and made["metadata"]["name"] == "train-1"
    assert made["metadata"]["ownerReferences"][0] == {
        "apiVersion": "ember.dev/v1alpha1", "kind": "EmberJob", "name": "train", "uid": UID,
        "controller": True, "blockOwnerDeletion": True}
    assert made["metadata"]["labels"]["ember.dev/job"] == "train"
    assert made["spec"] == {"workerGroups": [{"name": "cpu", "replicas": 1}]}
    assert p.status["jobDeploymentStatus"] == "Initializing" and p.status["attempt"] == 1
    assert p.status["submissionId"] == "train-01234567-1" and p.status["clusterName"] == "train-1"
    assert p.status["startTime"] == "2026-01-02T03:04:05Z"
    assert reasons(p) == ["Initializing", "CreatedCluster"]
    assert not p.submit and not p.stop


def test_it_waits_for_its_cluster_to_run_and_for_the_head() -> None:
    status = {"jobDeploymentStatus": "Initializing", "attempt": 1, "startTime": "2026-01-02T03:00:00Z"}
    p = plan(ejob(status), seen(cluster=cluster("Pending")))
    assert not p.creates and p.status["message"] == "waiting for Cluster train-1 to be Running (it is Pending)"
    assert p.status["endpoints"] == {"client": "train-1-head.ml.svc:10001"}
    p = plan(ejob(status), seen(cluster=cluster(), head_error="connection refused"))
    assert not p.creates and "waiting for the head of Cluster train-1: connection refused" in p.status["message"]


def test_submitter_mode_makes_a_batch_job_that_runs_ember_job_submit() -> None:
    status = {"jobDeploymentStatus": "Initializing", "attempt": 1, "startTime": "2026-01-02T03:00:00Z"}
    p = plan(ejob(status, entrypointNumCpus=1, entrypointResources={"disk": 2}, metadata={"team": "ml"},
                  runtimeEnv={"envVars": {"A": "1"}}),
             seen(cluster=cluster(), head_asked=True, head_error="", working_dir="ember-pkg://" + "a" * 64 + ".zip"))
    (job,) = p.creates
    assert job["apiVersion"] == "batch/v1" and job["metadata"]["name"] == "train-1-submit"
    assert job["metadata"]["ownerReferences"][0]["uid"] == UID
    pod = job["spec"]["template"]
    assert pod["metadata"]["labels"]["ember.dev/cluster"] == "train-1"  # let in by the cluster's NetworkPolicy
    assert pod["metadata"]["labels"]["ember.dev/node-type"] == "submitter"
    (container,) = pod["spec"]["containers"]
    assert container["image"] == "ember:9" and "ember job submit --no-wait" in container["command"][2]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}
    assert env["EMBER_ADDRESS"] == "ember://train-1-head.ml.svc:10001"
    assert env["EMBER_TOKEN"] == {"secretKeyRef": {"name": "train-1-token", "key": "token"}}
    assert env["EMBER_SUBMISSION_ID"] == "train-01234567-1" and env["EMBER_ENTRYPOINT"] == "python -m train"
    assert json.loads(env["EMBER_RUNTIME_ENV_JSON"]) == {"env_vars": {"A": "1"}, "working_dir": "ember-pkg://" + "a" * 64 + ".zip"}
    assert json.loads(env["EMBER_METADATA_JSON"]) == {"team": "ml"}
    assert env["EMBER_ENTRYPOINT_FLAGS"] == '--entrypoint-num-cpus 1 --entrypoint-resources {"disk":2.0}'
    assert reasons(p) == ["CreatedSubmitter"] and p.status["jobDeploymentStatus"] == "Initializing"


def test_operator_mode_submits_through_the_head() -> None:
    status = {"jobDeploymentStatus": "Initializing", "attempt": 1, "startTime": "2026-01-02T03:00:00Z"}
    p = plan(ejob(status, submissionMode="Operator"), seen(cluster=cluster(), head_asked=True, head_error=""))
    assert p.submit and not p.creates


def test_the_head_running_it_makes_it_running_then_complete() -> None:
    status = {"jobDeploymentStatus": "Initializing", "attempt": 1, "startTime": "2026-01-02T03:00:00Z"}
    p = plan(ejob(status), seen(cluster=cluster(), head_asked=True, head_job=HeadJob("RUNNING", "running (pid 9)")))
    assert (p.status["jobDeploymentStatus"], p.status["jobStatus"]) == ("Running", "RUNNING")
    assert reasons(p) == ["Running"]
    p = plan(ejob(p.status), seen(cluster=cluster(), head_asked=True, head_job=HeadJob("SUCCEEDED", "exited 0", 0)))
    assert (p.status["jobDeploymentStatus"], p.status["jobStatus"]) == ("Complete", "SUCCEEDED")
    assert p.status["succeeded"] == 1 and p.status["endTime"] == "2026-01-02T03:04:05Z"
    assert reasons(p) == ["Complete"]


def test_a_finished_jobs_own_cluster_goes_after_the_ttl() -> None:
    done = {"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED", "attempt": 1,
            "startTime": "2026-01-02T03:00:00Z", "endTime": "2026-01-02T03:04:00Z"}
    body = ejob(done, shutdownAfterJobFinishes=True, ttlSecondsAfterFinished=60)
    early = plan(body, seen(cluster=cluster()))
    assert early.deletes == () and requeue_after(body, NOW) == 55.0
    due = plan(body, seen(cluster=cluster(), now=NOW + timedelta(seconds=60)))
    assert due.deletes == (("Cluster", "train-1"),) and reasons(due) == ["DeletedCluster"]
    assert plan(ejob(done), seen(cluster=cluster(), now=NOW + timedelta(days=1))).deletes == ()  # kept
    assert requeue_after(ejob(done), NOW) is None


def test_a_failure_with_retries_left_starts_again_on_a_new_cluster() -> None:
    body = ejob(running(), backoffLimit=1)
    submitter = {"metadata": {"name": "train-1-submit"}}
    p = plan(body, seen(cluster=cluster(), submitter=submitter, head_asked=True,
                        head_job=HeadJob("FAILED", "the entrypoint exited with code 3", 3)))
    assert set(p.deletes) == {("Cluster", "train-1"), ("Job", "train-1-submit")}
    assert (p.status["attempt"], p.status["failed"], p.status["jobDeploymentStatus"]) == (2, 1, "Initializing")
    assert p.status["reason"] == "Retrying" and p.status["submissionId"] == "train-01234567-2"
    assert "attempt 1 failed: the job FAILED: the entrypoint exited with code 3" in p.status["message"]
    assert reasons(p) == ["Retrying"]
    again = plan(ejob(p.status, backoffLimit=1), seen())
    assert [c["metadata"]["name"] for c in again.creates] == ["train-2"]
    last = plan(ejob({**running(attempt=2), "failed": 1}, backoffLimit=1),
                seen(cluster=cluster(name="train-2"), head_asked=True, head_job=HeadJob("FAILED", "exit 3", 3)))
    assert (last.status["jobDeploymentStatus"], last.status["reason"], last.status["failed"]) == (
        "Failed", "BackoffLimitExceeded", 2)
    assert "after 2 attempts, backoffLimit 1" in last.status["message"] and reasons(last) == ["Failed"]


def test_no_retry_without_a_backoff_limit() -> None:
    p = plan(ejob(running()), seen(cluster=cluster(), head_asked=True, head_job=HeadJob("STOPPED", "stopped")))
    assert (p.status["jobDeploymentStatus"], p.status["reason"]) == ("Failed", "JobFailed")
    assert p.deletes == ()  # the cluster stays, unless shutdownAfterJobFinishes


def test_past_the_deadline_it_is_stopped_and_failed_without_retry() -> None:
    started = (NOW - timedelta(seconds=61)).strftime(job_render.STAMP)
    p = plan(ejob(running(startTime=started), activeDeadlineSeconds=60, backoffLimit=3),
             seen(cluster=cluster(), head_asked=True, head_job=HeadJob("RUNNING", "running")))
    assert p.stop and p.status["jobDeploymentStatus"] == "Failed" and p.status["reason"] == "DeadlineExceeded"
    assert p.status["jobStatus"] == "STOPPED" and reasons(p) == ["DeadlineExceeded"]
    within = plan(ejob(running(startTime=started), activeDeadlineSeconds=62),
                  seen(cluster=cluster(), head_asked=True, head_job=HeadJob("RUNNING", "running")))
    assert not within.stop and within.status["jobDeploymentStatus"] == "Running"


def test_suspend_stops_the_job_and_deletes_its_cluster_and_resume_starts_a_new_attempt() -> None:
    p = plan(ejob(running(), suspend=True),
             seen(cluster=cluster(), submitter={"metadata": {}}, head_asked=True, head_job=HeadJob("RUNNING", "r")))
    assert p.stop and set(p.deletes) == {("Cluster", "train-1"), ("Job", "train-1-submit")}
    assert (p.status["jobDeploymentStatus"], p.status["jobStatus"]) == ("Suspended", "STOPPED")
    assert reasons(p) == ["Suspended"]
    assert plan(ejob(p.status, suspend=True), seen()).events == ()  # said once
    resumed = plan(ejob(p.status), seen())
    assert (resumed.status["jobDeploymentStatus"], resumed.status["attempt"]) == ("Initializing", 2)
    assert resumed.status["startTime"] == "2026-01-02T03:04:05Z" and reasons(resumed) == ["Resumed"]
    created_suspended = plan(ejob(suspend=True), seen())
    assert created_suspended.status["jobDeploymentStatus"] == "Suspended" and not created_suspended.creates
    admitted = plan(ejob(created_suspended.status), seen())  # a queue lets it run: its first attempt
    assert (admitted.status["jobDeploymentStatus"], admitted.status["attempt"]) == ("Initializing", 1)


def test_on_a_selected_cluster_nothing_is_made_and_nothing_deleted() -> None:
    body = ejob(clusterSelector={"name": "small"})
    del body["spec"]["clusterSpec"]
    p = plan(body, seen())
    assert not p.creates and p.status["message"] == "waiting for Cluster small (spec.clusterSelector) to exist"
    assert p.status["clusterName"] == "small"
    body["status"] = running()
    suspended = plan({**body, "spec": {**body["spec"], "suspend": True}},
                     seen(cluster=cluster(name="small"), head_asked=True, head_job=HeadJob("RUNNING", "r")))
    assert suspended.stop and suspended.deletes == ()


def test_what_ends_an_attempt_besides_the_job() -> None:
    init = {"jobDeploymentStatus": "Initializing", "attempt": 1, "startTime": "2026-01-02T03:00:00Z"}
    failed_submitter = {"metadata": {"name": "train-1-submit"}, "status": {"conditions": [
        {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]}}
    p = plan(ejob(init), seen(cluster=cluster(), submitter=failed_submitter, head_asked=True))
    assert p.status["jobDeploymentStatus"] == "Failed"
    assert "its submitter Job train-1-submit failed (BackoffLimitExceeded: Job has reached" in p.status["message"]
    conditions = [{"type": "TemplateAllowed", "status": "False", "message": "hostPath volumes are not allowed"}]
    p = plan(ejob(init), seen(cluster=cluster("Failed", conditions=conditions)))
    assert p.status["message"] == "its Cluster train-1 failed: hostPath volumes are not allowed"
    p = plan(ejob(running()), seen())
    assert p.status["message"] == "its Cluster train-1 is gone" and p.status["jobDeploymentStatus"] == "Failed"
    p = plan(ejob(running()), seen(cluster=cluster(), head_asked=True))
    assert "no longer knows the job" in p.status["message"]
    p = plan(ejob(init, submissionMode="Operator"),
             seen(cluster=cluster(), head_asked=True, submit_error="runtime_env.working_dir ... is not on the head"))
    assert p.status["message"].startswith("the head refused the job: runtime_env.working_dir")


def test_waiting_for_a_config_map_is_said_and_fails_nothing() -> None:
    init = {"jobDeploymentStatus": "Initializing", "attempt": 1, "startTime": "2026-01-02T03:00:00Z"}
    p = plan(ejob(init), seen(cluster=cluster(), head_asked=True, waiting_for="ConfigMap code to exist"))
    assert p.status["jobDeploymentStatus"] == "Initializing" and p.status["message"] == "waiting for ConfigMap code to exist"
    assert not p.creates and not p.submit


def test_earlier_attempts_leftovers_are_deleted() -> None:
    p = plan(ejob(running(attempt=2)), seen(cluster=cluster(name="train-2"), head_asked=True,
                                            head_job=HeadJob("RUNNING", "r"), stale=(("Cluster", "train-1"),)))
    assert p.deletes == (("Cluster", "train-1"),)


def test_a_cluster_the_api_server_refuses_fails_the_attempt_with_its_words() -> None:
    refused = "creating Cluster ml/train-1: 422 Invalid: spec.head.template.volumes[host].hostPath: not allowed"
    p = plan(ejob(), seen(create_error=refused))
    assert not p.creates and p.status["jobDeploymentStatus"] == "Failed"
    assert p.status["message"] == f"the API server refused what it needs: {refused}"
    assert reasons(p) == ["Initializing", "Failed"]
