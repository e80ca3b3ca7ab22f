"""The operator talks to a TLS cluster's head over TLS, with the cluster's own TLS Secret.

A real ember head and node agents run on loopback with TLS as the operator's pods run them:
one certificate for every process, issued for the head Service's name only (not for the
address dialled), and ``EMBER_TLS_SERVER_NAME`` naming it. The operator's head client reads
the Secret (base64 data, as the API returns it), drains a node and reads the demand through
it; the kopf operator does the same against the API mock serving that Secret. A plain-text
client, the operator's only kind before, gets nowhere.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ember.operator import cluster_spec, scaling_loop
from ember.operator.head_client import HeadClient, HeadTls, HeadUnreachable, head_of, head_tls
from ember.operator.kube_objects import KubeObjects
from ember.runtime import launcher, session
from ember.runtime.wire import tls
from ember.runtime.wire.protocol import ember_pb2 as pb
from tests.certificates import Certificates, issue
from tests.conftest import wait_until_gone
from tests.operator.kube_api import NAMESPACE, Client, eventually, mock_api, running_operator

TOKEN = "t0ken-of-the-tls-test"
CLUSTER = "tlsc"
# What the operator gives pods as EMBER_TLS_SERVER_NAME: the head Service's name.
SERVICE_HOST = f"{CLUSTER}-head.{NAMESPACE}.svc"
TLS_SECRET = f"{CLUSTER}-tls"


@dataclass
class TlsHead:
    address: str
    port: int
    certificates: Certificates
    processes: list[launcher.LocalProcesses]


@pytest.fixture
def tls_head(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TlsHead]:
    """A TLS head with two node agents labelled as worker pods of cluster ``tlsc``."""
    certificates = issue(tmp_path, dns_names=(SERVICE_HOST,), ips=())
    for name, value in {
        tls.ENV_CERT: str(certificates.cert_path), tls.ENV_KEY: str(certificates.key_path),
        tls.ENV_CA: str(certificates.ca_path), tls.ENV_SERVER_NAME: SERVICE_HOST,
    }.items():
        monkeypatch.setenv(name, value)
    tls.current.cache_clear()
    session_dir = session.new_session_dir()
    processes: list[launcher.LocalProcesses] = []
    try:
        head = launcher.start(session_dir, num_cpus=0, token=TOKEN, dashboard_port=-1, autoscaler=True)
        processes.append(head)
        for pod in (f"{CLUSTER}-cpu-0", f"{CLUSTER}-cpu-1"):
            processes.append(launcher.start_agent(
                session_dir, head.head_address, num_cpus=1, token=TOKEN,
                labels={"ember.dev/pod": pod, "ember.dev/group": "cpu"},
            ))
        yield TlsHead(head.head_address, int(head.head_address.rsplit(":", 1)[1]), certificates, processes)
    finally:
        for process in reversed(processes):
            process.stop()
        for name in (tls.ENV_CERT, tls.ENV_KEY, tls.ENV_CA, tls.ENV_SERVER_NAME):
            monkeypatch.delenv(name)
        tls.current.cache_clear()
    assert wait_until_gone(session_dir) == []


def tls_secret(certificates: Certificates, **leave_out: bool) -> dict[str, Any]:
    """The cluster's TLS Secret as the API returns it (a kubernetes.io/tls Secret with ca.crt)."""
    data = {"tls.crt": certificates.cert, "tls.key": certificates.key, "ca.crt": certificates.ca}
    return {
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
        "metadata": {"name": TLS_SECRET, "namespace": NAMESPACE},
        "data": {k: base64.b64encode(v).decode() for k, v in data.items() if not leave_out.get(k.replace(".", "_"))},
    }


def token_secret() -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": f"{CLUSTER}-token", "namespace": NAMESPACE, "labels": {"ember.dev/cluster": CLUSTER}},
        "data": {"token": base64.b64encode(TOKEN.encode()).decode()},
    }


def tls_cluster(port: int, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "ember.dev/v1alpha1", "kind": "Cluster",
        "metadata": {"name": CLUSTER, "namespace": NAMESPACE},
        "spec": {
            "head": {"ports": {"client": port}},
            "tls": {"secretName": TLS_SECRET},
            "workerGroups": [{"name": "cpu", "replicas": 2, "minReplicas": 0, "maxReplicas": 2}],
            **spec,
        },
    }


