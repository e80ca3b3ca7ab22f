"""gRPC messages: a caller without the token is refused before its message is read, and a
caller with it is held to each method's own limit (a few MiB for control, more only where
objects or batches travel)."""

from __future__ import annotations

import asyncio
import os
import selectors
import time

import grpc
import pytest

import ember
from ember.runtime.core import context
from ember.runtime.wire import auth, message_limits
from tests.security.conftest import (
    CLUSTER_DESCRIPTORS,
    actor_info,
    alive,
    close_all,
    cluster_pids,
    flood,
    reset_peak,
    usage,
)

HUGE = 64 << 20


def _send(address: str, method: str, size: int, token: str | None) -> grpc.aio.AioRpcError | bytes:
    """One raw unary call carrying ``size`` bytes (no ember channel options: no limit here)."""

    async def go() -> grpc.aio.AioRpcError | bytes:
        channel = grpc.aio.insecure_channel(address, options=[("grpc.max_send_message_length", -1)])
        metadata = [("authorization", f"Bearer {token}")] if token else None
        try:
            return await channel.unary_unary(method)(b"\0" * size, metadata=metadata, timeout=60)
        except grpc.aio.AioRpcError as error:
            return error
        finally:
            await channel.close()

    return asyncio.run(go())


@ember.remote
class Listener:
    def pid(self) -> int:
        return os.getpid()


@pytest.mark.parametrize("target", ["head", "node agent", "worker"])
def test_a_message_without_the_token_is_refused_unread(few_descriptors: object, target: str) -> None:
    """Before: every server received and parsed a message of any size before checking the
    token (300 MB took the head from 51 MiB to a 938 MiB peak)."""
    core = context.require_core()
    head_pid, agent_pid = cluster_pids()
    if target == "head":
        pid, address, method = head_pid, core.head_address, "/ember.Head/GetClusterView"
    elif target == "node agent":
        pid, address, method = agent_pid, core.local_agent, "/ember.NodeAgent/GetStoreInfo"
    else:
        listener = Listener.remote()
        pid = ember.get(listener.pid.remote())
        address, method = actor_info("Listener").address, "/ember.CoreWorker/GetObject"
    reset_peak(pid)
    before = usage(pid)
    refused = _send(address, method, HUGE, token=None)
    after = usage(pid)
    assert isinstance(refused, grpc.aio.AioRpcError) and refused.code() == grpc.StatusCode.UNAUTHENTICATED, refused
    grew = (after.peak_kib - before.rss_kib) >> 10
    print(f"{target}: {before.rss_kib >> 10} MiB, peak +{grew} MiB for {HUGE >> 20} MiB without the token")
    assert grew < 16, f"the {target} took {grew} MiB for a message it refused"
    assert alive(pid)


def test_a_token_holder_is_held_to_each_methods_limit(few_descriptors: object) -> None:
    core = context.require_core()
    too_big = message_limits.CONTROL + (1 << 20)
    refused = _send(core.head_address, "/ember.Head/GetClusterView", too_big, token=auth.token())
    assert isinstance(refused, grpc.aio.AioRpcError)
    assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "/ember.Head/GetClusterView" in (refused.details() or "") and "4.0 MiB" in (refused.details() or "")
    # An ember channel does not even send it.
    channel = core.channels.channel(core.head_address)

    async def through_ember() -> grpc.aio.AioRpcError | bytes:
        try:
            return await channel.unary_unary("/ember.Head/GetClusterView")(b"\0" * too_big, timeout=30)
        except grpc.aio.AioRpcError as error:
            return error

    local = core.io.run(through_ember())
    assert isinstance(local, grpc.aio.AioRpcError) and local.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert ember.nodes()  # the head serves on


@ember.remote
class Keeper:
    def keep(self, refs: list[ember.ObjectRef]) -> int:
        self.refs = refs
        return len(refs)

    def last(self) -> int:
        return int(ember.get(self.refs[-1]))

    def drop(self) -> None:
        self.refs = []


def test_methods_that_carry_large_messages_still_do(few_descriptors: object) -> None:
    """An actor whose class captures 20 MiB, and an actor borrowing 200,000 refs (one batch of
    borrows larger than a control message: were it refused, the owner would free the objects
    under the borrower), still work."""
    blob = os.urandom(20 << 20)

    @ember.remote
    class Heavy:
        def size(self) -> int:
            return len(blob)

    assert ember.get(Heavy.remote().size.remote(), timeout=120) == len(blob)
    keeper = Keeper.remote()
    refs = [ember.put(i) for i in range(200_000)]
    assert ember.get(keeper.keep.remote(refs), timeout=120) == len(refs)
    # The owner (this driver) heard of every borrow: the one batch of them arrived.
    core = context.require_core()
    borrower = actor_info("Keeper").address

    def borrowed() -> int:
        async def count() -> int:
            holders = core.borrowing.borrowers
            return sum(1 for ref in refs if borrower in holders.get(ref.binary(), ()))

        return int(core.io.run(count()))

    assert borrowed() == len(refs)
    assert ember.get(keeper.last.remote(), timeout=120) == 199_999
    # And of their end, in one batch too.
    ember.get(keeper.drop.remote())
    deadline = time.monotonic() + 60
    while borrowed() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert borrowed() == 0, "the owner never heard that the borrower let its refs go"


def test_idle_connections_to_the_head_are_dropped_and_it_serves_on(few_descriptors: object) -> None:
    """Connections that never start HTTP/2 are dropped after the handshake timeout (gRPC's own
    default is 120 s), and a flood of them leaves the head serving. Before: they were held for
    two minutes, the head's descriptors ran out, and ``ember status`` and new drivers failed."""
    core = context.require_core()
    head, _ = cluster_pids()
    before = usage(head)
    idle = flood(core.head_address, 3 * CLUSTER_DESCRIPTORS)
    selector = selectors.DefaultSelector()
    for sock in idle:
        selector.register(sock, selectors.EVENT_READ)
    most, dropped = before.descriptors, 0
    try:
        deadline = time.monotonic() + 60
        while not dropped and time.monotonic() < deadline:
            most = max(most, usage(head).descriptors)
            dropped += len(selector.select(0.2))
        print(f"head descriptors: {before.descriptors} before, at most {most} under {len(idle)} idle connections")
        assert dropped, "no idle connection was dropped within a minute"
        # Connections are capped at half the descriptors the process may open.
        assert most <= before.descriptors + CLUSTER_DESCRIPTORS // 2 + 16, (before, most)
    finally:
        selector.close()
        close_all(idle)
    assert alive(head)
    assert ember.nodes()
    # A caller that connects afresh is served (a new driver, ember status).
    deadline = time.monotonic() + 60
    fresh = _send(core.head_address, "/ember.Head/GetClusterView", 0, token=auth.token())
    while isinstance(fresh, grpc.aio.AioRpcError) and time.monotonic() < deadline:
        time.sleep(0.5)  # until the head has let go of the flood's connections
        fresh = _send(core.head_address, "/ember.Head/GetClusterView", 0, token=auth.token())
    assert isinstance(fresh, bytes), fresh
