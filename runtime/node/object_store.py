"""A node's shared-memory object store, kept by its node agent.

Objects live in ranges of the node's arena (``arena.py``), a sparse file of the store's capacity
in a ``/dev/shm`` directory of the node's own (two agents on one machine have two stores).
Writers ask for a range (``create``), write into it through their own mapping and seal it;
readers view it in place. The store keeps the books: which range holds what, who owns it, what
is spilled.

Ranges are handed out first-fit from the lowest offset (``free_list``), so the memory written for
earlier objects is what new objects reuse: already faulted in, it is written at memory bandwidth.
Free memory that stays unused for ``IDLE_RELEASE`` seconds is given back to the system (a hole
punched in the file), so an idle node returns to its idle footprint.

When there is no room, the objects created longest ago that no process pins are spilled to a
directory on disk and restored when read again. When nothing can be spilled, ``create`` fails
with the sizes, so ``put`` raises ``ObjectStoreFullError`` instead of the node running out of
memory.

Spills and restores copy on an executor thread while the agent's event loop goes on freeing,
sealing and streaming objects. Each object therefore has a state (``store_entries``), and whatever finishes
last gives its range and spill file back, exactly once: an object freed while it is spilled,
restored, streamed to another node or pulled in from one leaves the books (``entries``) at once,
and its range goes back when the copy or the stream that still uses it ends. ``check_invariants``
says whether the books add up; a store whose books do not, or whose operation failed in a way
nothing explains, is *broken*: it says so (``broken``, the agent's health check and reports)
and refuses new objects rather than hand out memory that may belong to another. What it holds
can still be read and copied away (a drain).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import shutil
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager

from ember.runtime.node.free_list import FreeList
from ember.runtime.node.store_entries import (
    CREATING,
    GONE,
    IN_MEMORY,
    ON_DISK,
    RESTORING,
    SEALED,
    SPILLED,
    SPILLING,
    Entry,
    problems,
)
from ember.runtime.objects import arena as arena_io
from ember.runtime.objects import shm_object
from ember.runtime.objects.arena import PAGE, Arena

log = logging.getLogger("ember.runtime.node.object_store")

IDLE_RELEASE = 10.0  # seconds free memory is kept for reuse before it goes back to the system

SEAL_WAIT = 10.0  # seconds a reader waits for an object being written to be sealed
# Seconds between the agent's checks of the books: ~1 ms per thousand objects, on its loop.
BOOKS_EVERY = 10.0
# The start of an object's header, through its id: written last when an object is restored, so
# a reader that finds its id there finds the whole object (see shm_object).
HEADER = shm_object.ID_OFFSET + shm_object.ID_SIZE


class StoreFull(Exception):
    pass


class Lost(Exception):
    pass


class StoreBroken(Lost):
    """The store's books no longer add up: it takes no new objects."""


def _gib(size: float) -> str:
    return f"{size / 2**30:.2f} GiB" if size >= 2**28 else f"{size / 2**20:.1f} MiB"


