"""A node's shared-memory object store, kept by its node agent.

Objects live in ranges of the node's arena (``arena.py``), a sparse file of the store's capacity
in a ``/dev/shm`` directory of the node's own (two agents on one machine have two stores).
Writers ask for a range (``create``), write into it through their own mapping and seal it;
readers view it in place. The store keeps the books: which range holds what, who owns it, what
is spilled.

Ranges are handed out first-fit from the lowest offset, so the memory written for earlier
objects is what new objects reuse: already faulted in, it is written at memory bandwidth.
Free memory that stays unused for ``IDLE_RELEASE`` seconds is given back to the system (a hole
punched in the file), so an idle node returns to its idle footprint.

When there is no room, the objects created longest ago that no process pins are spilled to a
directory on disk and restored when read again. When nothing can be spilled, ``create`` fails
with the sizes, so ``put`` raises ``ObjectStoreFullError`` instead of the node running out of
memory.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import os
import shutil
import time
from dataclasses import dataclass, field

from ember.runtime import arena as arena_io
from ember.runtime import shm_object
from ember.runtime.arena import PAGE, Arena

log = logging.getLogger("ember.runtime.object_store")

IDLE_RELEASE = 10.0  # seconds free memory is kept for reuse before it goes back to the system

SEAL_WAIT = 10.0  # seconds a reader waits for an object being written to be sealed
CREATING = "creating"
SEALED = "sealed"
SPILLED = "spilled"


class StoreFull(Exception):
    pass


class Lost(Exception):
    pass


@dataclass
class Entry:
    object_id: bytes
    offset: int
    size: int
    owner: str
    creator: str
    state: str = CREATING
    created: float = field(default_factory=time.monotonic)
    spill_path: str = ""
    # Node agents that pulled a copy (they free it when this, the first copy, is freed).
    copies: set[str] = field(default_factory=set)
    readers: int = 0  # streams sending it to other nodes right now
    freed: bool = False  # freed while being streamed: released when the stream ends


def _gib(size: float) -> str:
    return f"{size / 2**30:.2f} GiB" if size >= 2**28 else f"{size / 2**20:.1f} MiB"


def _round(size: int) -> int:
    return max(PAGE, (size + PAGE - 1) // PAGE * PAGE)


class FreeList:
    """Free ranges of the arena, kept sorted and coalesced; each remembers when it was freed."""

    def __init__(self, size: int) -> None:
        self.starts: list[int] = [0]
        self.blocks: dict[int, tuple[int, float]] = {0: (size, 0.0)}  # start -> (size, freed)

    def take(self, size: int, skip: set[int]) -> int | None:
        """The lowest free offset with ``size`` bytes (ranges starting in ``skip`` excluded)."""
        for start in self.starts:
            block, freed = self.blocks[start]
            if block >= size and start not in skip:
                self._remove(start)
                if block > size:
                    self._insert(start + size, block - size, freed)
                return start
        return None

    def give(self, start: int, size: int, now: float) -> None:
        index = bisect.bisect_left(self.starts, start)
        if index > 0:
            before = self.starts[index - 1]
            before_size, _ = self.blocks[before]
            if before + before_size == start:
                self._remove(before)
                start, size = before, before_size + size
        after = start + size
        if after in self.blocks:
            after_size, _ = self.blocks[after]
            self._remove(after)
            size += after_size
        self._insert(start, size, now)

    def largest(self) -> int:
        return max((size for size, _ in self.blocks.values()), default=0)

    def idle(self, now: float, seconds: float) -> list[tuple[int, int]]:
        found = []
        for start in self.starts:
            size, freed = self.blocks[start]
            if freed and now - freed > seconds:
                found.append((start, size))
                self.blocks[start] = (size, 0.0)  # released: not again until reused
        return found

    def _insert(self, start: int, size: int, freed: float) -> None:
        bisect.insort(self.starts, start)
        self.blocks[start] = (size, freed)

    def _remove(self, start: int) -> None:
        del self.starts[bisect.bisect_left(self.starts, start)]
        del self.blocks[start]


class ObjectStore:
    def __init__(self, directory: str, capacity: int, spill_dir: str) -> None:
        self.directory = directory
        self.capacity = capacity // PAGE * PAGE
        self.spill_dir = spill_dir
        os.makedirs(directory, exist_ok=True)
        self.arena = Arena(os.path.join(directory, "arena"), self.capacity, create=True)
        self.free_list = FreeList(self.capacity)
        self.entries: dict[bytes, Entry] = {}
        # Freed ranges some reader still pins: free for real once it lets go.
        self.pinned_free: list[tuple[int, int]] = []
        self.used = 0
        self.spilled_bytes = 0
        self.spilled_total = 0
        self.restored_total = 0
        self.created_total = 0
        self.reused_total = 0
        self._lock = asyncio.Lock()
        self._touched = 0  # high-water mark of the arena: below it, pages may be in memory

    # ------------------------------------------------------------------ writing

    async def create(self, object_id: bytes, size: int, owner: str, creator: str) -> int | None:
        """A range for a new object; None if it is stored already (a retried task writing its
        result again: the first copy stands)."""
        async with self._lock:
            existing = self.entries.get(object_id)
            if existing is not None:
                if existing.state != CREATING:
                    return None
                self.free([object_id])  # a writer that died half way: start over
            rounded = _round(size)
            offset = await self._allocate(rounded)
            entry = Entry(object_id, offset, rounded, owner, creator)
            self.entries[object_id] = entry
            self.used += rounded
            self.created_total += rounded
            if offset < self._touched:
                self.reused_total += min(rounded, self._touched - offset)
            self._touched = max(self._touched, offset + rounded)
            # No reader may take what was there for a complete object any more.
            view = self.arena.view
            view[offset + shm_object.ID_OFFSET : offset + shm_object.ID_OFFSET + shm_object.ID_SIZE] = (
                bytes(shm_object.ID_SIZE)
            )
            return offset

    def seal(self, object_ids: list[bytes]) -> None:
        for object_id in object_ids:
            entry = self.entries.get(object_id)
            if entry is not None and entry.state == CREATING:
                entry.state = SEALED

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
            if entry.readers or self.arena.in_use(entry.offset, entry.size):
                continue
            await self._spill(entry)
            offset = self._take(size)
            if offset is not None:
                return offset
        in_use = sum(e.size for e in self.entries.values() if e.state != SPILLED)
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
        os.makedirs(self.spill_dir, exist_ok=True)
        target = os.path.join(self.spill_dir, entry.object_id.hex())
        await asyncio.get_running_loop().run_in_executor(
            None, arena_io.copy_out, self.arena, entry.offset, entry.size, target
        )
        entry.state = SPILLED
        entry.spill_path = target
        self._release_range(entry.offset, entry.size)
        self.used -= entry.size
        self.spilled_bytes += entry.size
        self.spilled_total += entry.size
        log.info("spilled object %s (%s) to %s", entry.object_id.hex()[:12], _gib(entry.size), target)

    # ------------------------------------------------------------------ reading

    async def restore(self, object_id: bytes) -> int:
        """Where the object is now, bringing it back from disk if it was spilled."""
        async with self._lock:
            entry = self.entries.get(object_id)
            if entry is None:
                raise Lost(f"object {object_id.hex()} is not in the object store of this node")
            if entry.state != SPILLED:
                if not shm_object.holds(
                    self.arena.view[entry.offset : entry.offset + entry.size], object_id
                ):
                    # Not what was sealed there: the copy is gone, and so is its entry (a
                    # rebuilt object may be stored under the same id).
                    self.free([object_id])
                    raise Lost(f"the stored copy on this node was destroyed ({self.directory})")
                return entry.offset
            offset = await self._allocate(entry.size)
            await asyncio.get_running_loop().run_in_executor(
                None, arena_io.copy_in, self.arena, offset, entry.size, entry.spill_path
            )
            os.unlink(entry.spill_path)
            entry.offset = offset
            entry.state = SEALED
            entry.created = time.monotonic()
            self.used += entry.size
            self.spilled_bytes -= entry.size
            self.restored_total += entry.size
            self._touched = max(self._touched, offset + entry.size)
            return offset

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
            if entry.state == SPILLED:
                self.spilled_bytes -= entry.size
                _unlink(entry.spill_path)
                continue
            self.used -= entry.size
            if entry.readers:
                entry.freed = True  # the stream still reads it: released when it ends
                continue
            self._release_range(entry.offset, entry.size)
        return elsewhere

    async def start_reading_sealed(self, object_id: bytes, timeout: float = SEAL_WAIT) -> Entry:
        """``start_reading``, waiting a little for an object still being written: its writer
        seals it in a message of its own, and a reader on another node that learned of it from
        the owner may ask first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        entry = self.entries.get(object_id)
        while entry is not None and entry.state == CREATING and loop.time() < deadline:
            await asyncio.sleep(0.002)
            entry = self.entries.get(object_id)
        return self.start_reading(object_id)

    def holds_originals(self) -> bool:
        """Whether some object here is not a copy pulled from another node (losing the node
        would lose it, or cost a rebuild)."""
        return any(not entry.creator.startswith("pull:") for entry in self.entries.values())

    def start_reading(self, object_id: bytes) -> Entry:
        entry = self.entries.get(object_id)
        if entry is None or entry.state != SEALED:
            raise Lost(f"object {object_id.hex()} is not in the object store of this node")
        entry.readers += 1
        return entry

    def stop_reading(self, entry: Entry) -> None:
        entry.readers -= 1
        if entry.freed and not entry.readers:
            self._release_range(entry.offset, entry.size)

    def _release_range(self, offset: int, size: int) -> None:
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
        self._retry_pinned()
        given = 0
        for start, size in self.free_list.idle(time.monotonic(), IDLE_RELEASE):
            if start >= self._touched:
                continue
            size = min(size, self._touched - start)
            self.arena.punch(start, size)
            given += size
        return given

    def owner_gone(self, owner: str) -> dict[str, list[bytes]]:
        """Objects owned by a process that died can never be freed by it: free them now."""
        return self.free([e.object_id for e in self.entries.values() if e.owner == owner])

    def location_of(self, object_id: bytes) -> Entry | None:
        entry = self.entries.get(object_id)
        return entry if entry is not None and entry.state != CREATING else None

    def creator_gone(self, creator: str) -> None:
        """A writer died mid-write: its unsealed objects are garbage."""
        self.free(
            [e.object_id for e in self.entries.values() if e.creator == creator and e.state == CREATING]
        )

    def close(self) -> None:
        self.arena.close()
        shutil.rmtree(self.directory, ignore_errors=True)
        shutil.rmtree(self.spill_dir, ignore_errors=True)

    def check_invariants(self) -> list[str]:
        """What is wrong with the store's books, said for people (empty when they add up).

        The free list's starts and blocks agree; free ranges, ranges freed but pinned and the
        ranges of objects in memory tile the arena exactly, without overlap; ``used`` is what
        objects hold; every spilled object has its spill file and every spill file an object.
        """
        problems = []
        free = self.free_list
        if free.starts != sorted(free.blocks):
            problems.append(
                f"the free list's starts {free.starts} do not match its blocks {sorted(free.blocks)}"
            )
        ranges = [(start, size, "a free range") for start, (size, _) in free.blocks.items()]
        ranges += [(start, size, "a freed range still pinned") for start, size in self.pinned_free]
        held = 0
        for entry in self.entries.values():
            if entry.state != SPILLED:
                ranges.append((entry.offset, entry.size, f"object {entry.object_id.hex()[:12]}"))
                held += entry.size
        ranges.sort()
        end, last = 0, "the start of the arena"
        for start, size, what in ranges:
            if start < end:
                problems.append(f"{what} at [{start}, {start + size}) overlaps {last} ending at {end}")
            end, last = max(end, start + size), what
        if end > self.capacity:
            problems.append(f"{last} ends at {end}, past the arena's {self.capacity} bytes")
        total = sum(size for _, size, _ in ranges)
        if total != self.capacity:
            problems.append(
                f"objects, free and pinned ranges add up to {total} bytes, not the capacity {self.capacity}"
            )
        if self.used != held:
            problems.append(f"used says {self.used} bytes but objects in memory hold {held}")
        spilled = [e for e in self.entries.values() if e.state == SPILLED]
        if self.spilled_bytes != sum(e.size for e in spilled):
            problems.append(
                f"spilled says {self.spilled_bytes} bytes but spilled objects hold "
                f"{sum(e.size for e in spilled)}"
            )
        on_disk = set(os.listdir(self.spill_dir)) if os.path.isdir(self.spill_dir) else set()
        for entry in spilled:
            if os.path.basename(entry.spill_path) not in on_disk:
                problems.append(f"spilled object {entry.object_id.hex()[:12]} has no spill file")
        known = {e.object_id.hex() for e in self.entries.values()}
        for name in sorted(on_disk - known):
            problems.append(f"spill file {name} belongs to no object")
        return problems

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


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
