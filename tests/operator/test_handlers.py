"""The real kopf operator with ember's handlers, against a Kubernetes API mock over HTTP.

Each test runs the operator in its own body (kopf cancels, when it stops, the tasks created
after it started: a fixture's teardown included) against a fresh mock, and asserts what the
operator asked the API for and the status it wrote. The kubelet's part (a pod becoming Ready,
failing) is played by writing pod statuses into the mock. What a mock cannot show — garbage
collection, validation — is the kind suite's.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from typing import Any

import kmock
import pytest

from ember.operator import handlers, operator_main, operator_metrics
from ember.operator.kube_objects import KubeObjects
from tests.conftest import REPO
from tests.operator import kube_api
from tests.operator.kube_api import (
    NAMESPACE,
    PODS,
    Client,
    KubeApi,
    eventually,
    mock_api,
    running_operator,
)

pytestmark = [pytest.mark.asyncio, pytest.mark.slow]


def cluster(name: str, replicas: int = 2, client_port: int = 10001, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "ember.dev/v1alpha1",
        "kind": "Cluster",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "image": "ember:0.1.0",
            "head": {"ports": {"client": client_port}},
            "workerGroups": [
                {"name": "cpu", "replicas": replicas, "minReplicas": 0, "maxReplicas": 10}
            ],
            **spec,
        },
    }


def phase(api: KubeApi, name: str) -> str:
    return str(api.cluster(name).get("status", {}).get("phase", ""))


def reconciles(name: str, trigger: str, result: str = "ok") -> float:
    value = operator_metrics.REGISTRY.get_sample_value(
        "ember_operator_reconciles_total",
        {"namespace": NAMESPACE, "cluster": name, "trigger": trigger, "result": result},
    )
    return value or 0.0


def pod_creates(api: KubeApi, name: str) -> list[str]:
    return [
        r.data["metadata"]["name"] for r in api.calls(kmock.action.CREATE, PODS)
        if r.data["metadata"]["labels"].get("ember.dev/cluster") == name
    ]


async def started(api: KubeApi, client: Client, name: str, replicas: int = 2, **spec: Any) -> None:
    """Apply a Cluster and play the kubelet: every pod the operator creates becomes Ready (the
    workers come once the head is Ready)."""
    await client.apply_cluster(cluster(name, replicas, **spec))
    await eventually(lambda: f"{name}-head" in api.pods(), f"the head pod of {name}")
    api.mark_ready(f"{name}-head")
    workers = {f"{name}-cpu-{i}" for i in range(replicas)}
    await eventually(lambda: workers <= set(api.pods()), f"the workers of {name}", timeout=45)
    for pod in workers:
        api.mark_ready(pod)
    await eventually(lambda: phase(api, name) == "Running", f"{name} Running", timeout=45)


async def test_create_makes_secret_service_head_and_workers_then_runs() -> None:
    async with mock_api() as (api, config):
        client = Client(config)
        async with running_operator(config):
            await client.apply_cluster(cluster("demo"))
            await eventually(lambda: set(api.pods()) == {"demo-head"}, "the head pod")
            await eventually(lambda: phase(api, "demo") == "Pending", "Pending until the head is Ready")
            api.mark_ready("demo-head")
            await eventually(
                lambda: set(api.pods()) == {"demo-head", "demo-cpu-0", "demo-cpu-1"}, "the workers",
                timeout=45,
            )
            assert "demo-token" in api.live(kube_api.SECRETS)
            assert "demo-head" in api.live(kube_api.SERVICES)
            uid = api.cluster("demo")["metadata"]["uid"]
            for pod in api.pods().values():
                owner = pod["metadata"]["ownerReferences"][0]
                assert owner["uid"] == uid and owner["controller"] is True
            # Created in the contract's order: the Secret and Service before the head, then workers.
            order = [
                (r.resource.plural, r.data["metadata"]["name"])
                for r in api if r.action == kmock.action.CREATE and r.resource is not None
                and r.resource.plural in ("secrets", "services", "pods")
            ]
            assert order[:3] == [("secrets", "demo-token"), ("services", "demo-head"), ("pods", "demo-head")]
            assert phase(api, "demo") in ("Pending", "Scaling")
            for pod in api.pods():
                api.mark_ready(pod)
            await eventually(lambda: phase(api, "demo") == "Running", "Running", timeout=45)
            assert reconciles("demo", "create") >= 1
        client.close()


async def test_resume_after_an_operator_restart_creates_nothing_twice() -> None:
    async with mock_api() as (api, config):
        client = Client(config)
        async with running_operator(config):
            await started(api, client, "again")
        before = pod_creates(api, "again")
        assert sorted(before) == ["again-cpu-0", "again-cpu-1", "again-head"]
        resumed = reconciles("again", "resume")
        async with running_operator(config):
            await eventually(lambda: reconciles("again", "resume") > resumed, "the resume handler")
            await eventually(lambda: reconciles("again", "timer") >= 1, "a timer pass")
            assert pod_creates(api, "again") == before
            assert phase(api, "again") == "Running"
        client.close()


async def test_a_pod_deleted_behind_its_back_is_recreated() -> None:
    async with mock_api() as (api, config):
        client = Client(config)
        async with running_operator(config):
            await started(api, client, "gone")
            await client.delete_pod("gone-cpu-1")
            assert "gone-cpu-1" not in api.pods()
            await eventually(lambda: "gone-cpu-1" in api.pods(), "the worker back", timeout=45)
            assert pod_creates(api, "gone").count("gone-cpu-1") == 2
        client.close()


async def test_a_failed_pod_is_replaced_and_said_so() -> None:
    async with mock_api() as (api, config):
        client = Client(config)
        async with running_operator(config):
            await started(api, client, "flaky")
            api.mark_failed("flaky-cpu-0")

            def replaced() -> bool:
                workers = [n for n in api.pods() if n != "flaky-head"]
                return "flaky-cpu-0" not in workers and len(workers) == 2

            await eventually(replaced, "flaky-cpu-0 deleted and replaced", timeout=45, api=api)
            await eventually(
                lambda: any(kind == "Warning" and "flaky-cpu-0" in message
                            for kind, _, message in api.events()),
                "a Warning event naming the pod",
            )
            groups = api.cluster("flaky")["status"]["workerGroups"]
            assert groups[0]["failedReplicas"] >= 1
        client.close()


async def test_suspend_removes_the_pods_and_resume_brings_them_back() -> None:
    async with mock_api() as (api, config):
        client = Client(config)
        async with running_operator(config):
            await started(api, client, "nap")
            await client.patch_cluster("nap", {"spec": {"suspend": True}})
            await eventually(lambda: not api.pods(), "no pods")
            await eventually(lambda: phase(api, "nap") == "Suspended", "Suspended")
            assert "nap" in [n for (r, _, n) in api.objects if r == kube_api.CLUSTERS]
            await client.patch_cluster("nap", {"spec": {"suspend": False}})
            await eventually(lambda: "nap-head" in api.pods(), "the head back")
            # The pass that made the head writes the status after it: Pending until it is Ready.
            await eventually(lambda: phase(api, "nap") == "Pending", "Pending again")
            api.mark_ready("nap-head")
            await eventually(lambda: {"nap-cpu-0", "nap-cpu-1"} <= set(api.pods()), "workers back", api=api)
        client.close()


async def test_deleting_the_cluster_stops_its_reconcile() -> None:
    async with mock_api() as (api, config):
        client = Client(config)
        async with running_operator(config):
            await started(api, client, "bye")
            await client.delete_cluster("bye")
            # kopf's finalizer (it stops the timer first) is released: the Cluster goes.
            await eventually(lambda: api.objects[kube_api.CLUSTERS, NAMESPACE, "bye"].deleted, "gone")
            # The pods go with their owner (garbage collection, not in a mock): the operator
            # must not touch them any more, not even on its timer.
            for pod in list(api.pods()):
                await client.delete_pod(pod)
            calls = len(list(api))
            await asyncio.sleep(12)  # longer than the timer's interval
            later = [r for r in list(api)[calls:] if r.resource == PODS]
            assert later == [] and not api.pods()
        client.close()


def documented_escape_hatch() -> dict[str, Any]:
    """The merge patch docs/kubernetes.md tells a user to apply to a Cluster stuck in Terminating."""
    page = (REPO / "docs" / "kubernetes.md").read_text()
    (line,) = [ln for ln in page.splitlines() if ln.startswith("kubectl patch clusters.ember.dev")]
    assert "--type=merge" in line
    patch: dict[str, Any] = json.loads(line.split(" -p '", 1)[1].rsplit("'", 1)[0])
    return patch


async def test_a_cluster_carries_the_finalizer_the_docs_name_and_goes_while_the_operator_runs() -> None:
    async with mock_api() as (api, config):
        client = Client(config)
        async with running_operator(config):
            await started(api, client, "fin", replicas=1)
            assert api.cluster("fin")["metadata"]["finalizers"] == [operator_main.FINALIZER]
            assert f"finalizer `{operator_main.FINALIZER}`" in (REPO / "docs" / "kubernetes.md").read_text()
            await client.delete_cluster("fin")
            await eventually(lambda: api.objects[kube_api.CLUSTERS, NAMESPACE, "fin"].deleted, "fin gone")
        client.close()


async def test_a_cluster_deleted_during_a_timer_pass_goes_once_the_pass_ends(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """kopf lets a Cluster go only once its timer has stopped, and looks again whether it has
    every ``cancellation_polling`` seconds: 60 by default, so a Cluster deleted while a pass ran
    stayed (Terminating, its name taken) a minute longer. The timer's pass here is held at its
    start until the deletion has been handled."""
    gate, held = asyncio.Event(), asyncio.Event()
    real = handlers.reconcile

    async def held_timer_pass(body: Any, memo: Any, trigger: str) -> None:
        if trigger == "timer" and not gate.is_set():
            held.set()
            await gate.wait()
        await real(body, memo, trigger)

    caplog.set_level(logging.INFO, logger="ember.operator")
    async with mock_api() as (api, config):
        client = Client(config)
        async with running_operator(config):
            await started(api, client, "mid", replicas=1)
            monkeypatch.setattr(handlers, "reconcile", held_timer_pass)
            await eventually(held.is_set, "a timer pass under way")  # every 10 s
            await client.delete_cluster("mid")
            await eventually(lambda: any("cluster ns1/mid deleted" in r.getMessage() for r in caplog.records),
                             "the deletion handled while the timer's pass is held")
            gate.set()
            await eventually(lambda: api.objects[kube_api.CLUSTERS, NAMESPACE, "mid"].deleted, "mid gone")
        client.close()


async def test_with_no_operator_a_deleted_cluster_waits_until_the_documented_patch_lets_it_go() -> None:
    """What happens after ``helm uninstall`` with a Cluster left: the deletion waits for the
    finalizer; the one-line patch of docs/kubernetes.md ends it, and an operator started later finds
    nothing to do for it."""
    async with mock_api() as (api, config):
        client = Client(config)
        async with running_operator(config):
            await started(api, client, "left", replicas=1)
        client.close()
        # A new client, new connections: kopf, stopping, cancelled the mock's handlers of the
        # connections opened while it ran.
        client = Client(config)
        await client.delete_cluster("left")
        stored = api.objects[kube_api.CLUSTERS, NAMESPACE, "left"]
        assert not stored.deleted and stored.raw["metadata"].get("deletionTimestamp")
        await client.patch_cluster("left", documented_escape_hatch())
        assert api.objects[kube_api.CLUSTERS, NAMESPACE, "left"].deleted
        creates, mark = len(api.calls(kmock.action.CREATE, PODS)), len(list(api))
        async with running_operator(config):
            # The pods are still there (no garbage collector in a mock): the operator sees them
            # and looks for their Cluster, which is gone.
            await eventually(lambda: any(
                r.action == kmock.action.FETCH and r.resource == kube_api.CLUSTERS and r.name == "left"
                for r in list(api)[mark:]
            ), "the operator looking up the Cluster of the pods it sees")
        assert len(api.calls(kmock.action.CREATE, PODS)) == creates
        client.close()


async def test_workers_to_delete_go_without_a_drain_when_the_head_never_answers() -> None:
    async with mock_api() as (api, config):
        client = Client(config)
        async with running_operator(config, head_grace_seconds=1.0):
            # The head pod is Ready at 127.0.0.1, but nothing listens on port 9: no drain.
            await started(api, client, "mute", client_port=9)
            body = cluster("mute", client_port=9)
            group = body["spec"]["workerGroups"][0]
            group.update(replicas=1, scaleStrategy={"workersToDelete": ["mute-cpu-1"]})
            await client.patch_cluster("mute", {"spec": {"workerGroups": [group]}})
            await eventually(lambda: "mute-cpu-1" not in api.pods(), "mute-cpu-1 deleted", timeout=45)
            assert "mute-cpu-0" in api.pods()
            await eventually(
                lambda: any(reason == "DeletedWithoutDrain" and "mute-cpu-1" in message
                            for _, reason, message in api.events()),
                "a Warning that says the pod went without a drain",
            )
            await eventually(
                lambda: api.cluster("mute")["spec"]["workerGroups"][0]
                .get("scaleStrategy", {}).get("workersToDelete") == [],
                "workersToDelete cleared once the pod is gone",
            )
        client.close()


async def test_workers_to_delete_are_drained_by_a_real_head_first() -> None:
    """A real ember head on loopback, with node agents labelled as the pods the operator made:
    the operator drains the node of the pod named in workersToDelete through the head, and
    deletes the pod once the head reports it drained."""
    from ember.operator.head_client import HeadClient
    from ember.runtime import launcher, session
    from tests.conftest import wait_until_gone

    token = "t0ken-of-the-drain-test"
    session_dir = session.new_session_dir()
    head = await asyncio.to_thread(
        launcher.start, session_dir, num_cpus=0, token=token, dashboard_port=-1
    )
    agents: list[launcher.LocalProcesses] = []
    try:
        for pod in ("drain-cpu-0", "drain-cpu-1"):
            agents.append(await asyncio.to_thread(
                launcher.start_agent, session_dir, head.head_address, num_cpus=1, token=token,
                labels={"ember.dev/pod": pod, "ember.dev/group": "cpu"},
            ))
        port = int(head.head_address.rsplit(":", 1)[1])
        async with mock_api() as (api, config):
            client = Client(config)
            await asyncio.to_thread(client.core.create_namespaced_secret, NAMESPACE, {
                "metadata": {"name": "drain-token", "labels": {"ember.dev/cluster": "drain"}},
                "data": {"token": base64.b64encode(token.encode()).decode()},
            })
            async with running_operator(config):
                await started(api, client, "drain", client_port=port)
                body = cluster("drain", client_port=port)
                group = body["spec"]["workerGroups"][0]
                group.update(replicas=1, scaleStrategy={"workersToDelete": ["drain-cpu-1"]})
                await client.patch_cluster("drain", {"spec": {"workerGroups": [group]}})
                await eventually(
                    lambda: any(reason == "DrainStarted" and "drain-cpu-1" in message
                                for _, reason, message in api.events()),
                    "the drain to start",
                )
                await eventually(lambda: "drain-cpu-1" not in api.pods(), "drain-cpu-1 deleted", 40)
                async with HeadClient("ns1/drain", head.head_address, token) as ask:
                    nodes = await ask.nodes_of({"drain-cpu-0", "drain-cpu-1"})
                from ember.runtime.wire.protocol import ember_pb2 as pb

                assert nodes["drain-cpu-1"].drain_state == pb.DRAINED
                assert nodes["drain-cpu-0"].drain_state == pb.NOT_DRAINING
                assert "drain-cpu-0" in api.pods()
                assert not [e for e in api.events() if e[1] == "DeletedWithoutDrain"]
            client.close()
    finally:
        for agent in agents:
            await asyncio.to_thread(agent.stop)
        await asyncio.to_thread(head.stop)
    assert await asyncio.to_thread(wait_until_gone, session_dir) == []


async def kubelet(api: KubeApi, stop: asyncio.Event) -> None:
    """Every pod that appears becomes Ready a moment later, as on a healthy node."""
    while not stop.is_set():
        for name, pod in api.pods().items():
            if not (pod.get("status") or {}).get("conditions"):
                api.mark_ready(name)
        await asyncio.sleep(0.2)


async def test_an_image_change_rolls_the_workers_then_the_head() -> None:
    async with mock_api() as (api, config):
        client = Client(config)
        stop = asyncio.Event()
        marking = asyncio.create_task(kubelet(api, stop))
        try:
            async with running_operator(config, head_grace_seconds=0.5):
                await started(api, client, "roll")
                before = {n: p["metadata"]["uid"] for n, p in api.pods().items()}
                calls = len(list(api))
                await client.patch_cluster("roll", {"spec": {"image": "ember:0.2.0"}})

                def rolled() -> bool:
                    pods = api.pods()
                    return len(pods) == 3 and "roll-head" in pods and all(
                        p["metadata"]["uid"] not in before.values()
                        and p["spec"]["containers"][0]["image"] == "ember:0.2.0"
                        for p in pods.values()
                    )

                await eventually(rolled, "every pod replaced with the new image", timeout=90, api=api)
                await eventually(lambda: phase(api, "roll") == "Running", "Running again", timeout=45)
                deleted = [r.name for r in list(api)[calls:]
                           if r.action == kmock.action.DELETE and r.resource == PODS]
                # Workers first (a few at a time), the head last.
                assert deleted[-1] == "roll-head" and set(deleted) == set(before), deleted
        finally:
            stop.set()
            await marking
        client.close()


async def test_unschedulable_workers_are_said_in_the_status_and_once_in_an_event() -> None:
    """The scheduler's reason reaches the Cluster: WorkersReady's message and status say it
    on every pass, a Warning event per pod says it once (not at every timer tick)."""
    why = "0/1 nodes are available: 1 Insufficient cpu."
    async with mock_api() as (api, config):
        client = Client(config)
        async with running_operator(config):
            await client.apply_cluster(cluster("tight"))
            await eventually(lambda: "tight-head" in api.pods(), "the head pod")
            api.mark_ready("tight-head")
            workers = {"tight-cpu-0", "tight-cpu-1"}
            await eventually(lambda: workers <= set(api.pods()), "the workers", api=api)
            for pod in workers:  # what the scheduler writes when no node has the CPU
                api.set_pod_status(pod, {"phase": "Pending", "conditions": [
                    {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": why}]})

            def workers_ready() -> dict[str, Any]:
                status = api.cluster("tight").get("status") or {}
                return next((c for c in status.get("conditions") or [] if c["type"] == "WorkersReady"), {})

            await eventually(lambda: workers_ready().get("reason") == "WorkersUnschedulable", "the reason", api=api)
            assert workers_ready()["message"] == (
                f"0 of 2 worker pods Ready (cpu 0/2 ready); tight-cpu-0, tight-cpu-1 cannot be scheduled: {why}")
            assert api.cluster("tight")["status"]["unschedulablePods"] == ["tight-cpu-0", "tight-cpu-1"]
            passes = reconciles("tight", "timer")
            await eventually(lambda: reconciles("tight", "timer") >= passes + 2, "two more timer passes")
            told = sorted(m for kind, reason, m in api.events() if reason == "Unschedulable" and kind == "Warning")
            assert told == [f"worker pod tight-cpu-{i} of group cpu cannot be scheduled: {why}" for i in (0, 1)]
        client.close()


async def test_a_pass_from_a_stale_body_does_not_tell_an_unschedulable_pod_twice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two passes start from the same body, older than the status the first one wrote (a
    timer fired before the watch brought that status back): the second one must not send the
    Warning events again (under load this happened, and a test of "once" failed). The passes
    run here without kopf's machinery, so the events are caught where they are posted."""
    why = "0/1 nodes are available: 1 Insufficient cpu."
    posted: list[tuple[str, str, str]] = []
    monkeypatch.setattr(handlers.kopf, "event", lambda body, *, type, reason, message: posted.append(
        (type, reason, message)))
    async with mock_api() as (api, config):
        client = Client(config)
        kube = KubeObjects(config)
        memo = operator_main.memo(kube)
        try:
            await client.apply_cluster(cluster("stale"))
            await handlers.reconcile(api.cluster("stale"), memo, "create")
            api.mark_ready("stale-head")
            await handlers.reconcile(api.cluster("stale"), memo, "timer")
            workers = {"stale-cpu-0", "stale-cpu-1"}
            assert workers <= set(api.pods())
            for pod in workers:
                api.set_pod_status(pod, {"phase": "Pending", "conditions": [
                    {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": why}]})
            stale = json.loads(json.dumps(api.cluster("stale")))
            assert not (stale.get("status") or {}).get("unschedulablePods")
            await handlers.reconcile(stale, memo, "timer")
            assert api.cluster("stale")["status"]["unschedulablePods"] == sorted(workers)
            await handlers.reconcile(stale, memo, "timer")
            told = sorted(m for kind, reason, m in posted if reason == "Unschedulable")
            assert told == [f"worker pod stale-cpu-{i} of group cpu cannot be scheduled: {why}" for i in (0, 1)]
        finally:
            kube.close()
            client.close()