def _round(size: int) -> int:
    return max(PAGE, (size + PAGE - 1) // PAGE * PAGE)


class ObjectStore:
    def __init__(self, directory: str, capacity: int, spill_dir: str) -> None:
        self.directory = directory
        self.capacity = capacity // PAGE * PAGE
        self.spill_dir = spill_dir
        os.makedirs(directory, exist_ok=True)
        self.arena = Arena(os.path.join(directory, "arena"), self.capacity, create=True)
        self.free_list = FreeList(self.capacity)
        self.entries: dict[bytes, Entry] = {}
        # Freed objects whose range or spill file a reader, a spill or a restore still uses.
        self.leaving: set[Entry] = set()
        # Freed ranges some reader still pins: free for real once it lets go.
        self.pinned_free: list[tuple[int, int]] = []
        self.used = 0  # bytes of the ranges objects hold (freed ones too, until given back)
        self.spilled_bytes = 0  # bytes of the complete spill files objects hold
        self.spilled_total = 0
        self.restored_total = 0
        self.created_total = 0
        self.reused_total = 0
        self.broken = ""  # why the store takes no new objects ("" while it is sound)
        self.on_broken: Callable[[str], None] | None = None
        self._lock = asyncio.Lock()
        self._spills = itertools.count()
        self._touched = 0  # high-water mark of the arena: below it, pages may be in memory
        self._books_checked = float("-inf")

    # ------------------------------------------------------------------ soundness

    @contextmanager
    def _guard(self, what: str, quiet: bool = False) -> Iterator[None]:
        """Around each operation: an exception nothing explains means the books can no longer
        be trusted, so the store breaks, and says so, instead of going on. ``quiet``: for
        what its callers cannot act on (frees, the end of a stream, callbacks), it is not
        raised."""
        try:
            yield
        except (StoreFull, Lost):
            raise
        except Exception as error:
            self._break(f"{what} failed: {type(error).__name__}: {error}")
            if quiet:
                log.debug("%s failed", what, exc_info=True)
                return
            raise StoreBroken(self._refusal()) from error

    def _break(self, reason: str) -> None:
        if self.broken:
            return
        self.broken = reason
        log.error("the object store in %s is broken: %s; it takes no new objects", self.directory, reason)
        if self.on_broken is not None:
            self.on_broken(reason)

    def _refusal(self) -> str:
        return f"the object store is broken ({self.broken}): it takes no new objects; restart the node"

    def audit(self) -> str:
        """Check the arena file, and every ``BOOKS_EVERY`` seconds the books (the agent calls
        this every second or so); returns why the store is broken, or ""."""
        if self.broken:
            return self.broken
        problems = []
        now = time.monotonic()
        if now - self._books_checked >= BOOKS_EVERY:
            self._books_checked = now
            problems += self.check_invariants(files=False)
        try:
            on_disk = os.stat(self.arena.path)
            mapped = os.fstat(self.arena.fd)
            if (on_disk.st_dev, on_disk.st_ino) != (mapped.st_dev, mapped.st_ino):
                problems.append(f"the arena file {self.arena.path} was replaced")
            elif on_disk.st_size != self.capacity:
                problems.append(f"the arena file {self.arena.path} is {on_disk.st_size} bytes, not {self.capacity}")
        except FileNotFoundError:
            problems.append(f"the arena file {self.arena.path} was deleted: new processes cannot map it")
        if problems:
            self._break("; ".join(problems[:3]))
        return self.broken

    # ------------------------------------------------------------------ writing

    async def create(self, object_id: bytes, size: int, owner: str, creator: str) -> int | None:
        """A range for a new object; None if it is stored already (a retried task writing its
        result again: the first copy stands)."""
        with self._guard(f"creating object {object_id.hex()}"):
            async with self._lock:
                if self.broken:
                    raise StoreBroken(self._refusal())
                existing = self.entries.get(object_id)
                if existing is not None:
                    if existing.state != CREATING:
                        return None
                    self.free([object_id])  # a writer that died half way: start over
                rounded = _round(size)
                offset = await self._allocate(rounded)
                entry = Entry(object_id, offset, rounded, owner, creator)
                self.entries[object_id] = entry
                self.created_total += rounded
                self._claim(offset, rounded)
                return offset

    def start_writing(self, object_id: bytes) -> Entry:
        """Hold the range just created for a writer of this process (a pull from another node):
        freed meanwhile, it goes back only when the writer is done (``stop_using``)."""
        entry = self.entries[object_id]
        entry.readers += 1
        return entry

    def seal(self, object_ids: list[bytes]) -> None:
        for object_id in object_ids:
            entry = self.entries.get(object_id)
            if entry is not None and entry.state == CREATING:
                entry.state = SEALED

    def _claim(self, offset: int, size: int) -> None:
        """Count a range just taken, and make sure no reader takes what was there for an object."""
        self.used += size
        if offset < self._touched:
            self.reused_total += min(size, self._touched - offset)
        self._touched = max(self._touched, offset + size)
        view = self.arena.view
        view[offset + shm_object.ID_OFFSET : offset + HEADER] = bytes(shm_object.ID_SIZE)

    async def _allocate(self, size: int) -> int:
        if size > self.capacity:
            raise StoreFull(
                f"an object of {_gib(size)} is larger than the whole object store "
                f"({_gib(self.capacity)}; set object_store_memory)"
            )
        self._retry_pinned()
        offset = self._take(size)
        if offset is not None:
            return offset
        for entry in sorted(
            (e for e in self.entries.values() if e.state == SEALED), key=lambda e: e.created
        ):
            # Looked at again: while an earlier one was spilled, this one may have been freed,
            # or begun to be read.
            if entry.freed or entry.state != SEALED or entry.readers:
                continue
            if self.arena.in_use(entry.offset, entry.size):
                continue
            await self._spill(entry)
            offset = self._take(size)
            if offset is not None:
                return offset
        in_use = sum(e.size for e in self.entries.values() if e.state in IN_MEMORY)
        raise StoreFull(
            f"the object store is full: {_gib(size)} needed, {_gib(self.capacity - self.used)} "
            f"free of {_gib(self.capacity)} (largest free range {_gib(self.free_list.largest())}), "
            f"and the {_gib(in_use)} held are all in use (read by a process, or being written)"
        )

    def _take(self, size: int) -> int | None:
        skip: set[int] = set()
        while True:
            offset = self.free_list.take(size, skip)
            if offset is None:
                return None
            if not self.arena.in_use(offset, size):
                return offset
            # A reader still views part of it (through a stale location): not this one.
            self.free_list.give(offset, size, time.monotonic())
            skip.add(offset)

    async def _spill(self, entry: Entry) -> None:
        """Copy an object to disk and give its range back. The copy finishes (``_spilled``)
        even if the request that started it is cancelled."""
        target = os.path.join(self.spill_dir, f"{entry.object_id.hex()}.{next(self._spills)}")
        try:
            os.makedirs(self.spill_dir, exist_ok=True)
        except OSError as error:
            raise StoreFull(f"the object store is full and cannot spill: {error}") from None
        entry.state = SPILLING
        entry.spill_path = target
        copy = asyncio.get_running_loop().run_in_executor(
            None, arena_io.copy_out, self.arena, entry.offset, entry.size, target
        )
        entry.busy = copy
        copy.add_done_callback(lambda done: self._spilled(entry, done))
        try:
            await asyncio.shield(copy)
        except OSError as error:
            raise StoreFull(
                f"the object store is full, and spilling {entry.describe()} to {target} failed: {error}"
            ) from None

    def _spilled(self, entry: Entry, copy: asyncio.Future[None]) -> None:
        with self._guard(f"spilling {entry.describe()}", quiet=True):
            entry.busy = None
            failed = copy.cancelled() or copy.exception() is not None
            if failed or entry.freed or entry.readers:
                # Kept in memory: the copy failed, or it is garbage (the object was freed
                # meanwhile), or a stream to another node began to read the range meanwhile.
                _unlink(entry.spill_path)
                entry.spill_path = ""
                entry.state = SEALED
                if entry.freed:
                    self._let_go(entry)
                return
            entry.state = SPILLED
            self.used -= entry.size
            self.spilled_bytes += entry.size
            self.spilled_total += entry.size
            self._release_range(entry.offset, entry.size)
            log.info("spilled %s (%s) to %s", entry.describe(), _gib(entry.size), entry.spill_path)

    # ------------------------------------------------------------------ reading

    async def restore(self, object_id: bytes) -> int:
        """Where the object is now, bringing it back from disk if it was spilled (and waiting
        a little for one whose writer has not sealed it yet)."""
        with self._guard(f"restoring object {object_id.hex()}"):
            while True:
                async with self._lock:
                    entry = self.entries.get(object_id)
                    if entry is None:
                        raise Lost(f"object {object_id.hex()} is not in the object store of this node")
                    if entry.state in (CREATING, SEALED):
                        if shm_object.holds(
                            self.arena.view[entry.offset : entry.offset + entry.size], object_id
                        ):
                            return entry.offset  # complete (its seal may be on its way)
                        if entry.state == SEALED:
                            # Not what was sealed there: the copy is gone, and so is its entry
                            # (a rebuilt object may be stored under the same id).
                            self.free([object_id])
                            raise Lost(f"the stored copy on this node was destroyed ({self.directory})")
                    elif entry.state == SPILLED:
                        return await self._restore_spilled(entry)
                if entry.state == CREATING:
                    await self._wait_sealed(object_id, SEAL_WAIT)
                    if self.entries.get(object_id) is entry and entry.state == CREATING:
                        raise Lost(f"object {object_id.hex()} is still being written, after {SEAL_WAIT:g}s")
                else:
                    busy = entry.busy  # a copy that a cancelled request left running
                    assert busy is not None, f"{entry.describe()} is {entry.state} with no copy running"
                    await asyncio.wait([busy])

    async def _wait_sealed(self, object_id: bytes, timeout: float) -> None:
        """Until the object is no longer being written (sealed, or gone), or ``timeout``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        entry = self.entries.get(object_id)
        while entry is not None and entry.state == CREATING and loop.time() < deadline:
            await asyncio.sleep(0.002)
            entry = self.entries.get(object_id)

    async def _restore_spilled(self, entry: Entry) -> int:
        """Under the lock: copy a spilled object back into a range of its own. The copy
        finishes (``_restored``) even if the request that started it is cancelled."""
        if self.broken:
            raise StoreBroken(self._refusal())
        offset = await self._allocate(entry.size)
        if entry.freed:  # while room was made
            self._release_range(offset, entry.size)
            raise Lost(f"{entry.describe()} was freed while it was being restored")
        entry.offset = offset
        entry.state = RESTORING
        self._claim(offset, entry.size)
        copy = asyncio.get_running_loop().run_in_executor(
            None, arena_io.copy_in, self.arena, offset, entry.size, entry.spill_path, HEADER
        )
        entry.busy = copy
        copy.add_done_callback(lambda done: self._restored(entry, done))
        try:
            await asyncio.shield(copy)
        except OSError as error:
            raise Lost(
                f"{entry.describe()} could not be read back from its spill file {entry.spill_path}: {error}"
            ) from None
        if entry.freed:
            raise Lost(f"{entry.describe()} was freed while it was being restored")
        return offset

    def _restored(self, entry: Entry, copy: asyncio.Future[None]) -> None:
        with self._guard(f"restoring {entry.describe()}", quiet=True):
            entry.busy = None
            error = None if copy.cancelled() else copy.exception()
            if copy.cancelled() or error is not None:
                # The range never held the object: back to the free list; the file stays.
                entry.state = SPILLED
                self.used -= entry.size
                self._release_range(entry.offset, entry.size)
                if isinstance(error, FileNotFoundError) and not entry.freed:
                    # Its bytes are gone, and so is the object.
                    del self.entries[entry.object_id]
                    entry.freed = True
                    self.leaving.add(entry)
                if entry.freed:
                    self._let_go(entry)
                return
            self._drop_file(entry)
            entry.state = SEALED
            entry.created = time.monotonic()
            self.restored_total += entry.size
            if entry.freed:
                self._let_go(entry)

    # ------------------------------------------------------------------ freeing

    def free(self, object_ids: list[bytes]) -> dict[str, list[bytes]]:
        """Free objects here; returns the other nodes holding copies, with what to free there."""
        elsewhere: dict[str, list[bytes]] = {}
        for object_id in object_ids:
            entry = self.entries.pop(object_id, None)
            if entry is None:
                continue
            for node in entry.copies:
                elsewhere.setdefault(node, []).append(object_id)
            entry.freed = True
            self.leaving.add(entry)
            with self._guard(f"freeing {entry.describe()}", quiet=True):
                self._let_go(entry)
        return elsewhere

    def _let_go(self, entry: Entry) -> None:
        """A freed object gives its range or spill file back once no reader, writer, spill or
        restore uses it; whichever of them ends last calls this, and it acts once."""
        if entry.readers or entry.state in (SPILLING, RESTORING, GONE):
            return
        if entry.state == SPILLED:
            self._drop_file(entry)
        else:
            self.used -= entry.size
            self._release_range(entry.offset, entry.size)
        entry.state = GONE
        self.leaving.discard(entry)

    def _drop_file(self, entry: Entry) -> None:
        _unlink(entry.spill_path)
        entry.spill_path = ""
        self.spilled_bytes -= entry.size

    async def start_reading_sealed(self, object_id: bytes, timeout: float = SEAL_WAIT) -> Entry:
        """``start_reading`` for another node: waits a little for an object still being written
        (its writer seals it in a message of its own, and a reader on another node that learned
        of it from the owner may ask first), and brings a spilled one back from disk."""
        await self._wait_sealed(object_id, timeout)
        entry = self.entries.get(object_id)
        if entry is not None and entry.state in ON_DISK:
            try:
                await self.restore(object_id)
            except StoreFull as full:
                raise Lost(f"{entry.describe()} is spilled, and there is no room to restore it: {full}") from None
        return self.start_reading(object_id)

    def holds_originals(self) -> bool:
        """Whether some object here is not a copy pulled from another node (losing the node
        would lose it, or cost a rebuild)."""
        return any(not entry.creator.startswith("pull:") for entry in self.entries.values())

    def start_reading(self, object_id: bytes) -> Entry:
        """Hold a complete object's range while this process streams it (a spill under way
        keeps it in memory then)."""
        entry = self.entries.get(object_id)
        if entry is None or entry.state not in (SEALED, SPILLING):
            raise Lost(f"object {object_id.hex()} is not in the object store of this node")
        entry.readers += 1
        return entry

    def stop_using(self, entry: Entry) -> None:
        """The end of ``start_reading`` or ``start_writing``."""
        with self._guard(f"letting go of {entry.describe()}", quiet=True):
            if entry.readers <= 0:
                raise ValueError(f"{entry.describe()} let go of more often than held")
            entry.readers -= 1
            if entry.freed:
                self._let_go(entry)

    def _release_range(self, offset: int, size: int) -> None:
        if self.broken:
            return  # allocation is over: the free list is not to be trusted with more
        if self.arena.in_use(offset, size):
            self.pinned_free.append((offset, size))
        else:
            self.free_list.give(offset, size, time.monotonic())

    def _retry_pinned(self) -> None:
        if not self.pinned_free:
            return
        still = []
        now = time.monotonic()
        for offset, size in self.pinned_free:
            if self.arena.in_use(offset, size):
                still.append((offset, size))
            else:
                self.free_list.give(offset, size, now)
        self.pinned_free = still

    def release_idle_memory(self) -> int:
        """Punch out free memory unused for a while; returns the bytes given back."""
        if self.broken:
            return 0  # what the free list calls free may be an object's
        given = 0
        with self._guard("releasing idle memory", quiet=True):
            self._retry_pinned()
            for start, size in self.free_list.idle(time.monotonic(), IDLE_RELEASE):
                if start >= self._touched:
                    continue
                size = min(size, self._touched - start)
                self.arena.punch(start, size)
                given += size
        return given

    def owner_gone(self, owner: str) -> dict[str, list[bytes]]:
        """Objects owned by a process that died can never be freed by it: free them now."""
        return self.owners_gone({owner})

    def owners_gone(self, owners: Collection[str]) -> dict[str, list[bytes]]:
        """``owner_gone`` for many owners in one pass over the objects (the head announces the
        workers that died across the cluster together)."""
        return self.free([e.object_id for e in self.entries.values() if e.owner in owners])

    def location_of(self, object_id: bytes) -> Entry | None:
        entry = self.entries.get(object_id)
        return entry if entry is not None and entry.state != CREATING else None

    def creator_gone(self, creator: str) -> None:
        """A writer died mid-write: its unsealed objects are garbage."""
        self.free(
            [e.object_id for e in self.entries.values() if e.creator == creator and e.state == CREATING]
        )

    async def settle(self) -> None:
        """Wait for the spills and restores under way (a cancelled request leaves its copy
        running to its end)."""
        while True:
            busy = [e.busy for e in (*self.entries.values(), *self.leaving) if e.busy is not None]
            if not busy:
                return
            await asyncio.wait(busy)

    def close(self) -> None:
        self.arena.close()
        shutil.rmtree(self.directory, ignore_errors=True)
        shutil.rmtree(self.spill_dir, ignore_errors=True)

    def info(self) -> dict[str, int]:
        return {
            "capacity": self.capacity,
            "used": self.used,
            "spilled": self.spilled_bytes,
            "restored": self.restored_total,
            "objects": len(self.entries),
            "created": self.created_total,
            "recycled": self.reused_total,
        }

    # ------------------------------------------------------------------ the books

    def check_invariants(self, files: bool = True) -> list[str]:
        """What is wrong with the store's books, said for people (empty when they add up); see
        ``store_entries.problems``. ``files``: also compare the spill directory with the books."""
        return problems(self, files)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
