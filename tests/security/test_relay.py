"""The head's relay, used by a token holder: declaring a driver address does not make the head
dial it; only addresses the head itself saw are relayed to."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator

import grpc
import pytest

import ember
from ember.runtime.core import context
from ember.runtime.wire import rpc
from ember.runtime.wire.protocol import ember_pb2 as pb
from ember.runtime.wire.protocol import ember_pb2_grpc as rpc_pb
from tests.security.conftest import cluster_pids, reset_peak, split, usage

SECRET = b"a service outside the cluster\n"


@pytest.fixture
def outside_service() -> Iterator[str]:
    """A TCP service that is no part of the cluster (on another loopback address): it greets
    whoever connects with ``SECRET``."""
    listener = socket.create_server(("127.0.0.2", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                sock, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with sock:
                sock.sendall(SECRET)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.2:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        listener.close()


async def _tunnel(head: rpc_pb.HeadStub, relay: rpc_pb.RelayStub, declared: str, target: str) -> bytes:
    """Declare ``declared`` as a driver's address, then ask the relay for ``target``; what came
    back through the tunnel (or the relay's refusal, raised)."""
    session = head.DriverSession(pb.DriverHello(address=declared, pid=1, namespace="probe"))
    try:
        await session.read()  # the job is running now
        tunnel = relay.Tunnel()
        try:
            await tunnel.write(pb.TunnelChunk(open=pb.TunnelOpen(target=target)))
            received = b""
            while not received.endswith(b"\n"):
                chunk = await asyncio.wait_for(tunnel.read(), 30)
                if chunk is grpc.aio.EOF:
                    break
                received += chunk.data
            return received
        finally:
            tunnel.cancel()
    finally:
        session.cancel()


async def _open(head_address: str, target: str) -> object:
    """Open a tunnel to ``target`` (a gRPC server: it answers an HTTP/2 preface) without
    declaring anything: "relayed" when bytes came back through it, else the refusal."""
    channel = rpc.open_channel(head_address)
    tunnel = rpc_pb.RelayStub(channel).Tunnel()
    try:
        await tunnel.write(pb.TunnelChunk(open=pb.TunnelOpen(target=target), data=b"PRI * HTTP/2.0\r\n\r\n"))
        chunk = await asyncio.wait_for(tunnel.read(), 30)
        return "relayed" if chunk is not grpc.aio.EOF else "closed"
    except grpc.aio.AioRpcError as error:
        return error
    finally:
        tunnel.cancel()
        await channel.close()


def test_a_declared_driver_address_is_not_relayed_to(few_descriptors: object, outside_service: str) -> None:
    """Before: the relay dialed any live job's declared driver address, so declaring one and
    opening a tunnel to it reached a service outside the cluster."""
    core = context.require_core()

    async def attempt(declared: str, target: str) -> bytes | grpc.aio.AioRpcError:
        channel = rpc.open_channel(core.head_address)
        try:
            return await _tunnel(rpc_pb.HeadStub(channel), rpc_pb.RelayStub(channel), declared, target)
        except grpc.aio.AioRpcError as error:
            return error
        finally:
            await channel.close()

    refused = asyncio.run(attempt(outside_service, outside_service))
    assert isinstance(refused, grpc.aio.AioRpcError), f"the relay reached {outside_service}: {refused!r}"
    assert refused.code() == grpc.StatusCode.PERMISSION_DENIED, refused
    assert outside_service in (refused.details() or "")
    # A driver's address on the host its session came from is relayed to (this driver's own
    # CoreWorker: the relay carries its gRPC bytes).
    ours = asyncio.run(_open(core.head_address, core.address))
    assert ours == "relayed", ours


def test_connections_waiting_for_an_outside_driver_cost_the_head_little(few_descriptors: object) -> None:
    """The port the head listens on for a driver outside the cluster is open to anyone. Before:
    every connection to it was kept until its driver took it, each reading up to 8 MiB ahead
    (200 connections sending 1 MiB each: the head held them all)."""
    core = context.require_core()
    head, _ = cluster_pids()
    payload = b"x" * (1 << 20)

    async def flood_reverse() -> tuple[int, int]:
        channel = rpc.open_channel(core.head_address)
        reverse = rpc_pb.RelayStub(channel).Reverse(pb.ReverseHello(pid=1))
        try:
            first = await reverse.read()
            address = first.listening
            reset_peak(head)
            before = usage(head)
            writers = []
            for _ in range(200):
                try:
                    _, writer = await asyncio.open_connection(*split(address))
                except OSError:
                    continue
                writer.write(payload)
                writers.append(writer)
            await asyncio.sleep(0)
            for writer in writers:
                try:
                    await asyncio.wait_for(writer.drain(), 5)
                except (OSError, TimeoutError):
                    pass  # the head stopped reading it, or hung up: either way it holds little
            grew = (usage(head).peak_kib - before.rss_kib) >> 10
            for writer in writers:
                writer.close()
            return grew, len(writers)
        finally:
            reverse.cancel()
            await channel.close()

    grew, sent = asyncio.run(flood_reverse())
    print(f"head peak +{grew} MiB for {sent} connections sending 1 MiB each to a driver's reverse port")
    assert grew < 48, f"the head took {grew} MiB for connections nobody authenticated"
    assert ember.nodes()
