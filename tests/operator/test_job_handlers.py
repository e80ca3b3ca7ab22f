"""The real kopf operator running EmberJobs against the Kubernetes API mock and a real ember head.

The Clusters an EmberJob makes are reconciled by the operator as any Cluster is, their pods made
Ready by a test "kubelet"; every Cluster's head port and token Secret name one real ember
cluster (a head and a node agent on loopback), so jobs really run, and the operator really
submits, follows and stops them over the head's API. A submitter Job (``submissionMode:
SubmitterJob``) is played by the kubelet too: it runs the Job's container command — the real
``ember job submit`` script — on this machine with the Job's environment (its Secret reference
resolved from the mock), and writes the Job's status when it exits.
"""

from __future__ import annotations

import asyncio
import base64
import os
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ember.job_submission import JobStatus, JobSubmissionClient
from ember.runtime import launcher, session
from ember.runtime.wire import auth
from tests.conftest import wait_until_gone
from tests.operator import kube_api
from tests.operator.kube_api import (
    BATCH_JOBS,
    CLUSTERS,
    NAMESPACE,
    Client,
    KubeApi,
    bearer_token,
    eventually,
    mock_api,
    running_operator,
)
from tests.operator.test_operator_security import VERBS, allowed

pytestmark = [pytest.mark.asyncio, pytest.mark.slow]

TOKEN_SECRET = "real-token"


class Ember:
    """One real ember cluster every mock Cluster stands for."""

    def __init__(self) -> None:
        self.token = auth.generate()
        self.processes = launcher.start(session.new_session_dir(), num_cpus=2, token=self.token, dashboard_port=-1)
        self.address = self.processes.head_address
        self.port = int(self.address.rpartition(":")[2])

    def client(self) -> JobSubmissionClient:
        return JobSubmissionClient(f"ember://{self.address}", token=self.token)


@pytest.fixture(scope="module")
def ember() -> Iterator[Ember]:
    cluster = Ember()
    try:
        yield cluster
    finally:
        cluster.processes.stop()
    assert wait_until_gone(cluster.processes.session_dir, timeout=30) == []


def cluster_spec(ember: Ember, **extra: Any) -> dict[str, Any]:
    return {"auth": {"secretName": TOKEN_SECRET}, "head": {"ports": {"client": ember.port}},
            "workerGroups": [{"name": "cpu", "replicas": 1, "minReplicas": 0, "maxReplicas": 2}], **extra}


def ejob(name: str, entrypoint: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "ember.dev/v1alpha1", "kind": "EmberJob",
            "metadata": {"name": name, "namespace": NAMESPACE}, "spec": {"entrypoint": entrypoint, **spec}}


def status(api: KubeApi, name: str) -> dict[str, Any]:
    return dict(api.ejob(name).get("status") or {})


def deployment(api: KubeApi, name: str) -> str:
    return str(status(api, name).get("jobDeploymentStatus", ""))


def clusters(api: KubeApi) -> set[str]:
    return set(api.live(CLUSTERS))


def job_events(api: KubeApi, name: str) -> list[str]:
    return [e["reason"] for e in api.live(kube_api.EVENTS).values()
            if (e.get("involvedObject") or {}).get("kind") == "EmberJob"
            and (e.get("involvedObject") or {}).get("name") == name]


class Kubelet:
    """Pods become Ready (a head at 127.0.0.1); submitter Jobs run their command here."""

    def __init__(self, api: KubeApi, ember: Ember) -> None:
        self.api = api
        self.ember = ember
        self.outputs: dict[str, str] = {}
        self._running: dict[str, asyncio.Task[None]] = {}
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Kubelet:
        self._task = asyncio.create_task(self._loop())
        return self

    async def __aexit__(self, *_: Any) -> None:
        self._stop.set()
        assert self._task is not None
        await self._task
        for task in self._running.values():
            task.cancel()

    async def _loop(self) -> None:
        while not self._stop.is_set():
            for name, pod in self.api.pods().items():
                if not (pod.get("status") or {}).get("conditions"):
                    self.api.mark_ready(name)
            for name, job in self.api.live(BATCH_JOBS).items():
                if name not in self._running and not job.get("status"):
                    self._running[name] = asyncio.create_task(self._run(name, job))
            await asyncio.sleep(0.1)

    def _environment(self, container: dict[str, Any]) -> dict[str, str]:
        env = dict(os.environ, PATH=os.pathsep.join([os.path.dirname(sys.executable), os.environ["PATH"]]))
        env.pop("EMBER_TOKEN_FILE", None)
        for variable in container["env"]:
            if "value" in variable:
                env[variable["name"]] = variable["value"]
            else:
                ref = variable["valueFrom"]["secretKeyRef"]
                secret = self.api.live(kube_api.SECRETS)[ref["name"]]
                env[variable["name"]] = base64.b64decode(secret["data"][ref["key"]]).decode()
        # The Service's DNS name resolves only in a real cluster: here it is the real head.
        assert env["EMBER_ADDRESS"].endswith(f".svc:{self.ember.port}")
        env["EMBER_ADDRESS"] = f"ember://{self.ember.address}"
        return env

    async def _run(self, name: str, job: dict[str, Any]) -> None:
        (container,) = job["spec"]["template"]["spec"]["containers"]
        self.api.objects[BATCH_JOBS, NAMESPACE, name].patch({"status": {"active": 1}})
        process = await asyncio.create_subprocess_exec(
            *container["command"], env=self._environment(container),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await process.communicate()
        self.outputs[name] = out.decode()
        done = {"type": "Complete" if process.returncode == 0 else "Failed", "status": "True",
                "reason": "Completed" if process.returncode == 0 else "BackoffLimitExceeded",
                "message": f"exit code {process.returncode}"}
        self.api.objects[BATCH_JOBS, NAMESPACE, name].patch({"status": {
            "active": 0, "succeeded" if process.returncode == 0 else "failed": 1, "conditions": [done]}})


async def _token_secret(client: Client, ember: Ember) -> None:
    await client.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": TOKEN_SECRET},
                         "data": {"token": base64.b64encode(ember.token.encode()).decode()}})


