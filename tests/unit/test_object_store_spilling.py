"""Spilling and restoring against everything else the node agent does meanwhile.

A spill or a restore copies on an executor thread while the agent's event loop goes on serving
frees, reads and pulls. Each test here slows one copy down (it waits on an event the test
sets), does the other thing in the middle of it, and checks the store's books
(``check_invariants``) after every step, and the bytes of every object still held.
"""

from __future__ import annotations

import asyncio
import errno
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ember.runtime.node.object_store import Lost, ObjectStore, StoreBroken, StoreFull
from ember.runtime.objects import arena as arena_io
from ember.runtime.objects import shm_object

MiB = 1 << 20


def object_id(n: int) -> bytes:
    return bytes([n]) * 20


def payload(oid: bytes, size: int) -> np.ndarray:
    """The array stored under ``oid``: its bytes say which object they belong to."""
    return np.frombuffer((oid * (size // len(oid) + 1))[:size], dtype=np.uint8)


def assert_sound(store: ObjectStore) -> None:
    problems = store.check_invariants()
    assert not problems, "the store's books are wrong:\n" + "\n".join(problems)


async def put(store: ObjectStore, oid: bytes, size: int) -> int:
    """Create, write and seal an object of ``size`` array bytes, as a worker does."""
    serialized = shm_object.serialize(payload(oid, size))
    offset = await store.create(oid, serialized.size, "owner:1", "writer:1")
    assert offset is not None
    serialized.write_into(store.arena.view[offset : offset + serialized.size], oid)
    store.seal([oid])
    return offset


def read(store: ObjectStore, oid: bytes, offset: int, size: int) -> None:
    """The object at ``offset`` is whole and holds its own bytes."""
    entry = store.entries[oid]
    value = shm_object.load(store.arena.view[offset : offset + entry.size], oid)
    assert np.array_equal(value, payload(oid, size)), f"object {oid.hex()[:4]} holds other bytes"


class Gate:
    """Wraps a copy function: the copy waits, once ``entered`` is set, until ``open()``."""

    def __init__(self, copy: Callable[..., Any]) -> None:
        self.copy = copy
        self.entered = threading.Event()
        self._open = threading.Event()
        self.calls = 0

    def __call__(self, *args: Any) -> Any:
        self.calls += 1
        self.entered.set()
        if not self._open.wait(30):
            raise TimeoutError("the test never let the copy go on")
        return self.copy(*args)

    async def wait_entered(self) -> None:
        if not await asyncio.get_running_loop().run_in_executor(None, self.entered.wait, 30):
            raise TimeoutError("the copy never started")

    def open(self) -> None:
        self._open.set()


def run(scenario: Callable[[], Any], *gates: Gate) -> None:
    """Run ``scenario`` on a fresh event loop; a failing one lets the copies it held go on."""

    async def main() -> None:
        try:
            await scenario()
        finally:
            for gate in gates:
                gate.open()

    asyncio.run(main())


@pytest.fixture
def make_store(tmp_path: Path) -> Iterator[Callable[[int], ObjectStore]]:
    stores: list[ObjectStore] = []

    def make(capacity: int) -> ObjectStore:
        store = ObjectStore(
            f"/dev/shm/ember-test-{os.getpid()}-{os.urandom(3).hex()}", capacity, str(tmp_path / "spill")
        )
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()


def spill_files(store: ObjectStore) -> list[str]:
    return sorted(os.listdir(store.spill_dir)) if os.path.isdir(store.spill_dir) else []


SIZE = 20 * MiB


def test_an_object_freed_while_it_is_spilled_is_released_once(make_store, monkeypatch) -> None:
    """The issue's reproduction: three 20 MiB objects in a 64 MiB store; a fourth create spills
    the oldest, and the owner frees that one while its bytes are being copied out."""
    gate = Gate(arena_io.copy_out)
    monkeypatch.setattr(arena_io, "copy_out", gate)

    async def scenario() -> None:
        store = make_store(64 * MiB)
        ids = [object_id(n) for n in range(1, 6)]
        offsets = {}
        for oid in ids[:3]:
            offsets[oid] = await put(store, oid, SIZE)
            assert_sound(store)
        fourth = asyncio.ensure_future(put(store, ids[3], SIZE))
        await gate.wait_entered()
        store.free([ids[0]])  # the FreeObjects RPC, in the middle of the spill
        assert_sound(store)
        gate.open()
        offsets[ids[3]] = await fourth
        assert_sound(store)
        assert spill_files(store) == []  # the freed object's spill file does not linger
        # The store goes on working: another create spills, and a restore brings it back.
        offsets[ids[4]] = await put(store, ids[4], SIZE)
        assert_sound(store)
        for oid in ids[1:]:
            offset = await store.restore(oid)
            assert_sound(store)
            read(store, oid, offset, SIZE)
        store.free(ids)
        assert_sound(store)
        assert store.used == 0 and spill_files(store) == []

    run(scenario, gate)


def test_an_object_freed_while_an_older_one_is_spilled_is_not_spilled(make_store, monkeypatch) -> None:
    """A create that must spill two objects: the second is freed while the first is copied
    out. It is gone, not spilled, and its range is given back once."""
    gate = Gate(arena_io.copy_out)
    monkeypatch.setattr(arena_io, "copy_out", gate)

    async def scenario() -> None:
        store = make_store(64 * MiB)
        ids = [object_id(n) for n in range(1, 5)]
        for oid in ids[:3]:
            await put(store, oid, SIZE)
        big = asyncio.ensure_future(put(store, ids[3], 2 * SIZE))  # needs two 20 MiB ranges
        await gate.wait_entered()
        store.free([ids[1]])
        assert_sound(store)
        gate.open()
        offset = await big
        assert_sound(store)
        read(store, ids[3], offset, 2 * SIZE)
        assert ids[1] not in store.entries
        restored = await store.restore(ids[0])
        assert_sound(store)
        read(store, ids[0], restored, SIZE)

    run(scenario, gate)


def test_an_object_freed_while_it_is_restored_is_released_once(make_store, monkeypatch) -> None:
    gate = Gate(arena_io.copy_in)
    monkeypatch.setattr(arena_io, "copy_in", gate)

    async def scenario() -> None:
        store = make_store(64 * MiB)
        ids = [object_id(n) for n in range(1, 5)]
        for oid in ids:
            await put(store, oid, SIZE)  # the fourth spills the first
        assert_sound(store)
        assert store.spilled_bytes > 0
        restore = asyncio.ensure_future(store.restore(ids[0]))  # spills the second to make room
        await gate.wait_entered()
        store.free([ids[0]])
        assert_sound(store)
        gate.open()
        with pytest.raises(Lost):
            await restore
        assert_sound(store)
        assert ids[0] not in store.entries
        restored = await store.restore(ids[1])
        assert_sound(store)
        read(store, ids[1], restored, SIZE)
        store.free(ids)
        assert_sound(store)
        assert store.used == 0 and store.spilled_bytes == 0 and spill_files(store) == []

    run(scenario, gate)


def test_two_restores_of_one_object_bring_it_back_once(make_store, monkeypatch) -> None:
    gate = Gate(arena_io.copy_in)
    monkeypatch.setattr(arena_io, "copy_in", gate)

    async def scenario() -> None:
        store = make_store(64 * MiB)
        ids = [object_id(n) for n in range(1, 5)]
        for oid in ids:
            await put(store, oid, SIZE)
        first = asyncio.ensure_future(store.restore(ids[0]))
        second = asyncio.ensure_future(store.restore(ids[0]))
        await gate.wait_entered()
        assert_sound(store)
        gate.open()
        offsets = await asyncio.gather(first, second)
        assert offsets[0] == offsets[1] and gate.calls == 1
        assert_sound(store)
        read(store, ids[0], offsets[0], SIZE)

    run(scenario, gate)


def test_a_stream_that_starts_during_a_spill_keeps_its_bytes(make_store, monkeypatch) -> None:
    """A pull by another node begins while the object is copied out: the range it streams
    from must not be handed to a new object until the stream ends."""
    gate = Gate(arena_io.copy_out)
    monkeypatch.setattr(arena_io, "copy_out", gate)

    async def scenario() -> None:
        store = make_store(64 * MiB)
        ids = [object_id(n) for n in range(1, 6)]
        offsets = {}
        for oid in ids[:3]:
            offsets[oid] = await put(store, oid, SIZE)
        fourth = asyncio.ensure_future(put(store, ids[3], SIZE))
        await gate.wait_entered()
        streamed = store.start_reading(ids[0])  # what PullObject and the bulk socket do
        assert_sound(store)
        gate.open()
        await fourth
        assert_sound(store)
        await put(store, ids[4], SIZE)  # takes whatever range is free now
        assert_sound(store)
        view = store.arena.view[streamed.offset : streamed.offset + streamed.size]
        assert np.array_equal(shm_object.load(view, ids[0]), payload(ids[0], SIZE))
        store.stop_using(streamed)
        assert_sound(store)

    run(scenario, gate)


def test_a_failed_spill_says_why_and_keeps_the_object(make_store, monkeypatch) -> None:
    def no_room(arena: Any, offset: int, size: int, path: str) -> None:
        with open(path, "wb") as f:
            f.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device", path)

    monkeypatch.setattr(arena_io, "copy_out", no_room)

    async def scenario() -> None:
        store = make_store(64 * MiB)
        ids = [object_id(n) for n in range(1, 5)]
        offsets = {oid: await put(store, oid, SIZE) for oid in ids[:3]}
        with pytest.raises(StoreFull, match="No space left on device"):
            await put(store, ids[3], SIZE)
        assert_sound(store)
        assert spill_files(store) == []
        for oid in ids[:3]:
            assert await store.restore(oid) == offsets[oid]
            read(store, oid, offsets[oid], SIZE)

    run(scenario)


def test_a_restore_of_an_object_still_being_written_waits_for_it(make_store, monkeypatch) -> None:
    """A reader may ask before the writer's seal arrives (it travels in a message of its own):
    a complete object is where it is, an incomplete one is waited for, never taken away."""
    monkeypatch.setattr("ember.runtime.node.object_store.SEAL_WAIT", 0.2)

    async def scenario() -> None:
        store = make_store(4 * MiB)
        oid = object_id(1)
        serialized = shm_object.serialize(payload(oid, MiB))
        offset = await store.create(oid, serialized.size, "owner:1", "writer:1")
        assert offset is not None
        with pytest.raises(Lost, match="still being written, after 0.2s"):
            await store.restore(oid)
        assert oid in store.entries  # its writer is still at it
        assert_sound(store)
        waiting = asyncio.ensure_future(store.restore(oid))
        await asyncio.sleep(0.01)
        serialized.write_into(store.arena.view[offset : offset + serialized.size], oid)
        store.seal([oid])
        assert await waiting == offset
        read(store, oid, offset, MiB)
        other = object_id(2)
        serialized = shm_object.serialize(payload(other, MiB))
        written = await store.create(other, serialized.size, "owner:1", "writer:1")
        assert written is not None
        serialized.write_into(store.arena.view[written : written + serialized.size], other)
        assert await store.restore(other) == written  # written, its seal not here yet
        assert_sound(store)

    run(scenario)


def test_a_create_cancelled_during_its_spill_leaves_the_spill_to_finish(make_store, monkeypatch) -> None:
    """grpc cancels a CreateObject whose caller went away: the copy under way still ends in a
    spilled object, and a restore meanwhile waits for it."""
    gate = Gate(arena_io.copy_out)
    monkeypatch.setattr(arena_io, "copy_out", gate)

    async def scenario() -> None:
        store = make_store(64 * MiB)
        ids = [object_id(n) for n in range(1, 5)]
        for oid in ids[:3]:
            await put(store, oid, SIZE)
        fourth = asyncio.ensure_future(put(store, ids[3], SIZE))
        await gate.wait_entered()
        fourth.cancel()
        with pytest.raises(asyncio.CancelledError):
            await fourth
        assert_sound(store)
        restore = asyncio.ensure_future(store.restore(ids[0]))  # waits for the spill's end
        await asyncio.sleep(0.01)
        assert not restore.done()
        gate.open()
        offset = await restore
        assert_sound(store)
        read(store, ids[0], offset, SIZE)
        assert store.spilled_total > 0 and store.restored_total > 0

    run(scenario, gate)


def test_another_node_can_read_a_spilled_object(make_store) -> None:
    async def scenario() -> None:
        store = make_store(64 * MiB)
        ids = [object_id(n) for n in range(1, 5)]
        for oid in ids:
            await put(store, oid, SIZE)  # the fourth spills the first
        assert store.entries[ids[0]].state == "spilled"
        entry = await store.start_reading_sealed(ids[0])  # PullObject, the bulk socket
        assert_sound(store)
        read(store, ids[0], entry.offset, SIZE)
        store.stop_using(entry)
        assert_sound(store)

    run(scenario)


def test_an_object_freed_while_it_is_pulled_in_goes_when_the_pull_ends(make_store) -> None:
    """A node agent pulling a copy writes into its range itself: an owner that frees the
    object meanwhile does not hand that range to another object under the writer."""

    async def scenario() -> None:
        store = make_store(4 * MiB)
        oid = object_id(1)
        offset = await store.create(oid, 2 * MiB, "owner:1", "pull:10.0.0.2:5")
        assert offset is not None
        writing = store.start_writing(oid)
        store.free([oid])
        assert_sound(store)
        other = await store.create(object_id(2), 2 * MiB, "owner:1", "writer:1")
        assert other is not None and not (offset <= other < offset + 2 * MiB)
        assert writing.freed
        store.stop_using(writing)
        assert_sound(store)
        assert await store.create(object_id(3), 2 * MiB, "owner:1", "writer:1") == offset

    run(scenario)


def test_a_spill_file_cut_short_or_deleted_loses_that_object_only(make_store) -> None:
    async def scenario() -> None:
        store = make_store(64 * MiB)
        ids = [object_id(n) for n in range(1, 6)]
        for oid in ids:
            await put(store, oid, SIZE)  # the first two are spilled
        short, deleted = store.entries[ids[0]], store.entries[ids[1]]
        os.truncate(short.spill_path, 4096)
        with pytest.raises(Lost, match="holds 4096 bytes"):
            await store.restore(ids[0])
        assert_sound(store)
        os.unlink(deleted.spill_path)
        with pytest.raises(Lost, match="No such file"):
            await store.restore(ids[1])
        assert_sound(store)
        assert ids[1] not in store.entries  # its bytes are gone for good
        with pytest.raises(Lost, match="not in the object store"):
            await store.restore(ids[1])
        for oid in ids[2:]:
            read(store, oid, await store.restore(oid), SIZE)
        assert_sound(store)

    run(scenario)


def test_a_range_released_twice_is_refused() -> None:
    from ember.runtime.node.free_list import FreeList, FreeListError

    free = FreeList(1 << 20)
    start = free.take(8192, set())
    assert start == 0
    free.give(0, 8192, 1.0)
    with pytest.raises(FreeListError, match=r"\[0, 8192\) released twice"):
        free.give(0, 8192, 2.0)
    taken = free.take(4096, set())
    with pytest.raises(FreeListError, match="released twice"):
        free.give(4096, 8192, 3.0)  # overlaps the free range after it
    assert free.starts == sorted(free.blocks) == [4096] and taken == 0


def test_a_store_that_breaks_says_why_and_refuses_new_objects(make_store) -> None:
    async def scenario() -> None:
        store = make_store(64 * MiB)
        said: list[str] = []
        store.on_broken = said.append
        ids = [object_id(n) for n in range(1, 5)]
        offsets = {oid: await put(store, oid, SIZE) for oid in ids[:3]}

        def lock_failed(offset: int, size: int) -> bool:
            raise OSError(errno.ENOLCK, "No locks available")

        store.arena.in_use = lock_failed  # type: ignore[method-assign]
        with pytest.raises(StoreBroken, match="No locks available"):
            await put(store, ids[3], SIZE)  # needs a spill, which asks whether a range is pinned
        assert store.broken.startswith(f"creating object {ids[3].hex()} failed: OSError")
        assert said == [store.broken]
        with pytest.raises(StoreBroken, match="it takes no new objects; restart the node"):
            await store.create(object_id(9), 4096, "owner:1", "writer:1")
        # What it holds can still be read (and copied away by a drain), and freed.
        for oid in ids[:3]:
            assert await store.restore(oid) == offsets[oid]
            read(store, oid, offsets[oid], SIZE)
            entry = store.start_reading(oid)
            store.stop_using(entry)
        store.free(ids[:1])
        assert len(said) == 1

    run(scenario)


def test_an_arena_file_deleted_under_the_store_breaks_it(make_store) -> None:
    async def scenario() -> None:
        store = make_store(4 * MiB)
        assert store.audit() == ""
        os.unlink(store.arena.path)
        assert "was deleted: new processes cannot map it" in store.audit()
        with pytest.raises(StoreBroken, match="was deleted"):
            await store.create(object_id(1), 4096, "owner:1", "writer:1")

    run(scenario)
