"""gRPC channels and servers, configured in one place.

Every ember process talks grpc.aio on its I/O thread. Messages are bounded per method
(``message_limits``: a few MiB for control, more only where object bytes or batches travel),
peers must notice a vanished process within seconds (keepalive), a connection that never
completes its handshake is dropped within seconds, and a second server must never silently share
a port (no SO_REUSEPORT).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

import grpc
from grpc import aio

from ember.runtime.wire import (
    accept_limits,
    auth,
    event_loop,
    message_limits,
    peer_route,
    stream_status,
    tls,
)
from ember.runtime.wire.listen_address import host_port
from ember.runtime.wire.protocol import ember_pb2_grpc as rpc

HANDSHAKE_TIMEOUT_MS = 10_000  # a connection that has not finished HTTP/2 (and TLS) by then

_COMMON = [
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
]

CHANNEL_OPTIONS = _COMMON + [
    # The channel as a whole allows the largest message of any method; the service config
    # narrows each method to its own limit, both ways.
    ("grpc.max_send_message_length", message_limits.LARGEST),
    ("grpc.max_receive_message_length", message_limits.LARGEST),
    ("grpc.service_config", message_limits.service_config()),
    ("grpc.enable_http_proxy", 0),
    ("grpc.enable_retries", 0),
    # Reconnect quickly to a restarted peer instead of backing off for minutes.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2_000),
]

SERVER_OPTIONS = _COMMON + [
    ("grpc.max_send_message_length", message_limits.LARGEST),
    ("grpc.server_handshake_timeout_ms", HANDSHAKE_TIMEOUT_MS),
    ("grpc.so_reuseport", 0),
    ("grpc.http2.min_recv_ping_interval_without_data_ms", 5_000),
    ("grpc.http2.max_ping_strikes", 0),
]


def server(
    who: str,
    observe: Callable[[str, float], None] | None = None,
    services: tuple[str, ...] = ("CoreWorker",),
) -> aio.Server:
    """A server that refuses callers without the cluster token (when this process has one)
    before reading their messages; ``who`` names the process in the refusal. ``services``
    (names like "Head") are what it will serve: it receives no message larger than their
    methods allow. With ``observe``, each unary handler's time is reported by method name."""
    limit = message_limits.receive_limit(services)
    interceptors: list[aio.ServerInterceptor] = []
    if auth.token():
        interceptors.append(auth.TokenCheck(auth.token(), who))
    interceptors.append(message_limits.LimitCheck(who, limit))
    if observe is not None:
        interceptors.append(LatencyInterceptor(observe))
    options = SERVER_OPTIONS + [
        ("grpc.max_receive_message_length", limit),
        # Enforced before any handshake: a flood of connections that never speak cannot take
        # every descriptor of the process (which new peers, files and the rest need too).
        ("grpc.max_allowed_incoming_connections", accept_limits.descriptor_budget()),
    ]
    return aio.server(options=options, interceptors=interceptors)


class LatencyInterceptor(aio.ServerInterceptor):
    """Times unary handlers for ``ember_rpc_server_latency_seconds``; streams live too long
    (a session lasts as long as its node) for a latency to mean anything."""

    def __init__(self, observe: Callable[[str, float], None]) -> None:
        self._observe = observe

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        method = handler_call_details.method.rsplit("/", 1)[-1]
        inner = handler.unary_unary
        observe = self._observe

        async def timed(request: Any, context: aio.ServicerContext) -> Any:
            start = time.perf_counter()
            try:
                return await inner(request, context)
            finally:
                observe(method, time.perf_counter() - start)

        return grpc.unary_unary_rpc_method_handler(
            timed,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def bind(srv: aio.Server, host: str, port: int = 0) -> int:
    """Bind and return the port (with TLS when it is configured); raises a clear error when the
    port is taken."""
    config = tls.current()
    try:
        if config is not None:
            bound = srv.add_secure_port(host_port(host, port), config.server_credentials())
        else:
            bound = srv.add_insecure_port(host_port(host, port))
    except RuntimeError as error:
        raise OSError(f"cannot listen on {host}:{port}: {error}") from error
    if bound == 0:
        raise OSError(f"cannot listen on {host}:{port}: address in use or not available")
    return bound


def bind_unix(srv: aio.Server, path: str) -> None:
    """Listen on a Unix socket (with TLS when it is configured): a driver outside the cluster
    serves there, reached through the head's relay, and listens on no TCP port."""
    config = tls.current()
    target = f"unix:{path}"
    if config is not None:
        srv.add_secure_port(target, config.server_credentials())
    else:
        srv.add_insecure_port(target)


def open_channel(address: str, extra: list[tuple[str, Any]] | None = None) -> Any:
    """A channel whose calls present the cluster token, over TLS when it is configured;
    ``extra`` options go with the common ones. Its stream-request calls report the status their
    server ended them with (``stream_status``)."""
    config = tls.current()
    target = address
    routed = peer_route.local_socket(address)
    if routed is not None:
        # Through the head's relay (a driver outside the cluster): the bytes, TLS included,
        # still run end to end with the peer, whose certificate is checked against the name
        # configured, or else the host it was dialed by.
        target = f"unix:{routed}"
    common = CHANNEL_OPTIONS + (extra or [])
    if config is not None:
        options = common + config.channel_options()
        if routed is not None and not config.server_name:
            options.append(("grpc.ssl_target_name_override", address.rpartition(":")[0]))
        return stream_status.channel(
            auth.with_token(aio.secure_channel(target, config.channel_credentials(), options=options))
        )
    return stream_status.channel(auth.with_token(aio.insecure_channel(target, options=common)))


async def send_all(call: Any, messages: AsyncGenerator[Any, None]) -> Any:
    """Write a client-streaming ``call``'s messages and return its reply.

    Not by handing ``messages`` to the stub: grpc.aio would read it in a task of its own, which
    nothing ends when the peer fails the call before taking a message (the task waits for
    headers that never go out); it is destroyed pending with the call, and asyncio prints
    "Task was destroyed but it is pending!" into the program's output. Written from here, the
    call is cancelled and the generator closed on every way out.
    """
    try:
        try:
            async for message in messages:
                await call.write(message)
            await call.done_writing()
        except asyncio.InvalidStateError:
            pass  # the call ended while we wrote: awaiting it raises its error, or replies
        return await call
    finally:
        call.cancel()  # nothing, if it ended
        await messages.aclose()


class Channels:
    """One channel per peer address, created on (and bound to) the I/O thread's loop."""

    def __init__(self) -> None:
        self._channels: dict[str, Any] = {}
        self._core: dict[str, rpc.CoreWorkerStub] = {}
        self._agents: dict[str, rpc.NodeAgentStub] = {}
        self._heads: dict[str, rpc.HeadStub] = {}

    def channel(self, address: str) -> Any:
        channel = self._channels.get(address)
        if channel is None:
            channel = self._channels[address] = open_channel(address)
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
            event_loop.detach(channel.close(), "closing a gRPC channel")

    async def close(self) -> None:
        for channel in list(self._channels.values()):
            await channel.close()
        self._channels.clear()
        self._core.clear()
        self._agents.clear()
        self._heads.clear()
