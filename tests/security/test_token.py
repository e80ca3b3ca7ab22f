"""Nobody without the cluster token gets in: not a node, not a driver, not a task channel, not a
bulk transfer; and the token cannot be a weak one."""

from __future__ import annotations

import asyncio
import os
import socket
import textwrap
from pathlib import Path

import grpc

import ember
from ember import connection
from ember.runtime.core import context
from ember.runtime.wire import auth, task_channel
from ember.runtime.wire.protocol import ember_pb2 as pb
from ember.runtime.wire.protocol import ember_pb2_grpc as rpc_pb
from tests.conftest import run_driver


def _call(address: str, method: str, request: bytes, metadata: list[tuple[str, str]] | None = None,
          secure: grpc.ChannelCredentials | None = None) -> grpc.aio.AioRpcError | bytes:
    """One raw unary call, with whatever metadata the test chooses (no ember interceptors)."""

    async def go() -> grpc.aio.AioRpcError | bytes:
        channel = (
            grpc.aio.secure_channel(address, secure) if secure else grpc.aio.insecure_channel(address)
        )
        try:
            call = channel.unary_unary(method)
            return await call(request, metadata=metadata, timeout=10)
        except grpc.aio.AioRpcError as error:
            return error
        finally:
            await channel.close()

    return asyncio.run(go())


def _stream(address: str, method: str, metadata: list[tuple[str, str]] | None) -> grpc.aio.AioRpcError | None:
    async def go() -> grpc.aio.AioRpcError | None:
        channel = grpc.aio.insecure_channel(address)
        try:
            call = channel.stream_stream(method)(iter(()), metadata=metadata, timeout=10)
            async for _ in call:
                pass
            return None
        except grpc.aio.AioRpcError as error:
            return error
        finally:
            await channel.close()

    return asyncio.run(go())


def _endpoints() -> dict[str, str]:
    core = context.require_core()
    view = connection._view()
    return {
        "head": core.head_address,
        "node agent": view.nodes[0].info.address,
        "driver": core.address,
    }


def test_calls_without_the_right_token_are_refused(cluster) -> None:
    endpoints = _endpoints()
    calls = {
        "head": "/ember.Head/GetClusterView",
        "node agent": "/ember.NodeAgent/GetStoreInfo",
        "driver": "/ember.CoreWorker/GetObject",
    }
    token = auth.token()
    assert len(token) >= 32
    for who, method in calls.items():
        for metadata in (None, [("authorization", "Bearer wrong")], [("authorization", token)]):
            refused = _call(endpoints[who], method, b"", metadata)
            assert isinstance(refused, grpc.aio.AioRpcError), (who, metadata)
            assert refused.code() == grpc.StatusCode.UNAUTHENTICATED, (who, refused)
            assert "EMBER_TOKEN" in (refused.details() or ""), refused.details()
        # With it, the same call is served.
        answer = _call(endpoints[who], method, b"", [("authorization", f"Bearer {token}")])
        assert not isinstance(answer, grpc.aio.AioRpcError) or answer.code() != grpc.StatusCode.UNAUTHENTICATED
    # Streams too: a node cannot even open a session.
    refused = _stream(endpoints["head"], "/ember.Head/NodeSession", None)
    assert refused is not None and refused.code() == grpc.StatusCode.UNAUTHENTICATED


@ember.remote
class Vault:
    def open(self) -> str:
        return "opened"


def test_task_channel_refuses_a_hello_without_the_token(cluster) -> None:
    vault = Vault.remote()
    assert ember.get(vault.open.remote()) == "opened"
    core = context.require_core()
    info = _actors()
    address = next(a.channel for a in info.actors if a.class_name == "Vault" and a.state == pb.ALIVE)
    host, _, port = address.rpartition(":")

    def hello(token: bytes) -> pb.ChannelWelcome:
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            message = pb.ChannelHello(token=token, job=core.job_config, owner_address="fuzz:1")
            sock.sendall(task_channel.encode(message))
            reader = task_channel.FrameReader()
            frames: list[bytes] = []
            while not frames:
                data = sock.recv(65536)
                assert data, "closed without a welcome"
                frames = reader.feed(data)
            welcome = pb.ChannelWelcome.FromString(frames[0])
            if welcome.error:
                assert sock.recv(65536) == b""  # and then it hangs up
            return welcome

    for wrong in (b"", b"nope", auth.token().encode()[:-1]):
        refused = hello(wrong)
        assert "cluster token" in refused.error and "EMBER_TOKEN" in refused.error
    assert hello(auth.token().encode()).error == ""
    assert ember.get(vault.open.remote()) == "opened"  # real callers are unaffected


