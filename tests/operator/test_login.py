"""The operator logs in as it does in a pod: the service account's files and the in-cluster
environment variables, over TLS, to an API server that refuses anonymous requests.

The Kubernetes client finds a pod's credentials at fixed paths (``/var/run/secrets/...``); the
test points its loader's path constants at a directory of its own, and sets
``KUBERNETES_SERVICE_HOST``/``PORT`` to an HTTPS Kubernetes mock on loopback that accepts only
the service account's token. The real kopf operator then has to reconcile a Cluster through
it, and every request the mock saw says who sent it (kopf or the operator's own client) and
with which token. A rotated token (the kubelet rewrites the file; the old one stops working)
must be picked up by both without a restart.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp.test_utils
import kmock
import pytest
from kubernetes.config import incluster_config

from ember.operator.kube_objects import connection_info, load_configuration
from tests.operator.kube_api import Client, KubeApi, bearer_token, eventually, running_operator

pytestmark = [pytest.mark.asyncio, pytest.mark.slow]


def certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A CA (the pod's ca.crt) and the API server's certificate for 127.0.0.1 it signed."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    valid = {"not_valid_before": now - datetime.timedelta(minutes=5),
             "not_valid_after": now + datetime.timedelta(days=1)}
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubernetes test CA")])
    ca = (
        x509.CertificateBuilder(**valid)
        .subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder(**valid)
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
        .issuer_name(ca_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = directory / "ca.crt", directory / "apiserver.crt", directory / "apiserver.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ))
    return paths


def https_server(cert: Path, key: Path) -> type[aiohttp.test_utils.RawTestServer]:
    """kmock's server class, serving TLS with the API server's certificate."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    class HttpsServer(aiohttp.test_utils.RawTestServer):
        async def start_server(self, loop: Any = None, **kwargs: Any) -> None:
            await super().start_server(loop=loop, ssl=context, **kwargs)

    return HttpsServer


@pytest.fixture
def service_account(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A pod's service-account directory (token, ca.crt, namespace) where the loader looks."""
    directory = tmp_path / "serviceaccount"
    directory.mkdir()
    (directory / "token").write_text("first-token-of-the-operator")
    (directory / "namespace").write_text("ember-system")
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(directory / "token"))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(directory / "ca.crt"))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))  # no way around the pod's
    yield directory


def a_minute_later(monkeypatch: pytest.MonkeyPatch) -> None:
    """The in-cluster loader re-reads the token file when its copy is a minute old: let that
    minute pass for it."""

    class Later(datetime.datetime):
        @classmethod
        def now(cls, tz: datetime.tzinfo | None = None) -> datetime.datetime:  # type: ignore[override]
            return datetime.datetime.now(tz) + datetime.timedelta(minutes=2)

    monkeypatch.setattr(incluster_config, "datetime",
                        types.SimpleNamespace(datetime=Later, timedelta=datetime.timedelta))


def sender(request: kmock.Request) -> str:
    agent = next((v for k, v in request.headers.items() if k.lower() == "user-agent"), "")
    return "kopf" if agent.startswith("kopf/") else "client"


def cluster(name: str, replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "ember.dev/v1alpha1", "kind": "Cluster",
        "metadata": {"name": name, "namespace": "ns1"},
        "spec": {"image": "ember:0.1.0", "workerGroups": [
            {"name": "cpu", "replicas": replicas, "minReplicas": 0, "maxReplicas": 4}]},
    }


async def test_in_a_pod_kopf_and_the_client_send_the_service_account_token(
    service_account: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca, cert, key = certificates(service_account)
    first = (service_account / "token").read_text()
    async with KubeApi(tokens={first}) as api, kmock.Server(api, server_cls=https_server(cert, key)) as server:
        monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
        monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(server.port))
        config = load_configuration()
        assert config.host == f"https://127.0.0.1:{server.port}" and config.ssl_ca_cert == str(ca)
        info = connection_info(config)
        assert (info.scheme or "").lower() == "bearer" and info.token == first, info

        client = Client(config)
        async with running_operator(config):
            await client.apply_cluster(cluster("pod", replicas=1))
            await eventually(lambda: "pod-head" in api.pods(), "the head pod", api=api)
            seen = list(api)
            senders = {sender(r) for r in seen}
            assert senders == {"kopf", "client"}, senders
            anonymous = [(sender(r), r.method, str(r.url)) for r in seen if bearer_token(r) != first]
            assert anonymous == [], anonymous

            # The kubelet rotates the token and the old one stops working.
            (service_account / "token").write_text("second-token-of-the-operator")
            api.tokens = {"second-token-of-the-operator"}
            a_minute_later(monkeypatch)
            mark = len(list(api))
            api.mark_ready("pod-head")  # workers follow: the operator must create them
            await client.patch_cluster("pod", {"spec": {"workerGroups": cluster("pod", 2)["spec"]["workerGroups"]}})
            await eventually(lambda: {"pod-cpu-0", "pod-cpu-1"} <= set(api.pods()), "the workers", api=api)
            await eventually(
                lambda: any(sender(r) == "kopf" and bearer_token(r) == "second-token-of-the-operator"
                            for r in list(api)[mark:]),
                "kopf logging in again with the rotated token",
            )
            later = list(api)[mark:]
            assert any(sender(r) == "client" and bearer_token(r) == "second-token-of-the-operator"
                       for r in later)
        client.close()
