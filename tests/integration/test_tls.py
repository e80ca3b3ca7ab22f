"""With certificates configured, nothing travels in the clear: gRPC and task channels use TLS,
mutually, and a plaintext caller gets nowhere even with the token."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

import ember
from ember.runtime import launcher
from ember.runtime.core import context
from ember.runtime.wire import auth, task_channel, tls
from ember.runtime.wire.protocol import ember_pb2 as pb
from tests.conftest import wait_until_gone


def _call(address: str, method: str, metadata: list[tuple[str, str]],
          secure: grpc.ChannelCredentials | None = None) -> grpc.aio.AioRpcError | bytes:
    async def go() -> grpc.aio.AioRpcError | bytes:
        channel = (
            grpc.aio.secure_channel(address, secure) if secure else grpc.aio.insecure_channel(address)
        )
        try:
            return await channel.unary_unary(method)(b"", metadata=metadata, timeout=10)
        except grpc.aio.AioRpcError as error:
            return error
        finally:
            await channel.close()

    return asyncio.run(go())


def _certificates(directory: Path) -> dict[str, str]:
    """A CA, and one certificate it signed for 127.0.0.1 and localhost (client and server)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ember test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ember node")]))
        .issuer_name(ca_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    files = {
        tls.ENV_CA: (directory / "ca.pem", ca.public_bytes(serialization.Encoding.PEM)),
        tls.ENV_CERT: (directory / "node.pem", cert.public_bytes(serialization.Encoding.PEM)),
        tls.ENV_KEY: (
            directory / "node.key",
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
        ),
    }
    for path, data in files.values():
        path.write_bytes(data)
    return {name: str(path) for name, (path, _) in files.items()}


@pytest.fixture
def tls_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    variables = _certificates(tmp_path)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    tls.current.cache_clear()
    yield variables
    for name in variables:
        monkeypatch.delenv(name)
    tls.current.cache_clear()


@ember.remote
def tls_square(x: int) -> int:
    return x * x


@ember.remote
class TlsCounter:
    def __init__(self) -> None:
        self.n = 0

    def add(self) -> int:
        self.n += 1
        return self.n


def test_tls_cluster_runs_work_and_refuses_plaintext(tls_env: dict[str, str]) -> None:
    import numpy as np

    ctx = ember.init(num_cpus=2)
    try:
        assert ember.get([tls_square.remote(i) for i in range(20)]) == [i * i for i in range(20)]
        counter = TlsCounter.remote()
        assert ember.get([counter.add.remote() for _ in range(3)]) == [1, 2, 3]
        big = np.arange(1 << 18)
        assert int(ember.get(ember.remote(lambda a: a.sum()).remote(ember.put(big)))) == int(big.sum())
        # A second node pulls an object from the first: the bulk transfer socket is TLS too.
        second = launcher.start_agent(ctx.session_dir, context.require_core().head_address, num_cpus=1, resources={"far": 1})
        try:
            deadline = time.monotonic() + 15
            while len([n for n in ember.nodes() if n["Alive"]]) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            far_sum = ember.remote(resources={"far": 1})(lambda a: int(a.sum()))
            assert ember.get(far_sum.remote(ember.put(big)), timeout=60) == int(big.sum())
        finally:
            second.stop()
        head = context.require_core().head_address
        token = [("authorization", f"Bearer {auth.token()}")]
        # Plaintext, even with the token, gets nowhere.
        plain = _call(head, "/ember.Head/GetClusterView", token)
        assert isinstance(plain, grpc.aio.AioRpcError) and plain.code() == grpc.StatusCode.UNAVAILABLE
        # TLS without a client certificate neither: it is mutual.
        anonymous = grpc.ssl_channel_credentials(root_certificates=Path(tls_env[tls.ENV_CA]).read_bytes())
        refused = _call(head, "/ember.Head/GetClusterView", token, secure=anonymous)
        assert isinstance(refused, grpc.aio.AioRpcError)
        # A plaintext task channel is not even welcomed.
        actor_channel = next(a.channel for a in _actors().actors if a.class_name == "TlsCounter")
        host, _, port = actor_channel.rpartition(":")
        with socket.create_connection((host, int(port)), timeout=15) as sock:
            sock.sendall(task_channel.encode(pb.ChannelHello(token=auth.token().encode())))
            sock.settimeout(15)
            try:
                assert sock.recv(65536) == b""
            except ConnectionResetError:
                pass
        assert ember.get(counter.add.remote()) == 4
    finally:
        ember.shutdown()
    assert wait_until_gone(ctx.session_dir) == []


def test_incomplete_tls_settings_are_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(tls.ENV_CERT, str(tmp_path / "node.pem"))
    tls.current.cache_clear()
    try:
        with pytest.raises(tls.TlsConfigError, match="missing EMBER_TLS_CA, EMBER_TLS_KEY"):
            tls.current()
    finally:
        monkeypatch.delenv(tls.ENV_CERT)
        tls.current.cache_clear()


def _actors() -> pb.ActorList:
    core = context.require_core()

    async def ask() -> pb.ActorList:
        return await core.channels.head(core.head_address).ListActors(pb.Empty())

    return core.io.run(ask())


OUTSIDE_DRIVER = """
import sys
import numpy as np
import ember
ember.init(sys.argv[1], via_head=True)
square = ember.remote(lambda x: x * x)
counter = ember.remote(type("C", (), {"__init__": lambda s: setattr(s, "n", 0),
                                      "add": lambda s: setattr(s, "n", s.n + 1) or s.n}))
big = np.arange(1 << 18)
c = counter.remote()
print(ember.get(square.remote(7)), ember.get([c.add.remote() for _ in range(2)]),
      int(ember.get(ember.remote(lambda a: a.sum()).remote(ember.put(big)))) == int(big.sum()),
      int(ember.get(ember.remote(lambda n: np.arange(n)).remote(1 << 18)).sum()) == int(big.sum()))
ember.shutdown()
"""


def test_a_driver_outside_a_tls_cluster_goes_through_the_head(tls_env: dict[str, str]) -> None:
    """Through the relay, TLS still runs end to end with each peer: its certificate is checked
    against the address the driver dialed, not the Unix socket the relay gave it."""
    import os
    import subprocess
    import sys

    from tests.conftest import REPO

    ctx = ember.init(num_cpus=2)
    try:
        env = dict(os.environ, EMBER_TOKEN=auth.token())
        done = subprocess.run(
            [sys.executable, "-c", OUTSIDE_DRIVER, ctx.address],
            capture_output=True, text=True, timeout=120, cwd=str(REPO), env=env,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == ["49", "[1,", "2]", "True", "True"], done.stdout + done.stderr
        assert "through the head" in done.stderr
    finally:
        ember.shutdown()
    assert wait_until_gone(ctx.session_dir) == []