def head_pod() -> dict[str, Any]:
    return {
        "metadata": {"name": f"{CLUSTER}-head", "labels": {"ember.dev/node-type": "head"}},
        "status": {"podIP": "127.0.0.1"},
    }


# ---------------------------------------------------------------------------- the Secret, read


def test_the_tls_secret_becomes_the_channels_material(tmp_path: Path) -> None:
    certificates = issue(tmp_path, dns_names=(SERVICE_HOST,), ips=())
    spec = cluster_spec.parse(tls_cluster(10001))
    material = head_tls(spec, tls_secret(certificates))
    assert (material.ca, material.cert, material.key) == (certificates.ca, certificates.cert, certificates.key)
    assert material.server_name == SERVICE_HOST


def test_a_head_template_naming_its_own_server_name_is_believed(tmp_path: Path) -> None:
    certificates = issue(tmp_path)
    named = tls_cluster(10001)
    named["spec"]["head"]["template"] = {"env": [{"name": "EMBER_TLS_SERVER_NAME", "value": "ember.example.com"}]}
    assert head_tls(cluster_spec.parse(named), tls_secret(certificates)).server_name == "ember.example.com"


def test_a_missing_or_incomplete_tls_secret_is_said_naming_it(tmp_path: Path) -> None:
    certificates = issue(tmp_path)
    spec = cluster_spec.parse(tls_cluster(10001))
    with pytest.raises(HeadUnreachable, match=f"TLS Secret {TLS_SECRET} .*of cluster {NAMESPACE}/{CLUSTER} does not exist"):
        head_tls(spec, None)
    with pytest.raises(HeadUnreachable, match=f"TLS Secret {TLS_SECRET} .* has no ca.crt, tls.key$"):
        head_tls(spec, tls_secret(certificates, ca_crt=True, tls_key=True))


# ---------------------------------------------------------------------------- a real TLS head


@pytest.mark.asyncio
async def test_the_head_client_drains_and_reads_demand_over_tls(tls_head: TlsHead) -> None:
    spec = cluster_spec.parse(tls_cluster(tls_head.port))
    material = head_tls(spec, tls_secret(tls_head.certificates))
    pods = [head_pod()]
    async with head_of(f"{NAMESPACE}/{CLUSTER}", spec.raw, pods, token_secret(), material) as head:
        await head.set_node_types([{"CPU": 1.0}])

        async def both_workers_in_the_demand() -> bool:
            demand = await head.demand()
            return {n.labels.get("ember.dev/pod") for n in demand.nodes} >= {
                f"{CLUSTER}-cpu-0", f"{CLUSTER}-cpu-1"}

        await eventually(both_workers_in_the_demand, "both workers' load in the head's demand report")
        assert await head.drain(f"{CLUSTER}-cpu-1", "the TLS test drains it") is True

        async def drained() -> bool:
            state = await head.drain_state({f"{CLUSTER}-cpu-0", f"{CLUSTER}-cpu-1"})
            return state.drained == {f"{CLUSTER}-cpu-1"}

        await eventually(drained, "the node of tlsc-cpu-1 drained")
        nodes = await head.nodes_of({f"{CLUSTER}-cpu-0"})
        assert nodes[f"{CLUSTER}-cpu-0"].drain_state == pb.NOT_DRAINING


@pytest.mark.asyncio
async def test_without_the_clusters_tls_material_the_head_is_unreachable(tls_head: TlsHead) -> None:
    """What the operator had before: plain text. And TLS checked against the address dialled
    (the certificate names the Service), or with another CA: refused too."""
    async with HeadClient("ns1/tlsc", tls_head.address, TOKEN, timeout=3) as plain:
        with pytest.raises(HeadUnreachable, match="UNAVAILABLE"):
            await plain.demand()
    good = head_tls(cluster_spec.parse(tls_cluster(tls_head.port)), tls_secret(tls_head.certificates))
    elsewhere = tls_head.certificates.ca_path.parent / "another"
    elsewhere.mkdir()
    stranger = issue(elsewhere, dns_names=(SERVICE_HOST,), ips=(), ca_name="another CA")
    for wrong in (
        HeadTls(ca=good.ca, cert=good.cert, key=good.key, server_name="127.0.0.1"),
        HeadTls(ca=stranger.ca, cert=stranger.cert, key=stranger.key, server_name=SERVICE_HOST),
    ):
        async with HeadClient("ns1/tlsc", tls_head.address, TOKEN, timeout=3, tls=wrong) as refused:
            with pytest.raises(HeadUnreachable, match="UNAVAILABLE"):
                await refused.demand()
    async with HeadClient("ns1/tlsc", tls_head.address, TOKEN, timeout=3, tls=good) as trusted:
        assert isinstance(await trusted.demand(), pb.Demand)