def test_a_started_cluster_wants_its_token(tmp_path: Path) -> None:
    from tests.integration.test_lifecycle import _ember, _free_port

    env = dict(os.environ, EMBER_TEMP_DIR=str(tmp_path / "ember"))
    env.pop(auth.ENV, None)
    env.pop(auth.ENV_FILE, None)
    port = _free_port()
    started = _ember("start", "--head", "--port", str(port), "--num-cpus", "1", env=env)
    try:
        assert started.returncode == 0, started.stderr
        token_file = next(
            line.split()[1] for line in started.stdout.splitlines() if line.strip().startswith("token:")
        )
        assert os.stat(token_file).st_mode & 0o077 == 0
        token = Path(token_file).read_text().strip()
        assert token not in started.stdout  # the token itself is never printed
        script = textwrap.dedent(
            """
            import sys, ember
            ember.init(address=sys.argv[1])
            print(ember.get(ember.remote(lambda: "in").remote()))
            """
        )
        address = f"127.0.0.1:{port}"
        # On this machine, the cluster ember start started: its token is found.
        assert run_driver(script, address, env=env).stdout.strip() == "in"
        # Elsewhere (no current cluster record), the token must be given.
        elsewhere = dict(env, EMBER_TEMP_DIR=str(tmp_path / "other"))
        refused = run_driver(script, address, env=elsewhere)
        assert refused.returncode != 0
        assert "UNAUTHENTICATED" in refused.stderr and "EMBER_TOKEN" in refused.stderr, refused.stderr
        wrong = run_driver(script, address, env=dict(elsewhere, EMBER_TOKEN="not-the-token-of-this-cluster"))
        assert wrong.returncode != 0 and "UNAUTHENTICATED" in wrong.stderr
        assert run_driver(script, address, env=dict(elsewhere, EMBER_TOKEN=token)).stdout.strip() == "in"
        assert run_driver(script, address, env=dict(elsewhere, EMBER_TOKEN_FILE=token_file)).stdout.strip() == "in"
        given = script.replace("ember.init(address=sys.argv[1])", "ember.init(address=sys.argv[1], token=sys.argv[2])")
        assert run_driver(given, address, token, env=elsewhere).stdout.strip() == "in"
        assert "UNAUTHENTICATED" in run_driver(given, address, "not-the-token-of-this-cluster", env=elsewhere).stderr
        # A node agent without it is not started at all.
        joined = _ember("start", "--address", address, env=elsewhere)
        assert joined.returncode == 2 and "EMBER_TOKEN" in joined.stderr
        # With a wrong one, the head refuses it and it stops, saying why.
        bad = _ember("start", "--address", address, "--block", env=dict(elsewhere, EMBER_TOKEN="not-the-token-of-this-cluster"))
        assert bad.returncode == 1
    finally:
        _ember("stop", env=env)
        _ember("stop", env=dict(env, EMBER_TEMP_DIR=str(tmp_path / "other")))


def test_generated_stubs_cover_every_service() -> None:
    """The fuzz test below enumerates methods from the descriptor; make sure it sees them all."""
    services = {s.name for s in pb.DESCRIPTOR.services_by_name.values()}
    assert services == {"CoreWorker", "NodeAgent", "Head", "Relay", "Jobs", "Packages"}
    assert hasattr(rpc_pb, "HeadStub")


def _actors() -> pb.ActorList:
    core = context.require_core()

    async def ask() -> pb.ActorList:
        return await core.channels.head(core.head_address).ListActors(pb.Empty())

    return core.io.run(ask())


def test_bulk_transfer_socket_wants_the_token(cluster) -> None:
    from ember.runtime.node import bulk_transfer

    core = context.require_core()
    agent = connection._view().nodes[0].info.address

    async def info() -> pb.StoreInfo:
        return await core.channels.node_agent(agent).GetStoreInfo(pb.Empty())

    port = core.io.run(info()).transfer_port
    assert port
    ref = ember.put(b"x" * (1 << 20))  # in the store
    object_id = ref.binary()
    for token in (b"", b"wrong"):
        with socket.create_connection((agent.rpartition(":")[0], port), timeout=10) as sock:
            bulk_transfer._send_frame(sock, pb.BulkRequest(token=token, object_id=object_id))
            header = bulk_transfer._recv_frame(sock, pb.BulkHeader)
            assert "cluster token" in header.error and header.size == 0
            assert sock.recv(1) == b""
    with socket.create_connection((agent.rpartition(":")[0], port), timeout=10) as sock:
        bulk_transfer._send_frame(sock, pb.BulkRequest(token=auth.token().encode(), object_id=object_id))
        header = bulk_transfer._recv_frame(sock, pb.BulkHeader)
        assert header.error == "" and header.size >= 1 << 20


def test_a_weak_token_is_refused_where_it_is_given(tmp_path: Path) -> None:
    """Before: a one-character EMBER_TOKEN was accepted, and guarded a cluster."""
    from tests.integration.test_lifecycle import _ember, _free_port

    env = dict(os.environ, EMBER_TEMP_DIR=str(tmp_path / "ember"), EMBER_TOKEN="x")
    env.pop(auth.ENV_FILE, None)
    try:
        started = _ember("start", "--head", "--port", str(_free_port()), "--num-cpus", "1", env=env)
        assert started.returncode == 2, started.stdout + started.stderr
        assert "EMBER_TOKEN has 1 character(s)" in started.stderr and "at least 16" in started.stderr
    finally:
        _ember("stop", env=env)
    weak_file = tmp_path / "token"
    weak_file.write_text("short\n")
    from_file = dict(env, EMBER_TOKEN_FILE=str(weak_file))
    from_file.pop(auth.ENV)
    up = _ember("start", "--head", "--port", str(_free_port()), env=from_file)
    assert up.returncode == 2 and f"{weak_file} has 5 character(s)" in up.stderr
    given = run_driver("import ember; ember.init('127.0.0.1:1', token='tiny')", env=dict(os.environ))
    assert given.returncode != 0 and "init(token=...) has 4 character(s)" in given.stderr
