"""How large one gRPC message may be, method by method.

A control message (a lease request, a node's report, a view of the cluster) is a few KiB; a
message of hundreds of MiB on such a method is a bug or an attack, and grpc receives and parses
the whole of it before any handler runs. So every method may carry at most ``CONTROL`` bytes each
way, except the few that carry object bytes or batches that grow with the work:

- ``PushObject`` / ``PullObject``: object chunks (``object_transfer.CHUNK``, 8 MiB);
- ``Relay.Tunnel``: a driver's connections through the head, in chunks of 4 MiB;
- ``CreateActor``: the actor's class, pickled by value with whatever it captures;
- ``PushLogs``: what tasks printed since the last batch;
- lists of object ids (frees, seals, borrows, moves, cancels) and the head's listings, which
  grow with the objects, actors and nodes of a large cluster.

Tasks do not travel over gRPC (``task_channel``: at most ``task_submitter.MAX_IN_FLIGHT`` tasks
a frame), nor do objects in the common case (``bulk_transfer``).

gRPC Python takes one receive limit per server, not per method: a server is given the largest
limit among the methods it serves, and ``LimitCheck`` refuses a message over its own method's
limit with ``RESOURCE_EXHAUSTED``, naming both. On the client side every channel carries the
table as a service config, which gRPC applies per method. A caller without the token never gets
that far: ``auth.TokenCheck`` refuses it before its message is read.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import grpc
from grpc import aio

MiB = 1 << 20
CONTROL = 4 * MiB  # gRPC's own default
CHUNKS = 16 * MiB  # an 8 MiB object chunk and its envelope
TUNNEL = 8 * MiB  # a 4 MiB tunnel chunk and its envelope
BATCH = 64 * MiB  # ~2 million object ids; a large cluster's listing
ACTOR_CLASS = 256 * MiB  # a class pickled with what it captures (Ray allows ~100 MB)


@dataclass(frozen=True)
class Limit:
    request: int = CONTROL
    response: int = CONTROL


# Methods that need more than CONTROL one way or the other: "/ember.<Service>/<Method>".
LIMITS: dict[str, Limit] = {
    "/ember.NodeAgent/PushObject": Limit(request=CHUNKS),
    "/ember.NodeAgent/PullObject": Limit(response=CHUNKS),
    "/ember.Relay/Tunnel": Limit(request=TUNNEL, response=TUNNEL),
    "/ember.Head/CreateActor": Limit(request=ACTOR_CLASS),
    "/ember.CoreWorker/PushLogs": Limit(request=BATCH),
    "/ember.CoreWorker/UpdateBorrows": Limit(request=BATCH),
    "/ember.CoreWorker/ObjectsMoved": Limit(request=BATCH, response=BATCH),
    "/ember.CoreWorker/CancelTasks": Limit(request=BATCH),
    "/ember.NodeAgent/SealObjects": Limit(request=BATCH),
    "/ember.NodeAgent/FreeObjects": Limit(request=BATCH),
    "/ember.NodeAgent/RestoreObject": Limit(request=BATCH),
    "/ember.NodeAgent/ListTasks": Limit(response=BATCH),
    "/ember.NodeAgent/ListWorkers": Limit(response=BATCH),
    "/ember.NodeAgent/ListLogs": Limit(response=BATCH),
    "/ember.Head/NodeSession": Limit(response=BATCH),  # owners gone: addresses of dead workers
    "/ember.Head/GetClusterView": Limit(response=BATCH),
    "/ember.Head/ListActors": Limit(response=BATCH),
    "/ember.Head/GetActor": Limit(response=BATCH),
    "/ember.Head/ListClusterLogs": Limit(response=BATCH),
    "/ember.Head/GetDemand": Limit(response=BATCH),
}

LARGEST = max(max(limit.request, limit.response) for limit in LIMITS.values())


def limit_of(method: str) -> Limit:
    return LIMITS.get(method, Limit())


def receive_limit(services: Iterable[str]) -> int:
    """The largest request any method of ``services`` (names like "Head") may receive: the
    receive limit of a server serving them."""
    prefixes = tuple(f"/ember.{service}/" for service in services)
    return max([CONTROL] + [limit.request for method, limit in LIMITS.items() if method.startswith(prefixes)])


def service_config() -> str:
    """The table as a gRPC service config, for channels: the first entry (no name) is the
    default every other method gets."""
    grouped: dict[Limit, list[dict[str, str]]] = {}
    for method, limit in LIMITS.items():
        service, name = method.strip("/").split("/")
        grouped.setdefault(limit, []).append({"service": service, "method": name})
    configs: list[dict[str, Any]] = [
        {"name": [{}], "maxRequestMessageBytes": CONTROL, "maxResponseMessageBytes": CONTROL}
    ]
    for limit, names in grouped.items():
        configs.append(
            {"name": names, "maxRequestMessageBytes": limit.request, "maxResponseMessageBytes": limit.response}
        )
    return json.dumps({"methodConfig": configs})


def describe(size: int) -> str:
    return f"{size / MiB:.1f} MiB" if size >= MiB else f"{size} bytes"


class _TooLarge:
    """What the deserializer hands on instead of a message over its method's limit."""

    __slots__ = ("size",)

    def __init__(self, size: int) -> None:
        self.size = size


