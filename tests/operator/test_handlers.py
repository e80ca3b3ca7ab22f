"""The real kopf operator with ember's handlers, against a Kubernetes API mock over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ember.operator import render
from tests.operator import kube_api
from tests.operator.kube_api import (
    NAMESPACE,
    Client,
    eventually,
    mock_api,
    running_operator,
)

pytestmark = pytest.mark.asyncio


@pytest.fixture(autouse=True)
def plan_function(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    if not hasattr(render, "plan"):  # until branch op-core's plan lands
        from tests.operator import interim_plan

        monkeypatch.setattr(render, "plan", interim_plan.plan, raising=False)
    yield


def cluster(name: str = "demo", replicas: int = 2, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "ember.dev/v1alpha1",
        "kind": "Cluster",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "image": "ember:0.1.0",
            "head": {"ports": {"client": 10001}},
            "workerGroups": [{"name": "cpu", "replicas": replicas, "minReplicas": 0, "maxReplicas": 10}],
            **spec,
        },
    }


async def test_create_makes_secret_service_head_and_workers_then_runs() -> None:
    async with mock_api() as (api, config):
        client = Client(config)
        async with running_operator(config):
            await client.apply_cluster(cluster())
            await eventually(lambda: set(api.pods()) == {"demo-head", "demo-cpu-0", "demo-cpu-1"}, "pods")
            assert "demo-token" in api.live(kube_api.SECRETS)
            assert "demo-head" in api.live(kube_api.SERVICES)
            await eventually(lambda: api.cluster("demo").get("status", {}).get("phase") == "Pending", "Pending")
            for pod in api.pods():
                api.mark_ready(pod)
            await eventually(lambda: api.cluster("demo")["status"]["phase"] == "Running", "Running", timeout=20)
        client.close()
