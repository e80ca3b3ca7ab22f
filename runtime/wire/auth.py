"""The cluster token: nothing reaches a cluster's processes without it.

Running a task means unpickling the code a caller sent, so whoever can talk to a head, a node
agent or a worker can run anything there. Ray's endpoints accepted anyone and were exploited in
the wild for it (CVE-2023-48022). ember's cluster has one secret token; every gRPC call carries
it in its metadata (``authorization: Bearer ...``), every task channel in its hello, and any
process refuses a call without it, compared in constant time.

Where a process finds the token: ``EMBER_TOKEN``, else the file named by ``EMBER_TOKEN_FILE``
(how a Kubernetes Secret is mounted), else — for a driver or the CLI on the machine that
started the cluster — the file ``ember start``/``init`` wrote, readable only by its user. The
processes ember starts get it in their environment, never on a command line (``ps`` shows
those to everyone).
"""

from __future__ import annotations

import hmac
import os
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from grpc import aio

ENV = "EMBER_TOKEN"
ENV_FILE = "EMBER_TOKEN_FILE"
METADATA_KEY = "authorization"
# A token is a password to every machine of the cluster, tried by whoever reaches a port: one
# of a few characters is guessed. ember's own are 43 (32 random bytes).
MIN_LENGTH = 16

_token = ""


class TokenError(Exception):
    """The token's file cannot be read, or it is empty."""


def set_token(token: str) -> None:
    global _token
    _token = token.strip()


def token() -> str:
    """This process's token ("" when it has none: a cluster started without one)."""
    return _token


def generate() -> str:
    return secrets.token_urlsafe(32)


def check_strength(value: str, source: str) -> str:
    """``value``, if long enough to be a token; else ``TokenError`` naming ``source``."""
    if len(value) < MIN_LENGTH:
        raise TokenError(
            f"the cluster token from {source} has {len(value)} character(s); a token needs at least "
            f"{MIN_LENGTH}, and anything shorter is guessed by whoever reaches the cluster's ports. "
            f"Leave it unset and ember makes one, or make one with: python -c "
            f"'import secrets; print(secrets.token_urlsafe(32))'"
        )
    return value


def from_environment() -> str:
    """``EMBER_TOKEN``, or the contents of ``EMBER_TOKEN_FILE``; "" when neither is set."""
    value = os.environ.get(ENV, "").strip()
    if value:
        return check_strength(value, ENV)
    path = os.environ.get(ENV_FILE, "")
    if path:
        return read_file(path)
    return ""


def read_file(path: str) -> str:
    try:
        with open(path) as f:
            value = f.read().strip()
    except OSError as error:
        raise TokenError(f"cannot read the cluster token from {path}: {error}") from None
    if not value:
        raise TokenError(f"the cluster token file {path} is empty")
    return check_strength(value, path)


def write_file(path: str, value: str) -> None:
    """Write a token file only its owner can read."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    os.chmod(path, 0o600)


def matches(given: str | bytes, expected: str) -> bool:
    if isinstance(given, str):
        given = given.encode()
    return hmac.compare_digest(given, expected.encode())


# ---------------------------------------------------------------------- gRPC, server side

REFUSED = (
    "missing or wrong cluster token: set EMBER_TOKEN (or EMBER_TOKEN_FILE, a file holding it) "
    "to the token of this cluster (ember start --head said where it is; on Kubernetes it is in "
    "the cluster's Secret)"
)


class TokenCheck(aio.ServerInterceptor):
    """Refuses every call, unary or streaming, whose metadata lacks the token."""

    def __init__(self, expected: str, who: str) -> None:
        self._expected = f"Bearer {expected}"
        self._who = who

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        for key, value in handler_call_details.invocation_metadata or ():
            if key == METADATA_KEY and matches(value, self._expected):
                return handler
        return _refusal(handler, f"{self._who}: {REFUSED}")


def _refusal(handler: grpc.RpcMethodHandler, message: str) -> grpc.RpcMethodHandler:
    """A handler that refuses the call without reading its request.

    Always a client-streaming one, whatever the method's shape: a unary handler would have gRPC
    receive and parse the whole request first (a 300 MB message cost the head ~900 MiB before
    its refusal), while a streaming one is refused at once, having cost at most a flow-control
    window of buffered bytes.
    """

    async def refuse(requests: Any, context: aio.ServicerContext) -> Any:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    async def refuse_stream(requests: Any, context: aio.ServicerContext) -> Any:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)
        yield  # an async generator, as a streaming handler must be

    kwargs = {"request_deserializer": None, "response_serializer": handler.response_serializer}
    if handler.unary_unary is not None or handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(refuse, **kwargs)
    return grpc.stream_stream_rpc_method_handler(refuse_stream, **kwargs)


# ---------------------------------------------------------------------- gRPC, client side


class TokenChannel:
    """A channel whose every call carries the token in its metadata.

    Not a client interceptor: grpc.aio sends an intercepted streaming call's messages through a
    queue and an async generator of its own, read by a task of its own; when the peer goes away
    first (a head restarting) nothing ends that task. It is destroyed pending with the call, and
    asyncio prints "Task was destroyed but it is pending!" and "aclose(): asynchronous generator
    is already running" into the program's output (grpc/grpc#26805). Metadata given with each
    call needs none of that machinery, and costs no task per call.
    """

    def __init__(self, channel: aio.Channel, value: str) -> None:
        self._channel = channel
        self._metadata = ((METADATA_KEY, f"Bearer {value}"),)

    def unary_unary(self, *args: Any, **kwargs: Any) -> Any:
        return _WithToken(self._channel.unary_unary(*args, **kwargs), self._metadata)

    def unary_stream(self, *args: Any, **kwargs: Any) -> Any:
        return _WithToken(self._channel.unary_stream(*args, **kwargs), self._metadata)

    def stream_unary(self, *args: Any, **kwargs: Any) -> Any:
        return _WithToken(self._channel.stream_unary(*args, **kwargs), self._metadata)

    def stream_stream(self, *args: Any, **kwargs: Any) -> Any:
        return _WithToken(self._channel.stream_stream(*args, **kwargs), self._metadata)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._channel, name)  # close(), get_state(), channel_ready(), ...


class _WithToken:
    __slots__ = ("_call", "_metadata")

    def __init__(self, call: Any, metadata: tuple[tuple[str, str], ...]) -> None:
        self._call = call
        self._metadata = metadata

    def __call__(self, *args: Any, metadata: Any = None, **kwargs: Any) -> Any:
        return self._call(*args, metadata=self._metadata + tuple(metadata or ()), **kwargs)


def with_token(channel: aio.Channel) -> Any:
    """``channel``, its calls carrying this process's token (as it is, with none)."""
    value = token()
    return TokenChannel(channel, value) if value else channel