class LimitCheck(aio.ServerInterceptor):
    """Refuses a message larger than its method allows (the server as a whole allows the
    largest of its methods' limits), before it is parsed."""

    def __init__(self, who: str, server_limit: int) -> None:
        self._who = who
        self._server_limit = server_limit

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        limit = limit_of(method).request
        if limit >= self._server_limit:
            return handler  # gRPC itself refuses anything larger
        return _limited(handler, method, limit, self._who)


def _limited(handler: grpc.RpcMethodHandler, method: str, limit: int, who: str) -> grpc.RpcMethodHandler:
    parse = handler.request_deserializer

    def deserialize(raw: bytes) -> Any:
        if len(raw) > limit:
            return _TooLarge(len(raw))
        return parse(raw) if parse is not None else raw

    def refusal(size: int) -> str:
        return (
            f"{who}: a {method} message may be at most {describe(limit)}; this one is "
            f"{describe(size)}"
        )

    kwargs = {"request_deserializer": deserialize, "response_serializer": handler.response_serializer}
    if handler.unary_unary is not None or handler.unary_stream is not None:
        inner = handler.unary_unary or handler.unary_stream
        if inspect.isasyncgenfunction(inner):

            async def unary_in_stream_out(request: Any, context: aio.ServicerContext) -> AsyncIterator[Any]:
                if isinstance(request, _TooLarge):
                    await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, refusal(request.size))
                async for reply in inner(request, context):
                    yield reply

            behavior: Any = unary_in_stream_out
        else:

            async def unary_in(request: Any, context: aio.ServicerContext) -> Any:
                if isinstance(request, _TooLarge):
                    await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, refusal(request.size))
                reply = inner(request, context)
                return await reply if inspect.isawaitable(reply) else reply

            behavior = unary_in
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(behavior, **kwargs)
        return grpc.unary_stream_rpc_method_handler(behavior, **kwargs)

    inner = handler.stream_unary or handler.stream_stream

    async def checked(requests: AsyncIterator[Any], context: aio.ServicerContext) -> AsyncIterator[Any]:
        async for request in requests:
            if isinstance(request, _TooLarge):
                await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, refusal(request.size))
            yield request

    if inspect.isasyncgenfunction(inner):

        async def stream_in_stream_out(requests: AsyncIterator[Any], context: aio.ServicerContext) -> AsyncIterator[Any]:
            async for reply in inner(checked(requests, context), context):
                yield reply

        behavior = stream_in_stream_out
    else:

        async def stream_in(requests: AsyncIterator[Any], context: aio.ServicerContext) -> Any:
            reply = inner(checked(requests, context), context)
            return await reply if inspect.isawaitable(reply) else reply

        behavior = stream_in
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(behavior, **kwargs)
    return grpc.stream_stream_rpc_method_handler(behavior, **kwargs)
