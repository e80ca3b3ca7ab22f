"""Values crossing between a process and the owners of its objects, on the I/O thread.

A borrower asks an object's owner for the value (``CoreWorker.GetObject``, or ``GetObjects``
for many of one owner at once) and keeps it in its memory store while a ref to it is held here; the owner answers from its own store, waiting if
the task that makes the value still runs. When a drained node copied objects elsewhere, the
owner points what it holds at the new copies and tells the borrowers that fetched the old
locations (``object_moves``). Large values travel as locations in a node's object store, whose
bytes each reader pulls from the node (``store_client``); only the small value or the location
crosses here.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from typing import Any

import grpc

from ember.runtime.core import object_moves
from ember.runtime.core.borrowing import Borrowing
from ember.runtime.core.memory_store import MemoryStore, StoredValue, error_value
from ember.runtime.core.reference_table import ReferenceTable
from ember.runtime.core.task_record import TaskRecord
from ember.runtime.objects import ids
from ember.runtime.objects.exceptions import ObjectLostError, OwnerDiedError
from ember.runtime.objects.object_ref import ObjectRef, RefCore
from ember.runtime.wire import event_loop
from ember.runtime.wire.protocol import ember_pb2 as pb
from ember.runtime.wire.rpc import Channels

log = logging.getLogger("ember.runtime.core.object_exchange")

# Ids asked of one owner in one GetObjects call. An owner's gRPC server refuses calls beyond
# its pending-call limit (1,000): a get of 5,000 borrowed refs as 5,000 unary calls lost most
# of them. Batched, it is five calls.
BATCH_IDS = 1000


class ObjectExchange:
    """``address`` is this process's; ``tasks`` and ``lineage`` are its owner's (the tasks not
    finished, and the finished ones kept to run again); ``core`` is what refs found inside
    fetched values count themselves in."""

    def __init__(
        self,
        address: str,
        channels: Channels,
        store: MemoryStore,
        references: ReferenceTable,
        core: RefCore,
        borrowing: Borrowing,
        tasks: dict[bytes, TaskRecord],
        lineage: dict[bytes, TaskRecord],
    ) -> None:
        self.address = address
        self.channels = channels
        self.store = store
        self.references = references
        self.core = core
        self.borrowing = borrowing
        self.tasks = tasks
        self.lineage = lineage
        self._loop = asyncio.get_running_loop()
        self._fetching: set[bytes] = set()
        # Owned objects whose value comes later from something other than a task (a placement
        # group's readiness, ``Owner.promise``): borrowers asking meanwhile wait for it.
        self.pending: set[bytes] = set()
        # Refs to fetch, by owner, gathered until the loop's next turn: the refs asked for one by
        # one in a burst (a task's many borrowed arguments) travel together too.
        self._queued: dict[str, list[ObjectRef]] = {}
        # The fetches under way: asyncio holds tasks only weakly, and a fetch must not be
        # collected while it waits for its owner.
        self._fetches: set[asyncio.Task[None]] = set()

    # ---------------------------------------------------------------- as a borrower

    def fetch_all(self, refs: list[ObjectRef]) -> None:
        queued = self._queued
        first = not queued
        for ref in refs:
            if ref._id in self.store or ref._id in self._fetching:
                continue
            self._fetching.add(ref._id)
            batch = queued.get(ref._owner_address)
            if batch is None:
                batch = queued[ref._owner_address] = []
            batch.append(ref)
        if first and queued:
            self._loop.call_soon(self._send_queued)

    def _send_queued(self) -> None:
        queued, self._queued = self._queued, {}
        fetches = self._fetches
        for owner, refs in queued.items():
            if len(refs) == 1:  # the common case: a unary call costs less than a stream
                started = [asyncio.ensure_future(self._fetch(refs[0]))]
            else:
                started = [
                    event_loop.detach(self._fetch_batch(owner, refs[start:start + BATCH_IDS]), "fetching objects from their owner")
                    for start in range(0, len(refs), BATCH_IDS)
                ]
            for fetch in started:
                fetches.add(fetch)
                fetch.add_done_callback(fetches.discard)

    async def _fetch(self, ref: ObjectRef) -> None:
        """Get a borrowed object's value from its owner into this process's store."""
        try:
            stub = self.channels.core_worker(ref._owner_address)
            reply = await stub.GetObject(pb.GetObjectRequest(id=ref._id))
            value = self._value_of(ref, reply)
        except grpc.aio.AioRpcError as error:
            value = _unreachable(ref, error)
        self._arrived(ref, value)

    async def _fetch_batch(self, owner: str, refs: list[ObjectRef]) -> None:
        """Many borrowed objects of one owner in one call, each stored as its value comes."""
        waiting = {ref._id: ref for ref in refs}
        error: grpc.aio.AioRpcError | None = None
        try:
            stub = self.channels.core_worker(owner)
            async for reply in stub.GetObjects(pb.ObjectIds(ids=list(waiting))):
                ref = waiting.pop(reply.id, None)
                if ref is not None:
                    self._arrived(ref, self._value_of(ref, reply))
        except grpc.aio.AioRpcError as failed:
            error = failed
        for ref in waiting.values():
            if error is not None:
                self._arrived(ref, _unreachable(ref, error))
            else:
                self._arrived(ref, error_value(ObjectLostError(
                    f"{ref!r}: its owner at {owner} answered for other objects, not this one"
                )))

    def _value_of(self, ref: ObjectRef, reply: pb.GetObjectReply) -> StoredValue:
        if reply.lost_reason:
            return error_value(ObjectLostError(f"{ref!r}: {reply.lost_reason}"))
        contained = None
        if reply.value.contained:
            core = self.core
            contained = [ObjectRef(r.id, r.owner, core) for r in reply.value.contained]
        location = reply.value.location if reply.value.HasField("location") else None
        return StoredValue(reply.value.data, reply.value.kind, contained, location)

    def _arrived(self, ref: ObjectRef, value: StoredValue) -> None:
        self._fetching.discard(ref._id)
        if self.references.count(ref._id) > 0:
            self.store.put(ref._id, value)

    async def value_of(self, ref: ObjectRef) -> StoredValue:
        """The stored value of ``ref`` once present here (fetched from its owner if that is
        another process); an error value is returned, not raised."""
        value = self.store.get(ref._id)
        if value is not None:
            return value
        if ref._owner_address != self.address:
            self.fetch_all([ref])
        future: asyncio.Future[StoredValue] = self._loop.create_future()

        def ready(_: bytes, value: StoredValue) -> None:
            self._loop.call_soon_threadsafe(_set_result, future, value)

        self.store.on_ready(ref._id, ready)
        return await future

    # ---------------------------------------------------------------- as an owner

    async def serve_get_objects(self, object_ids: list[bytes]) -> AsyncIterator[pb.GetObjectReply]:
        """CoreWorker.GetObjects: each owned object as soon as it is ready, so that a borrower
        waiting for some of them is not held up by a slow one."""
        waiting = [asyncio.ensure_future(self.serve_get_object(object_id)) for object_id in object_ids]
        try:
            for ready in asyncio.as_completed(waiting):
                yield await ready
        finally:  # the borrower went away: stop waiting for the rest
            for future in waiting:
                future.cancel()

    async def serve_get_object(self, object_id: bytes) -> pb.GetObjectReply:
        """CoreWorker.GetObject: wait until an owned object is ready, then return it."""
        value = self.store.get(object_id)
        if value is None:
            if ids.task_of(object_id) not in self.tasks and object_id not in self.pending:
                return pb.GetObjectReply(
                    id=object_id, lost_reason=f"its owner (pid {os.getpid()}) no longer holds it"
                )
            future: asyncio.Future[StoredValue] = self._loop.create_future()

            def ready(_: bytes, stored: StoredValue) -> None:
                if not future.done():
                    self._loop.call_soon_threadsafe(_set_result, future, stored)

            self.store.on_ready(object_id, ready)
            value = await future
        message = value.message(object_id)
        if value.contained:
            message.contained.extend(
                pb.ObjectRefMsg(id=r._id, owner=r._owner_address) for r in value.contained
            )
            self.borrowing.escape(value.contained)
        return pb.GetObjectReply(value=message, id=object_id)

    def serve_objects_moved(self, request: pb.ObjectsMovedRequest) -> pb.ObjectIds:
        """CoreWorker.ObjectsMoved: a drained node copied objects elsewhere. Returns the ids
        this process holds no value for."""
        moved = {m.id: m.location for m in request.objects}
        tasks = [*self.tasks.values(), *self.lineage.values()]
        unknown = object_moves.relocate(self.store, tasks, moved)
        if not request.from_owner:
            borrowers = self.borrowing.borrowers
            for borrower, update in object_moves.by_borrower(borrowers, moved).items():
                event_loop.detach(self._tell_borrower(borrower, update), "telling a borrower of an update")
        return pb.ObjectIds(ids=unknown)

    async def _tell_borrower(self, borrower: str, update: pb.ObjectsMovedRequest) -> None:
        try:
            await self.channels.core_worker(borrower).ObjectsMoved(update, timeout=30)
        except grpc.aio.AioRpcError as error:
            log.debug("could not tell borrower %s of moved objects: %s", borrower, error.code().name)


def _unreachable(ref: ObjectRef, error: grpc.aio.AioRpcError) -> StoredValue:
    return error_value(OwnerDiedError(
        f"{ref!r} is lost: its owner at {ref._owner_address} cannot be reached ({error.code().name})"
    ))


def _set_result(future: asyncio.Future[Any], value: Any) -> None:
    if not future.done():
        future.set_result(value)
