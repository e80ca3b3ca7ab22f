"""What the operator may do and what it lets a Cluster do, with the real kopf operator against
the API mock: each Cluster's NetworkPolicy kept, changed and removed; a Cluster whose template
the admin's policy refuses gets no pod and is told why; and every API call the operator makes
over a Cluster's whole life is one the chart's RBAC grants."""

from __future__ import annotations

import asyncio
from typing import Any

import kmock
import pytest

from ember.operator.cluster_policy import Policy
from tests.operator import kube_api
from tests.operator.kube_api import (
    NAMESPACE,
    NETWORK_POLICIES,
    Client,
    KubeApi,
    another_user,
    bearer_token,
    eventually,
    mock_api,
    running_operator,
)

pytestmark = [pytest.mark.asyncio, pytest.mark.slow]

OPERATOR = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ember-system"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/component": "operator"}}}


def cluster(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "ember.dev/v1alpha1", "kind": "Cluster",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"head": {"ports": {"client": 9}},  # nothing listens: drains wait out the grace
                 "workerGroups": [{"name": "cpu", "replicas": 2, "minReplicas": 0, "maxReplicas": 4}],
                 **spec},
    }


def status(api: KubeApi, name: str) -> dict[str, Any]:
    return dict(api.cluster(name).get("status") or {})


def condition(api: KubeApi, name: str, kind: str) -> dict[str, Any]:
    return next((c for c in status(api, name).get("conditions") or [] if c["type"] == kind), {})


async def kubelet(api: KubeApi, stop: asyncio.Event) -> None:
    while not stop.is_set():
        for name, pod in api.pods().items():
            if not (pod.get("status") or {}).get("conditions"):
                api.mark_ready(name)
        await asyncio.sleep(0.2)


async def test_each_cluster_gets_a_network_policy_kept_to_its_spec() -> None:
    async with mock_api() as (api, config):
        client = Client(config)
        async with running_operator(config, policy=Policy(operator_peer=OPERATOR)):
            await client.apply_cluster(cluster("net"))
            await eventually(lambda: "net-network" in api.live(NETWORK_POLICIES), "the NetworkPolicy", api=api)
            policy = api.live(NETWORK_POLICIES)["net-network"]
            assert policy["metadata"]["ownerReferences"][0]["uid"] == api.cluster("net")["metadata"]["uid"]
            assert policy["spec"]["podSelector"] == {"matchLabels": {"ember.dev/cluster": "net"}}
            assert [rule["from"] for rule in policy["spec"]["ingress"]] == [
                [{"podSelector": {"matchLabels": {"ember.dev/cluster": "net"}}}], [OPERATOR],
                [{"namespaceSelector": {}}]]
            await client.patch_cluster("net", {"spec": {"networkPolicy": {
                "clientFrom": [{"namespaceSelector": {"matchLabels": {"team": "ml"}}}], "metricsFrom": []}}})

            def updated() -> bool:
                ingress = api.live(NETWORK_POLICIES)["net-network"]["spec"]["ingress"]
                return [rule["from"] for rule in ingress][1:] == [
                    [OPERATOR], [{"namespaceSelector": {"matchLabels": {"team": "ml"}}}]]

            await eventually(updated, "the NetworkPolicy patched to the new peers", api=api)
            await client.patch_cluster("net", {"spec": {"networkPolicy": {"enabled": False}}})
            await eventually(lambda: "net-network" not in api.live(NETWORK_POLICIES), "the NetworkPolicy gone")
        client.close()


async def test_a_refused_template_gets_no_pod_and_says_which_field() -> None:
    host = {"volumes": [{"name": "docker", "hostPath": {"path": "/var/run/docker.sock"}}]}
    async with mock_api() as (api, config):
        client = Client(config)
        async with running_operator(config):
            await client.apply_cluster(cluster("sly", workerGroups=[
                {"name": "cpu", "replicas": 1, "template": host}]))
            field = "spec.workerGroups[cpu].template.volumes[docker].hostPath"
            await eventually(lambda: condition(api, "sly", "TemplateAllowed").get("status") == "False",
                             "TemplateAllowed False", api=api)
            assert field in condition(api, "sly", "TemplateAllowed")["message"]
            assert status(api, "sly")["phase"] == "Failed"
            await eventually(lambda: [m for _, r, m in api.events() if r == "ForbiddenTemplate" and field in m],
                             "a Warning event naming the field", api=api)
            assert api.pods() == {}
            # Fixed, it starts.
            await client.patch_cluster("sly", {"spec": {"workerGroups": [{"name": "cpu", "replicas": 1}]}})
            await eventually(lambda: "sly-head" in api.pods(), "the head pod once the template is allowed")
        client.close()