@pytest.mark.asyncio
@pytest.mark.slow
async def test_the_autoscaler_asks_a_tls_head_with_the_secret_the_api_serves(tls_head: TlsHead) -> None:
    """One autoscaling round (``scale_once``) against the API mock: it reads the Cluster, its
    pods, the token Secret and the TLS Secret, and asks the TLS head; the head has no waiting
    work and two idle-for-now workers, so nothing changes (a round that could not ask the head
    raises ``HeadUnreachable``)."""
    async with mock_api() as (api, config):
        client = Client(config)
        kube = KubeObjects(config)
        try:
            await asyncio.to_thread(client.core.create_namespaced_secret, NAMESPACE, token_secret())
            await asyncio.to_thread(client.core.create_namespaced_secret, NAMESPACE, tls_secret(tls_head.certificates))
            await client.apply_cluster(tls_cluster(tls_head.port, autoscaling={"enabled": True, "idleTimeoutSeconds": 3600}))
            for name, node_type in ((f"{CLUSTER}-head", "head"), (f"{CLUSTER}-cpu-0", "worker"), (f"{CLUSTER}-cpu-1", "worker")):
                labels = {"ember.dev/cluster": CLUSTER, "ember.dev/node-type": node_type}
                if node_type == "worker":
                    labels["ember.dev/group"] = "cpu"
                await asyncio.to_thread(client.core.create_namespaced_pod, NAMESPACE, {
                    "metadata": {"name": name, "labels": labels},
                    "spec": {"containers": [{"name": "ember", "image": "ember:0.1.0"}]},
                })
                api.mark_ready(name)
            assert await scaling_loop.scale_once(kube, NAMESPACE, CLUSTER) is None
            read = [r.name for r in api if r.resource is not None and r.resource.plural == "secrets"
                    and r.name == TLS_SECRET]
            assert read, "the round did not read the TLS Secret"
        finally:
            kube.close()
            client.close()


@pytest.mark.asyncio
@pytest.mark.slow
async def test_the_operator_drains_a_tls_clusters_worker_through_its_head(tls_head: TlsHead) -> None:
    """The kopf operator, the Cluster's TLS Secret served by the API mock: a worker named in
    workersToDelete is drained by the TLS head first (DrainStarted), then deleted, and never
    "deleted without a drain" (what a plain-text operator did once its grace ran out)."""
    async with mock_api() as (api, config):
        client = Client(config)
        await asyncio.to_thread(client.core.create_namespaced_secret, NAMESPACE, token_secret())
        await asyncio.to_thread(client.core.create_namespaced_secret, NAMESPACE, tls_secret(tls_head.certificates))
        async with running_operator(config, head_grace_seconds=30.0):
            await client.apply_cluster(tls_cluster(tls_head.port))
            await eventually(lambda: f"{CLUSTER}-head" in api.pods(), "the head pod", api=api)
            api.mark_ready(f"{CLUSTER}-head")
            workers = {f"{CLUSTER}-cpu-0", f"{CLUSTER}-cpu-1"}
            await eventually(lambda: workers <= set(api.pods()), "the workers", api=api)
            for pod in workers:
                api.mark_ready(pod)
            body = tls_cluster(tls_head.port)
            group = body["spec"]["workerGroups"][0]
            group.update(replicas=1, scaleStrategy={"workersToDelete": [f"{CLUSTER}-cpu-1"]})
            await client.patch_cluster(CLUSTER, {"spec": {"workerGroups": [group]}})
            await eventually(
                lambda: any(reason == "DrainStarted" and f"{CLUSTER}-cpu-1" in message
                            for _, reason, message in api.events()),
                "the drain to start through the TLS head", api=api,
            )
            await eventually(lambda: f"{CLUSTER}-cpu-1" not in api.pods(), "tlsc-cpu-1 deleted", api=api)
            assert f"{CLUSTER}-cpu-0" in api.pods()
            assert not [e for e in api.events() if e[1] == "DeletedWithoutDrain"], api.events()
        client.close()
