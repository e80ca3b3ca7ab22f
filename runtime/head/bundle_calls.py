"""The head's calls to node agents about placement group bundles, many groups' in one call.

A driver that creates a hundred groups and then waits for them all, or removes them all, once
cost the head and the node one prepare, one commit and one release call per group per node:
both spent their time on calls, not on the groups. So calls of one kind (prepare, commit,
release) to one node travel together. What is asked within one turn of the event loop goes in
one call at once (a lone group waits for nothing), and what is asked while ``MAX_CALLS`` of that
kind are already under way to that node goes in the next call, as soon as one returns.

A call is only transport: at the node each group's part is done or refused on its own, as if it
had come alone (``node/bundles``), and each group hears its own answer. So every group stays
all or nothing: one group refused in a call takes nothing from the others in it, and a call
that fails (the node did not answer) fails each of its groups, which give back what they
reserved elsewhere as before.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from ember.runtime.head.membership import NodeState
from ember.runtime.wire import rpc
from ember.runtime.wire.protocol import ember_pb2 as pb

log = logging.getLogger("ember.runtime.head.placement_groups")

BUNDLE_RPC_TIMEOUT = 10.0  # seconds a node has to answer one call
MAX_CALLS = 2  # calls of one kind under way to one node at once
MAX_BATCH_BYTES = 1 << 20  # a call's requests, well below a control message's limit

Send = Callable[[list[Any]], Awaitable[list[str]]]


class _Lane:
    """The requests of one kind for one node: queued, then sent together."""

    def __init__(self, node: str, send: Send, done: Callable[[_Lane], None]) -> None:
        self.node = node  # said in errors
        self.send = send
        self.done = done  # told when nothing is queued or under way any more
        self.queued: collections.deque[tuple[Any, int, asyncio.Future[str]]] = collections.deque()
        self.calls = 0
        self._flush_soon = False
        self._tasks: set[asyncio.Task[None]] = set()

    def put(self, request: Any) -> asyncio.Future[str]:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[str] = loop.create_future()
        self.queued.append((request, request.ByteSize(), answer))
        if not self._flush_soon:
            # Whatever else is asked in this turn of the loop (a scheduling pass's groups, a
            # job's removals) joins this call.
            self._flush_soon = True
            loop.call_soon(self._flush)
        return answer

    def idle(self) -> bool:
        return not self.queued and not self.calls and not self._flush_soon

    def _flush(self) -> None:
        self._flush_soon = False
        while self.queued and self.calls < MAX_CALLS:
            batch: list[tuple[Any, asyncio.Future[str]]] = []
            size = 0
            while self.queued and (not batch or size + self.queued[0][1] <= MAX_BATCH_BYTES):
                request, request_size, answer = self.queued.popleft()
                size += request_size
                if not answer.cancelled():
                    batch.append((request, answer))
            if not batch:
                continue
            self.calls += 1
            task = asyncio.ensure_future(self._call(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if self.idle():
            self.done(self)

    async def _call(self, batch: list[tuple[Any, asyncio.Future[str]]]) -> None:
        try:
            errors = await self.send([request for request, _ in batch])
            if len(errors) != len(batch):
                errors = [f"{self.node} answered {len(errors)} of {len(batch)} requests"] * len(batch)
        except grpc.aio.AioRpcError as rpc_error:
            errors = [f"{self.node} did not answer ({rpc_error.code().name})"] * len(batch)
        except Exception as failure:  # noqa: BLE001 - each group hears it; none waits forever
            log.exception("a call about bundles to %s failed", self.node)
            errors = [f"the call to {self.node} failed: {failure!r}"] * len(batch)
        finally:
            self.calls -= 1
        for (_, answer), why in zip(batch, errors, strict=True):
            if not answer.done():
                answer.set_result(why)
        self._flush()

    def cancel(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for _, _, answer in self.queued:
            answer.cancel()
        self.queued.clear()


class BundleCalls:
    """Prepare, commit and release on nodes, each coalesced per node (see the module)."""

    def __init__(self, channels: rpc.Channels) -> None:
        self.channels = channels
        self._lanes: dict[tuple[bytes, str], _Lane] = {}

    async def prepare(self, node: NodeState, request: pb.BundleReservation) -> str:
        """Reserve the group's bundles on the node; returns why not ("" when done)."""
        return await self._lane(node, "PrepareBundles").put(request)

    async def commit(self, node: NodeState, request: pb.BundleReservation) -> str:
        """Make the group's prepared bundles usable on the node; returns why not."""
        return await self._lane(node, "CommitBundles").put(request)

    async def release(self, node: NodeState, request: pb.BundleRelease) -> str:
        """Give bundles back on the node; returns why that could not be said to it."""
        return await self._lane(node, "ReleaseBundles").put(request)

    def close(self) -> None:
        for lane in self._lanes.values():
            lane.cancel()
        self._lanes.clear()

    def _lane(self, node: NodeState, method: str) -> _Lane:
        key = (node.node_id, method)
        lane = self._lanes.get(key)
        if lane is None:
            lane = _Lane(node.describe(), self._sender(node, method), lambda done: self._done(key, done))
            self._lanes[key] = lane
        return lane

    def _done(self, key: tuple[bytes, str], lane: _Lane) -> None:
        """A lane with nothing to do goes (a node that died leaves none behind)."""
        if self._lanes.get(key) is lane:
            del self._lanes[key]

    def _sender(self, node: NodeState, method: str) -> Send:
        address = node.info.address

        async def send(requests: list[Any]) -> list[str]:
            stub = getattr(self.channels.node_agent(address), method)
            if method == "ReleaseBundles":
                await stub(pb.BundleReleases(releases=requests), timeout=BUNDLE_RPC_TIMEOUT)
                return [""] * len(requests)
            reply = await stub(pb.BundleReservations(reservations=requests), timeout=BUNDLE_RPC_TIMEOUT)
            return list(reply.errors)

        return send
