"""Distributed reference counting: who borrows the objects this process owns, and whose objects
this process borrows.

A ref that leaves its owner (in a task's arguments or results, or inside another object) makes
its holder a *borrower*. Borrowers tell the owner when they start and stop holding one
(``UpdateBorrows``, in batches), and the owner keeps an object while any borrower does — and
watches each borrower, because one that dies never says it let go. Before a worker answers a
task, its new borrows reach their owners (``flush_blocking``, which waits for reports already on
their way too), so no owner can free an object the task kept or a result still refers to.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

import grpc

from ember.runtime.objects.object_ref import ObjectRef
from ember.runtime.wire import event_loop
from ember.runtime.wire.protocol import ember_pb2 as pb

if TYPE_CHECKING:
    from ember.runtime.wire.event_loop import IoThread
    from ember.runtime.wire.rpc import Channels

log = logging.getLogger("ember.runtime.core.owner")


class Borrowing:
    def __init__(
        self,
        io: IoThread,
        channels: Channels,
        address: str,
        maybe_free: Callable[[bytes], None],
    ) -> None:
        self.io = io
        self.channels = channels
        self.address = address
        self.maybe_free = maybe_free
        # Owned refs pickled into values sent elsewhere: kept until a borrower holds them, or
        # this process exits, since a borrower may still ask for them.
        self.escaped: dict[bytes, ObjectRef] = {}
        # Objects this process owns -> the processes that borrow them.
        self.borrowers: dict[bytes, set[str]] = {}
        # Objects this process borrows -> their owners.
        self.borrowed: dict[bytes, str] = {}
        self._events: deque[tuple[bytes, str, bool]] = deque()
        self._flush_scheduled = False
        self._lock: asyncio.Lock | None = None
        self._watching: set[str] = set()

    # ---------------------------------------------------------------- as a borrower

    def started(self, object_id: bytes, owner: str) -> None:
        """A ref owned elsewhere is now held here (called under the reference table's lock)."""
        self.borrowed[object_id] = owner
        self._events.append((object_id, owner, True))
        self._schedule_flush()

    def stopped(self, object_id: bytes) -> bool:
        """No ref to ``object_id`` is left here; False if this process did not borrow it."""
        owner = self.borrowed.pop(object_id, None)
        if owner is None:
            return False
        self._events.append((object_id, owner, False))
        self._schedule_flush()
        return True

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.io.call_soon(self._start_flush)

    def _start_flush(self) -> None:
        event_loop.detach(self.flush(), "flushing borrow reports")

    async def flush(self) -> None:
        """Tell owners what this process started and stopped borrowing; returns once they
        know (and once earlier updates arrived too)."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            self._flush_scheduled = False
            updates: dict[str, pb.BorrowUpdate] = {}
            events = self._events
            while events:
                object_id, owner, added = events.popleft()
                update = updates.get(owner)
                if update is None:
                    update = updates[owner] = pb.BorrowUpdate(borrower=self.address)
                (update.added if added else update.removed).append(object_id)
            if updates:
                await asyncio.gather(*(self._send(owner, update) for owner, update in updates.items()))

    async def _send(self, owner: str, update: pb.BorrowUpdate) -> None:
        try:
            await self.channels.core_worker(owner).UpdateBorrows(update, timeout=30)
        except grpc.aio.AioRpcError as error:
            # An owner that is gone has nothing left to keep for us.
            log.debug("could not tell owner %s about borrows: %s", owner, error.code().name)

    def flush_blocking(self) -> None:
        """Before a worker answers a task, owners must know what it kept.

        That includes reports already on their way: the reply lets the owner drop the refs the
        task held, and it frees what no borrower it knows of holds; a borrow it hears of after
        that keeps nothing. A flush holds the lock while it sends, so a flush from here waits
        for one in flight (a report is always queued, scheduled or sent under the lock).
        """
        lock = self._lock
        if self._events or self._flush_scheduled or (lock is not None and lock.locked()):
            self.io.run(self.flush(), timeout=30)

    # ---------------------------------------------------------------- as an owner

    def escape(self, refs: list[ObjectRef]) -> None:
        """Refs found in a value that leaves this process: pin those it owns (see ``escaped``)."""
        for ref in refs:
            if ref._owner_address == self.address and ref._id not in self.escaped:
                self.escaped[ref._id] = ref

    def serve_update(self, update: pb.BorrowUpdate) -> None:
        """CoreWorker.UpdateBorrows (I/O thread): a borrower of objects this process owns."""
        borrower = update.borrower
        for object_id in update.added:
            self.borrowers.setdefault(object_id, set()).add(borrower)
            # The borrow now keeps it: no need for the pin put on it when it left.
            self.escaped.pop(object_id, None)
        for object_id in update.removed:
            self._let_go(object_id, borrower)
        if update.added and borrower not in self._watching:
            self._watching.add(borrower)
            event_loop.detach(self._watch(borrower), "watching a borrower")

    def _let_go(self, object_id: bytes, borrower: str) -> None:
        holders = self.borrowers.get(object_id)
        if holders is not None:
            holders.discard(borrower)
            if not holders:
                del self.borrowers[object_id]
                self.maybe_free(object_id)

    async def _watch(self, borrower: str) -> None:
        """A borrower that dies never says it let go: notice its death instead."""
        try:
            async for _ in self.channels.core_worker(borrower).Watch(pb.Empty()):
                pass
        except grpc.aio.AioRpcError:
            pass
        self._watching.discard(borrower)
        for object_id in [oid for oid, holders in self.borrowers.items() if borrower in holders]:
            self._let_go(object_id, borrower)
