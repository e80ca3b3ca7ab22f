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

from ember.runtime import arena as arena_io
from ember.runtime import shm_object
from ember.runtime.object_store import Lost, ObjectStore, StoreFull

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
        store.stop_reading(streamed)
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


def test_a_restore_of_an_object_still_being_written_leaves_it_be(make_store) -> None:
    async def scenario() -> None:
        store = make_store(4 * MiB)
        oid = object_id(1)
        offset = await store.create(oid, MiB, "owner:1", "writer:1")
        assert offset is not None
        with pytest.raises(Lost, match="being written"):
            await store.restore(oid)
        assert oid in store.entries  # its writer is still at it
        assert_sound(store)

    run(scenario)