SQUARES = "python -c " + shlex.quote(
    "import ember\nember.init()\n@ember.remote\ndef square(x):\n    return x * x\n"
    "print('sum', sum(ember.get([square.remote(i) for i in range(5)])))"
)


async def test_a_submitter_job_runs_it_to_complete_and_its_cluster_goes_after_the_ttl(
    ember: Ember, granted: list[dict[str, Any]]
) -> None:
    async with mock_api() as (api, config):
        client = Client(kube_api.another_user(api, config))
        await _token_secret(client, ember)
        async with running_operator(config), Kubelet(api, ember) as kubelet:
            await client.apply_ejob(ejob("squares", SQUARES, clusterSpec=cluster_spec(ember),
                                         shutdownAfterJobFinishes=True, ttlSecondsAfterFinished=1))
            await eventually(lambda: "squares-1" in clusters(api), "the job's Cluster", api=api)
            made = api.cluster("squares-1")
            assert made["metadata"]["ownerReferences"][0]["uid"] == api.ejob("squares")["metadata"]["uid"]
            await eventually(lambda: deployment(api, "squares") == "Complete", "Complete", timeout=90, api=api)
            final = status(api, "squares")
            assert (final["jobStatus"], final["succeeded"], final["failed"], final["attempt"]) == ("SUCCEEDED", 1, 0, 1)
            assert final["clusterName"] == "squares-1" and final["startTime"] <= final["endTime"]
            submission = final["submissionId"]
            assert ember.client().get_job_logs(submission).endswith("sum 30\n")
            await eventually(lambda: "squares-1-submit" in kubelet.outputs, "the submitter's end")
            assert "sum 30" in kubelet.outputs["squares-1-submit"]  # it followed the job's output
            await eventually(lambda: "squares-1" not in clusters(api), "the Cluster deleted after the TTL", api=api)
            await eventually(lambda: {"Initializing", "CreatedCluster", "CreatedSubmitter", "Running", "Complete",
                                      "DeletedCluster"} <= set(job_events(api, "squares")), "the events")
        client.close()
        used = {(r.resource.group, r.resource.plural + (f"/{r.subresource}" if r.subresource else ""), VERBS[r.action])
                for r in list(api) if r.resource is not None and r.resource.plural and r.action in VERBS
                and bearer_token(r) == api.token}
        assert {("ember.dev", "emberjobs/status", "patch"), ("ember.dev", "clusters", "create"),
                ("ember.dev", "clusters", "delete"), ("batch", "jobs", "create")} <= used, sorted(used)
        refused = sorted(u for u in used if not allowed(granted, *u))
        assert refused == [], f"the chart's ClusterRole does not grant {refused}"


async def test_the_operator_submits_to_a_selected_cluster_with_a_config_map_working_dir(ember: Ember) -> None:
    async with mock_api() as (api, config):
        client = Client(config)
        await _token_secret(client, ember)
        async with running_operator(config), Kubelet(api, ember):
            await client.apply_cluster({"apiVersion": "ember.dev/v1alpha1", "kind": "Cluster",
                                        "metadata": {"name": "small", "namespace": NAMESPACE},
                                        "spec": cluster_spec(ember)})
            await client.apply_ejob(ejob(
                "words", "python words.py", clusterSelector={"name": "small"}, submissionMode="Operator",
                runtimeEnv={"workingDir": {"configMap": "words-code"}, "envVars": {"GREETING": "hi"}},
            ))
            await eventually(lambda: "waiting for ConfigMap words-code" in status(api, "words").get("message", ""),
                             "the job waiting for its ConfigMap", api=api)
            await client.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "words-code"},
                                 "data": {"words.py": "import os, ember\nember.init()\n"
                                                      "print(os.environ['GREETING'], sorted(os.listdir('.')))\n"}})
            await eventually(lambda: deployment(api, "words") == "Complete", "Complete", timeout=90, api=api)
            submission = status(api, "words")["submissionId"]
            info = ember.client().get_job_info(submission)
            assert info.runtime_env["working_dir"].startswith("ember-pkg://")
            assert ember.client().get_job_logs(submission).endswith("hi ['words.py']\n")
            assert "small" in clusters(api)  # a selected Cluster stays
            assert not api.live(BATCH_JOBS)  # the operator submitted it itself
        client.close()


