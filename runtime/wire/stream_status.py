"""A call that streams requests reports the status its server ended it with.

A server may end such a call while the client is still writing: it refuses a caller without
the token before reading a message (``auth.TokenCheck``), a relay refuses a target, a method
refuses a message over its limit. The server sends its status, then resets the stream. If a
write of the client is under way when that happens, it fails, and grpc.aio stamps the call with
INTERNAL "Internal error from Core" over the status it had already received from the server
(grpc/grpc#36066). The relay's refusal of a tunnel without the token came back as INTERNAL now
and then; a node agent with the wrong token could take such a refusal for a passing fault and
retry instead of stopping with the head's reason, and a driver be told of an "internal error"
instead of being told to set ``EMBER_TOKEN``.

So every stream-request call of an ember channel keeps the first status it ended with (the one
the server sent: a call's done-callbacks run once, when its status first arrives) and reports
that one in place of the stamp, from its writes, reads, awaits and ``code()`` alike. The stamp
still surfaces where it is all there is (gRPC refusing a batch outright, with no server status).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine, Generator
from typing import Any

import grpc
from grpc import aio

# What grpc.aio writes into a call whose write failed (``_AioCall.set_internal_error``).
STAMP_DETAILS = "Internal error from Core"


class _Status:
    """A call's status as it ended, read in its done-callback."""

    __slots__ = ("code", "debug", "details", "initial", "trailing")

    def __init__(self, call: Any) -> None:
        self.code: grpc.StatusCode = _now(call.code())
        self.details: str = _now(call.details())
        self.initial: Any = _now(call.initial_metadata())
        self.trailing: Any = _now(call.trailing_metadata())
        self.debug: str = _now(call.debug_error_string())

    def error(self) -> aio.AioRpcError:
        return aio.AioRpcError(self.code, self.initial, self.trailing, self.details, self.debug)


class _NotYet(Exception):
    """A status accessor that would wait: the call has not ended as far as grpc.aio knows."""


def _now(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """The value of an accessor of an ended call, which returns without waiting."""
    try:
        coroutine.send(None)
    except StopIteration as stop:
        return stop.value
    coroutine.close()
    raise _NotYet


def is_stamp(code: grpc.StatusCode, details: str | None) -> bool:
    return code == grpc.StatusCode.INTERNAL and details == STAMP_DETAILS


class _Served:
    """The status the server ended a call with, once it has (the call's done-callback)."""

    __slots__ = ("status",)

    def __init__(self) -> None:
        self.status: _Status | None = None

    def ended(self, call: Any) -> None:
        try:
            status = _Status(call)
        except _NotYet:
            return  # a grpc.aio of another make: report what it reports
        if not is_stamp(status.code, status.details):
            self.status = status


class ServedStatusCall:
    """A ``StreamStreamCall`` or ``StreamUnaryCall`` that reports its server's status."""

    __slots__ = ("_call", "_served")

    def __init__(self, call: Any) -> None:
        self._call = call
        self._served = _Served()
        call.add_done_callback(self._served.ended)

    def __del__(self) -> None:
        # grpc.aio cancels a call that is collected unfinished; its done-callback keeps this
        # one alive (the call and its callback refer to each other until it ends), so the
        # wrapper does it when it goes.
        call = getattr(self, "_call", None)
        if call is not None and not call.done():
            try:
                call.cancel()
            except RuntimeError:
                pass  # its event loop is closed already: nothing is left to cancel for

    def _mend(self, error: aio.AioRpcError) -> aio.AioRpcError:
        served = self._served.status
        if served is not None and is_stamp(error.code(), error.details()):
            return served.error()
        return error

    async def _stamped(self) -> _Status | None:
        """The status the server sent, when the (ended) call shows the stamp instead."""
        served = self._served.status
        if served is None or not is_stamp(await self._call.code(), await self._call.details()):
            return None
        return served

    def _finished(self) -> aio.AioRpcError:
        """A write to a call that has ended: grpc.aio raises ``InvalidStateError`` when the
        status arrived before the write began (the same refusal, a moment earlier); the writer
        is told the status, as when it arrives mid-write."""
        served = self._served.status
        return served.error() if served is not None else _Status(self._call).error()

    # ------------------------------------------------------------------ requests

    async def write(self, request: Any) -> None:
        try:
            await self._call.write(request)
        except aio.AioRpcError as error:
            raise self._mend(error) from None
        except asyncio.InvalidStateError:
            if not self._call.done():
                raise
            raise self._finished() from None

    async def done_writing(self) -> None:
        try:
            await self._call.done_writing()
        except aio.AioRpcError as error:
            raise self._mend(error) from None

    async def wait_for_connection(self) -> None:
        try:
            await self._call.wait_for_connection()
        except aio.AioRpcError as error:
            raise self._mend(error) from None

    # ------------------------------------------------------------------ responses

    async def read(self) -> Any:
        try:
            return await self._call.read()
        except aio.AioRpcError as error:
            raise self._mend(error) from None

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._responses()

    async def _responses(self) -> AsyncIterator[Any]:
        try:
            async for response in self._call:
                yield response
        except aio.AioRpcError as error:
            raise self._mend(error) from None

    def __await__(self) -> Generator[Any, None, Any]:
        return self._response().__await__()

    async def _response(self) -> Any:
        try:
            return await self._call
        except aio.AioRpcError as error:
            raise self._mend(error) from None

    # ------------------------------------------------------------------ the status

    async def code(self) -> grpc.StatusCode:
        code = await self._call.code()
        served = await self._stamped()
        return served.code if served is not None else code

    async def details(self) -> str:
        details = await self._call.details()
        served = await self._stamped()
        return served.details if served is not None else details

    async def trailing_metadata(self) -> Any:
        trailing = await self._call.trailing_metadata()
        served = await self._stamped()
        return served.trailing if served is not None else trailing

    async def debug_error_string(self) -> str:
        debug = await self._call.debug_error_string()
        served = await self._stamped()
        return served.debug if served is not None else debug

    def __getattr__(self, name: str) -> Any:
        return getattr(self._call, name)  # cancel(), done(), initial_metadata(), ...


class _ServedStatusMultiCallable:
    __slots__ = ("_callable",)

    def __init__(self, multi_callable: Any) -> None:
        self._callable = multi_callable

    def __call__(self, *args: Any, **kwargs: Any) -> ServedStatusCall:
        return ServedStatusCall(self._callable(*args, **kwargs))


class ServedStatusChannel:
    """``channel``, its stream-request calls reporting their server's status (unary-request
    calls send their one message with the call itself, and never see the stamp)."""

    def __init__(self, channel: Any) -> None:
        self._channel = channel

    def stream_unary(self, *args: Any, **kwargs: Any) -> Any:
        return _ServedStatusMultiCallable(self._channel.stream_unary(*args, **kwargs))

    def stream_stream(self, *args: Any, **kwargs: Any) -> Any:
        return _ServedStatusMultiCallable(self._channel.stream_stream(*args, **kwargs))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._channel, name)  # unary_unary(), close(), get_state(), ...


def channel(inner: Any) -> ServedStatusChannel:
    return ServedStatusChannel(inner)
