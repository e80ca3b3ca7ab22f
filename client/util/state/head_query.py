"""How the state API reaches the head: from a driver, from inside a task or actor, or from a
process that is not connected at all (the ``ember list`` command, a script given ``address``).

Ray's state functions work in all three places, and so do these: a connected process asks
over its own channels (the driver's, or the worker's I/O thread); otherwise ``address`` (or
``EMBER_ADDRESS``, or the cluster ``ember start`` left running on this machine) names the head,
and a channel is opened for the one call.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
from typing import Any

import grpc

from ember.runtime import session
from ember.runtime.core import context
from ember.runtime.objects.exceptions import EmberError
from ember.runtime.wire import auth, rpc


class StateApiError(EmberError):
    """The state API could not get what was asked (Ray's ``RayStateApiException``)."""


def head_address(address: str | None) -> str | None:
    """``address`` as HOST:PORT; None: the process's own connection is to be used."""
    if address is None:
        return None
    if address == "auto":
        found = os.environ.get("EMBER_ADDRESS") or session.read_current_cluster()
        if not found:
            raise ConnectionError(
                "address='auto' found no running ember cluster: start one with "
                "'ember start --head' or set EMBER_ADDRESS"
            )
        address = found
    address = address.removeprefix("ember://")
    if ":" not in address:
        raise ValueError(f"address {address!r} must be HOST:PORT or ember://HOST:PORT")
    return address


def ask(method: str, request: Any, address: str | None = None, timeout: float = 30.0) -> Any:
    """One unary call to the head; ``StateApiError`` naming the head when it fails."""
    target = head_address(address)
    core = context.current_core()
    if target is None and core is None:
        target = head_address("auto")  # as Ray: no ray.init(), but a cluster is running here
    try:
        if target is None:
            assert core is not None

            async def call() -> Any:
                return await getattr(core.channels.head(core.head_address), method)(request, timeout=timeout)

            return core.io.run(call())
        if core is None:
            auth.set_token(auth.from_environment() or session.token_of_current_cluster(target))
        return _on_a_thread(target, method, request, timeout)
    except grpc.aio.AioRpcError as error:
        where = target or (core.head_address if core is not None else "?")
        raise StateApiError(
            f"the ember head at {where} did not answer {method}: {error.code().name} {error.details()}"
        ) from None


def _on_a_thread(target: str, method: str, request: Any, timeout: float) -> Any:
    """A call on a loop of its own, in a thread: the caller may be running an event loop."""

    async def call() -> Any:
        channels = rpc.Channels()
        try:
            return await getattr(channels.head(target), method)(request, timeout=timeout)
        finally:
            await channels.close()

    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="ember-state") as thread:
        return thread.submit(asyncio.run, call()).result()