# ---------------------------------------------------------------------------- RBAC

VERBS = {
    kmock.action.LIST: "list", kmock.action.WATCH: "watch", kmock.action.FETCH: "get",
    kmock.action.CREATE: "create", kmock.action.UPDATE: "patch", kmock.action.DELETE: "delete",
}


def allowed(rules: list[dict[str, Any]], group: str, resource: str, verb: str) -> bool:
    return any(group in r["apiGroups"] and resource in r["resources"] and verb in r["verbs"] for r in rules)


async def test_every_call_of_a_clusters_life_is_one_the_chart_grants(granted: list[dict[str, Any]]) -> None:
    """A Cluster made, its pods Ready, a worker drained away, its ports changed (the Service
    replaced), its NetworkPolicy changed and turned off, suspended, deleted: each request the
    operator (kopf included) sent is allowed by the chart's ClusterRole."""
    async with mock_api() as (api, config):
        user = Client(another_user(api, config))
        stop = asyncio.Event()
        marking = asyncio.create_task(kubelet(api, stop))
        try:
            async with running_operator(config, head_grace_seconds=0.5, policy=Policy(operator_peer=OPERATOR)):
                await user.apply_cluster(cluster("life", head={"ports": {"client": 9}, "stateVolume": {}}))
                await eventually(lambda: status(api, "life").get("phase") == "Running", "Running", api=api)
                spec = cluster("life")["spec"]
                group = {**spec["workerGroups"][0], "replicas": 1,
                         "scaleStrategy": {"workersToDelete": ["life-cpu-1"]}}
                await user.patch_cluster("life", {"spec": {"workerGroups": [group]}})
                await eventually(lambda: "life-cpu-1" not in api.pods(), "life-cpu-1 drained away", api=api)
                await user.patch_cluster("life", {"spec": {"head": {"ports": {"client": 9, "dashboard": 8266}},
                                                           "networkPolicy": {"metricsFrom": []}}})
                await eventually(lambda: any(r.action == kmock.action.DELETE and r.name == "life-head"
                                             and r.resource == kube_api.SERVICES for r in list(api)),
                                 "the Service replaced", api=api)
                await eventually(lambda: any(r.action == kmock.action.UPDATE and r.resource == NETWORK_POLICIES
                                             for r in list(api)), "the NetworkPolicy patched", api=api)
                await user.patch_cluster("life", {"spec": {"networkPolicy": {"enabled": False}, "suspend": True}})
                await eventually(lambda: not api.pods() and not api.live(NETWORK_POLICIES), "suspended", api=api)
                await user.delete_cluster("life")
                await eventually(lambda: api.objects[kube_api.CLUSTERS, NAMESPACE, "life"].deleted, "gone")
        finally:
            stop.set()
            await marking
        user.close()
        used = {
            (r.resource.group, r.resource.plural + (f"/{r.subresource}" if r.subresource else ""), VERBS[r.action])
            for r in list(api)
            # Discovery (/api/v1, /apis/<group>/<version>) is everyone's (system:discovery).
            if r.resource is not None and r.resource.plural and r.action in VERBS and bearer_token(r) == api.token
        }
        # The scenario did what it says (or this test would prove little).
        assert {("", "persistentvolumeclaims", "create"), ("", "services", "delete"), ("", "pods", "delete"),
                ("networking.k8s.io", "networkpolicies", "patch"), ("networking.k8s.io", "networkpolicies", "delete"),
                ("ember.dev", "clusters", "patch"), ("ember.dev", "clusters/status", "patch"),
                ("", "secrets", "create"), ("", "events", "create")} <= used, sorted(used)
        refused = sorted(u for u in used if not allowed(granted, *u))
        assert refused == [], f"the chart's ClusterRole does not grant {refused}"
