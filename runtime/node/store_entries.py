"""The object store's records of its objects, and the check that its books add up.

Each object in a node's store (``object_store.py``) has an ``Entry``: where its bytes are, who
owns it, and its state. A spill or a restore copies on an executor thread while the agent's
event loop goes on, so the states name what each copy is doing, and which of the object's
range and spill file exist::

    CREATING --seal--> SEALED --spill--> SPILLING --copied--> SPILLED --restore--> RESTORING
                         ^                  |  (freed, read meanwhile,             |
                         |                  |   or the copy failed)                |
                         +------------------+---------------------------------<----+

A freed object leaves the store's ``entries`` at once and waits among its ``leaving`` until
no reader, writer, spill or restore uses it any more; then it is ``GONE``.

``problems`` is the store's self-check, run by the tests after every step and by the agent
every ten seconds (``ObjectStore.audit``).
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from typing import Protocol

from ember.runtime.node.free_list import FreeList

CREATING = "creating"  # its writer fills its range
SEALED = "sealed"  # complete, in memory
SPILLING = "spilling"  # complete, in memory, and being copied to its spill file
SPILLED = "spilled"  # in its spill file only
RESTORING = "restoring"  # in its spill file, and being copied into a range of its own
GONE = "gone"  # freed, and its range and spill file given back
IN_MEMORY = (CREATING, SEALED, SPILLING, RESTORING)  # the states that hold a range
ON_DISK = (SPILLED, RESTORING)  # the states that hold a complete spill file
FREE = "a free range"


@dataclass(eq=False)
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
    # Users of its range in this process: streams sending it to other nodes, a pull writing it.
    readers: int = 0
    freed: bool = False  # freed: out of the books; what it holds goes once nothing uses it
    busy: asyncio.Future[None] | None = None  # the spill or restore copying it now

    def describe(self) -> str:
        return f"object {self.object_id.hex()}"


class Books(Protocol):
    """What the self-check reads of a store (``ObjectStore``): its records and its counts."""

    capacity: int
    spill_dir: str
    free_list: FreeList
    entries: dict[bytes, Entry]
    leaving: set[Entry]
    pinned_free: list[tuple[int, int]]
    used: int
    spilled_bytes: int


def problems(store: Books, files: bool = True) -> list[str]:
    """What is wrong with the store's books, said for people (empty when they add up).

    The free list's starts and blocks agree; free ranges, ranges freed but pinned and the
    ranges objects hold tile the arena exactly, once each; ``used`` and ``spilled_bytes`` are
    what objects hold; listed objects are not freed and freed ones not listed; with ``files``,
    every object with a complete spill file has its own, and every file in the spill directory
    belongs to an object.
    """
    found = []
    free = store.free_list
    if free.starts != sorted(free.blocks):
        found.append(f"the free list's starts {free.starts} do not match its blocks {sorted(free.blocks)}")
    everything = [*store.entries.values(), *store.leaving]
    for entry in store.entries.values():
        if entry.freed or entry.state == GONE:
            found.append(f"{entry.describe()} is listed but was freed")
    for entry in store.leaving:
        if not entry.freed or entry.state == GONE:
            found.append(f"{entry.describe()} is {entry.state} among the freed")
    ranges: list[tuple[int, int, str | Entry]] = [
        (start, size, FREE) for start, (size, _) in free.blocks.items()
    ]
    ranges += [(start, size, "a freed range still pinned") for start, size in store.pinned_free]
    for entry in everything:
        if entry.readers < 0:
            found.append(f"{entry.describe()} has {entry.readers} readers")
        if entry.state in IN_MEMORY:
            ranges.append((entry.offset, entry.size, entry))
    ranges.sort(key=lambda r: r[0])
    found += _tiling(ranges, store.capacity)
    held = sum(e.size for e in everything if e.state in IN_MEMORY)
    if store.used != held:
        found.append(f"used says {store.used} bytes but objects hold {held} in memory")
    spilled = sum(e.size for e in everything if e.state in ON_DISK)
    if store.spilled_bytes != spilled:
        found.append(f"spilled says {store.spilled_bytes} bytes but objects hold {spilled} on disk")
    if files:
        found += _files(store.spill_dir, everything)
    return found


def _tiling(ranges: list[tuple[int, int, str | Entry]], capacity: int) -> list[str]:
    """Problems with ranges (sorted by start) that should cover [0, capacity) once each."""
    found = []
    end = 0
    previous: str | Entry = "the start of the arena"
    for start, size, what in ranges:
        if start < end:
            found.append(f"{_name(what)} at [{start}, {start + size}) overlaps {_name(previous)} ending at {end}")
        elif start == end and what is previous is FREE:
            found.append(f"free ranges meet at {start} without being one")
        if start + size > end:
            end, previous = start + size, what
    if end > capacity:
        found.append(f"{_name(previous)} ends at {end}, past the arena's {capacity} bytes")
    total = sum(size for _, size, _ in ranges)
    if total != capacity:
        found.append(f"objects, free and pinned ranges add up to {total} bytes, not the capacity {capacity}")
    return found


def _name(what: str | Entry) -> str:
    return what if isinstance(what, str) else f"{what.state} {what.describe()}"


def _files(spill_dir: str, everything: list[Entry]) -> list[str]:
    found = []
    on_disk = set(os.listdir(spill_dir)) if os.path.isdir(spill_dir) else set()
    complete = [os.path.basename(e.spill_path) for e in everything if e.state in ON_DISK]
    if len(set(complete)) != len(complete):
        found.append(f"objects share spill files: {sorted(complete)}")
    for entry in everything:
        if entry.state in ON_DISK and os.path.basename(entry.spill_path) not in on_disk:
            found.append(f"{entry.state} {entry.describe()} has no spill file")
    # A spill under way may have begun its file.
    writing = {os.path.basename(e.spill_path) for e in everything if e.state == SPILLING}
    for name in sorted(on_disk - set(complete) - writing):
        found.append(f"spill file {name} belongs to no object")
    return found
