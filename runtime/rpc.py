"""gRPC channels and servers, configured in one place.

Every ember process talks grpc.aio on its I/O thread. Messages may be large (values travel
inline until the object store takes them), peers must notice a vanished process within seconds
(keepalive), and a second server must never silently share a port (no SO_REUSEPORT).
"""

from __future__ import annotations

from grpc import aio

from ember.runtime.protocol import ember_pb2_grpc as rpc

_COMMON = [
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", -1),
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
]

CHANNEL_OPTIONS = _COMMON + [
    ("grpc.enable_http_proxy", 0),
    ("grpc.enable_retries", 0),
    # Reconnect quickly to a restarted peer instead of backing off for minutes.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2_000),
]

SERVER_OPTIONS = _COMMON + [
    ("grpc.so_reuseport", 0),
    ("grpc.http2.min_recv_ping_interval_without_data_ms", 5_000),
    ("grpc.http2.max_ping_strikes", 0),
]


def server() -> aio.Server:
    return aio.server(options=SERVER_OPTIONS)


def bind(srv: aio.Server, host: str, port: int = 0) -> int:
    """Bind and return the port; raises a clear error when the port is taken."""
    try:
        bound = srv.add_insecure_port(f"{host}:{port}")
    except RuntimeError as error:
        raise OSError(f"cannot listen on {host}:{port}: {error}") from error
    if bound == 0:
        raise OSError(f"cannot listen on {host}:{port}: address in use or not available")
    return bound


class Channels:
    """One channel per peer address, created on (and bound to) the I/O thread's loop."""

    def __init__(self) -> None:
        self._channels: dict[str, aio.Channel] = {}
        self._core: dict[str, rpc.CoreWorkerStub] = {}
        self._agents: dict[str, rpc.NodeAgentStub] = {}
        self._heads: dict[str, rpc.HeadStub] = {}

    def channel(self, address: str) -> aio.Channel:
        channel = self._channels.get(address)
        if channel is None:
            channel = aio.insecure_channel(address, options=CHANNEL_OPTIONS)
            self._channels[address] = channel
        return channel

    def core_worker(self, address: str) -> rpc.CoreWorkerStub:
        stub = self._core.get(address)
        if stub is None:
            stub = self._core[address] = rpc.CoreWorkerStub(self.channel(address))
        return stub

    def node_agent(self, address: str) -> rpc.NodeAgentStub:
        stub = self._agents.get(address)
        if stub is None:
            stub = self._agents[address] = rpc.NodeAgentStub(self.channel(address))
        return stub

    def head(self, address: str) -> rpc.HeadStub:
        stub = self._heads.get(address)
        if stub is None:
            stub = self._heads[address] = rpc.HeadStub(self.channel(address))
        return stub

    def forget(self, address: str) -> None:
        channel = self._channels.pop(address, None)
        self._core.pop(address, None)
        self._agents.pop(address, None)
        self._heads.pop(address, None)
        if channel is not None:
            # Closing is a coroutine; let it run in the background of the loop.
            import asyncio

            asyncio.ensure_future(channel.close())

    async def close(self) -> None:
        for channel in list(self._channels.values()):
            await channel.close()
        self._channels.clear()
        self._core.clear()
        self._agents.clear()
        self._heads.clear()