async def test_a_failed_attempt_runs_again_on_a_new_cluster(ember: Ember, tmp_path: Path) -> None:
    mark = tmp_path / "tried"
    flaky = f"if [ -e {mark} ]; then echo second try; else touch {mark}; echo first try; exit 3; fi"
    async with mock_api() as (api, config):
        client = Client(config)
        await _token_secret(client, ember)
        async with running_operator(config), Kubelet(api, ember):
            await client.apply_ejob(ejob("flaky", flaky, clusterSpec=cluster_spec(ember), backoffLimit=1,
                                         submissionMode="Operator"))
            await eventually(lambda: deployment(api, "flaky") == "Complete", "Complete", timeout=120, api=api)
            final = status(api, "flaky")
            assert (final["attempt"], final["failed"], final["succeeded"]) == (2, 1, 1)
            await eventually(lambda: "Retrying" in job_events(api, "flaky"), "the event")
            await eventually(lambda: clusters(api) == {"flaky-2"}, "only the second attempt's Cluster", api=api)
            jobs = {j.submission_id: j for j in ember.client().list_jobs()}
            uid = api.ejob("flaky")["metadata"]["uid"][:8]
            assert jobs[f"flaky-{uid}-1"].status == JobStatus.FAILED
            assert jobs[f"flaky-{uid}-2"].status == JobStatus.SUCCEEDED
        client.close()


async def test_past_its_deadline_a_job_is_stopped_and_fails(ember: Ember, tmp_path: Path) -> None:
    async with mock_api() as (api, config):
        client = Client(config)
        await _token_secret(client, ember)
        async with running_operator(config), Kubelet(api, ember):
            await client.apply_ejob(ejob("slow", f"touch {tmp_path / 'started'}; sleep 600",
                                         clusterSpec=cluster_spec(ember), submissionMode="Operator", backoffLimit=2))
            await eventually(lambda: status(api, "slow").get("jobStatus") == "RUNNING", "RUNNING", timeout=90, api=api)
            await client.patch_ejob("slow", {"spec": {"activeDeadlineSeconds": 1}})
            await eventually(lambda: deployment(api, "slow") == "Failed", "Failed", api=api)
            final = status(api, "slow")
            assert final["reason"] == "DeadlineExceeded" and final["attempt"] == 1  # no retry
            await eventually(lambda: "DeadlineExceeded" in job_events(api, "slow"), "the event")
            head = ember.client()
            await eventually(lambda: head.get_job_status(final["submissionId"]) == JobStatus.STOPPED,
                             "the job stopped on the head")
        client.close()


async def test_suspend_stops_it_and_deletes_its_cluster_and_resume_runs_it_again(
    ember: Ember, tmp_path: Path
) -> None:
    gate = tmp_path / "go"
    waits = f"while [ ! -e {gate} ]; do sleep 0.05; done; echo through"
    async with mock_api() as (api, config):
        client = Client(config)
        await _token_secret(client, ember)
        async with running_operator(config), Kubelet(api, ember):
            await client.apply_ejob(ejob("nap", waits, clusterSpec=cluster_spec(ember), submissionMode="Operator"))
            await eventually(lambda: status(api, "nap").get("jobStatus") == "RUNNING", "RUNNING", timeout=90, api=api)
            first = status(api, "nap")["submissionId"]
            await client.patch_ejob("nap", {"spec": {"suspend": True}})
            await eventually(lambda: deployment(api, "nap") == "Suspended", "Suspended", api=api)
            await eventually(lambda: "nap-1" not in clusters(api), "its Cluster deleted", api=api)
            head = ember.client()
            await eventually(lambda: head.get_job_status(first) == JobStatus.STOPPED, "the first attempt stopped")
            await client.patch_ejob("nap", {"spec": {"suspend": False}})
            await eventually(lambda: status(api, "nap").get("jobStatus") == "RUNNING", "running again",
                             timeout=90, api=api)
            assert status(api, "nap")["attempt"] == 2 and "nap-2" in clusters(api)
            gate.touch()
            await eventually(lambda: deployment(api, "nap") == "Complete", "Complete", api=api)
            assert head.get_job_logs(status(api, "nap")["submissionId"]) == "through\n"
            await eventually(lambda: {"Suspended", "Resumed"} <= set(job_events(api, "nap")), "the events")
        client.close()
