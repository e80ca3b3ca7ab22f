"""The Kubernetes node provider end to end, as far as one machine goes: the real kopf operator
against the API mock, a real ember head on loopback, and a "kubelet" that turns every worker pod
the operator creates into a real node agent labelled as that pod (and stops it when the pod is
deleted). A driver's work that does not fit makes the operator raise ``replicas``; once the
workers idle past the timeout it lists them in ``workersToDelete``, drains and deletes them."""

from __future__ import annotations

import asyncio
import base64
import os
import textwrap
from typing import Any

import pytest

from ember.runtime import launcher, session
from tests.conftest import run_driver, wait_until_gone
from tests.operator.kube_api import (
    NAMESPACE,
    Client,
    KubeApi,
    eventually,
    mock_api,
    running_operator,
)

pytestmark = [pytest.mark.asyncio, pytest.mark.slow]

TOKEN = "t0ken-of-the-autoscaling-test"

DRIVER = textwrap.dedent(
    """
    import os, sys, time, ember
    ember.init(address=sys.argv[1], logging_level="WARNING")

    @ember.remote(num_cpus=1)
    def work(i):
        time.sleep(2)
        return i, ember.get_runtime_context().get_node_id()

    results = ember.get([work.remote(i) for i in range(4)], timeout=120)
    print(sorted(i for i, _ in results), len({node for _, node in results}))
    """
)


def autoscaled(port: int) -> dict[str, Any]:
    return {
        "apiVersion": "ember.dev/v1alpha1",
        "kind": "Cluster",
        "metadata": {"name": "auto", "namespace": NAMESPACE},
        "spec": {
            "head": {"ports": {"client": port}},
            "workerGroups": [{
                "name": "cpu", "minReplicas": 0, "maxReplicas": 2,
                "resources": {"cpu": "1", "memory": "1Gi"},
            }],
            "autoscaling": {"enabled": True, "idleTimeoutSeconds": 3, "intervalSeconds": 0.5},
        },
    }


async def kubelet(api: KubeApi, session_dir: str, head_address: str, stop: asyncio.Event) -> None:
    """Each worker pod becomes a node agent with the pod's name as its label, then Ready; a
    deleted pod's agent is stopped. The head pod is the real head started by the test."""
    agents: dict[str, launcher.LocalProcesses] = {}
    try:
        while not stop.is_set():
            pods = api.pods()
            for name, pod in pods.items():
                if (pod.get("status") or {}).get("conditions"):
                    continue
                labels = pod["metadata"]["labels"]
                if labels.get("ember.dev/node-type") == "worker":
                    agents[name] = await asyncio.to_thread(
                        launcher.start_agent, session_dir, head_address, num_cpus=1, token=TOKEN,
                        labels={"ember.dev/pod": name, "ember.dev/group": labels["ember.dev/group"]},
                    )
                api.mark_ready(name)
            for name in [n for n in agents if n not in pods]:
                await asyncio.to_thread(agents.pop(name).stop)
            await asyncio.sleep(0.2)
    finally:
        for agent in agents.values():
            await asyncio.to_thread(agent.stop)


async def test_pending_work_grows_the_group_and_idle_workers_are_drained_away() -> None:
    session_dir = session.new_session_dir()
    head = await asyncio.to_thread(
        launcher.start, session_dir, num_cpus=0, token=TOKEN, dashboard_port=-1, autoscaler=True,
    )  # as the operator starts a head with autoscaling on
    port = int(head.head_address.rsplit(":", 1)[1])
    stop = asyncio.Event()
    try:
        async with mock_api() as (api, config):
            client = Client(config)
            await asyncio.to_thread(client.core.create_namespaced_secret, NAMESPACE, {
                "metadata": {"name": "auto-token", "labels": {"ember.dev/cluster": "auto"}},
                "data": {"token": base64.b64encode(TOKEN.encode()).decode()},
            })
            playing = asyncio.create_task(kubelet(api, session_dir, head.head_address, stop))
            async with running_operator(config):
                await client.apply_cluster(autoscaled(port))
                await eventually(lambda: api.cluster("auto").get("status", {}).get("phase") == "Running",
                                 "the cluster Running with no workers", api=api)
                assert not [n for n in api.pods() if n != "auto-head"]

                driver = asyncio.create_task(asyncio.to_thread(
                    run_driver, DRIVER, head.head_address, timeout=180,
                    env={**os.environ, "EMBER_TOKEN": TOKEN},
                ))
                try:
                    await eventually(
                        lambda: api.cluster("auto")["spec"]["workerGroups"][0].get("replicas") == 2,
                        "replicas raised to the group's maximum", api=api,
                    )
                finally:
                    result = await driver
                assert result.returncode == 0, result.stderr
                done, nodes = result.stdout.rsplit("]", 1)
                assert done + "]" == "[0, 1, 2, 3]" and int(nodes) == 2, result.stdout
                assert any(reason == "Scaled" and "+2 cpu" in message for _, reason, message in api.events())

                def shrunk() -> bool:
                    group = api.cluster("auto")["spec"]["workerGroups"][0]
                    workers = [n for n in api.pods() if n != "auto-head"]
                    return group.get("replicas") == 0 and not workers and not (
                        group.get("scaleStrategy") or {}
                    ).get("workersToDelete")

                await eventually(shrunk, "the idle workers drained, deleted and the list cleared", 90, api=api)
                reasons = [reason for _, reason, _ in api.events()]
                assert "DrainStarted" in reasons and "DeletedWithoutDrain" not in reasons, api.events()
            stop.set()
            await playing
            client.close()
    finally:
        stop.set()
        await asyncio.to_thread(head.stop)
    assert await asyncio.to_thread(wait_until_gone, session_dir) == []
