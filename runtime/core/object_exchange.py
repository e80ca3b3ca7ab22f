"""Values crossing between a process and the owners of its objects, on the I/O thread.

A borrower asks an object's owner for the value (``CoreWorker.GetObject``) and keeps it in its
memory store while a ref to it is held here; the owner answers from its own store, waiting if
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
from ember.runtime.wire.protocol import ember_pb2 as pb
from ember.runtime.wire.rpc import Channels

log = logging.getLogger("ember.runtime.core.object_exchange")


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

    # ---------------------------------------------------------------- as a borrower

    def fetch_all(self, refs: list[ObjectRef]) -> None:
        for ref in refs:
            if ref._id in self.store or ref._id in self._fetching:
                continue
            self._fetching.add(ref._id)
            asyncio.ensure_future(self._fetch(ref))

    async def _fetch(self, ref: ObjectRef) -> None:
        """Get a borrowed object's value from its owner into this process's store."""
        try:
            stub = self.channels.core_worker(ref._owner_address)
            reply = await stub.GetObject(pb.GetObjectRequest(id=ref._id))
            if reply.lost_reason:
                value = error_value(ObjectLostError(f"{ref!r}: {reply.lost_reason}"))
            else:
                contained = None
                if reply.value.contained:
                    core = self.core
                    contained = [ObjectRef(r.id, r.owner, core) for r in reply.value.contained]
                location = reply.value.location if reply.value.HasField("location") else None
                value = StoredValue(reply.value.data, reply.value.kind, contained, location)
        except grpc.aio.AioRpcError as error:
            value = error_value(
                OwnerDiedError(
                    f"{ref!r} is lost: its owner at {ref._owner_address} cannot be reached "
                    f"({error.code().name})"
                )
            )
        finally:
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

    async def serve_get_object(self, object_id: bytes) -> pb.GetObjectReply:
        """CoreWorker.GetObject: wait until an owned object is ready, then return it."""
        value = self.store.get(object_id)
        if value is None:
            if ids.task_of(object_id) not in self.tasks and object_id not in self.pending:
                return pb.GetObjectReply(
                    lost_reason=f"its owner (pid {os.getpid()}) no longer holds it"
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
        return pb.GetObjectReply(value=message)

    def serve_objects_moved(self, request: pb.ObjectsMovedRequest) -> pb.ObjectIds:
        """CoreWorker.ObjectsMoved: a drained node copied objects elsewhere. Returns the ids
        this process holds no value for."""
        moved = {m.id: m.location for m in request.objects}
        tasks = [*self.tasks.values(), *self.lineage.values()]
        unknown = object_moves.relocate(self.store, tasks, moved)
        if not request.from_owner:
            borrowers = self.borrowing.borrowers
            for borrower, update in object_moves.by_borrower(borrowers, moved).items():
                asyncio.ensure_future(self._tell_borrower(borrower, update))
        return pb.ObjectIds(ids=unknown)

    async def _tell_borrower(self, borrower: str, update: pb.ObjectsMovedRequest) -> None:
        try:
            await self.channels.core_worker(borrower).ObjectsMoved(update, timeout=30)
        except grpc.aio.AioRpcError as error:
            log.debug("could not tell borrower %s of moved objects: %s", borrower, error.code().name)


def _set_result(future: asyncio.Future[Any], value: Any) -> None:
    if not future.done():
        future.set_result(value)
