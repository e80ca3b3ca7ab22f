"""A reader on another node may ask for an object before its writer's seal arrives."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from ember.runtime.node.object_store import Lost, ObjectStore


def _store(tmp_path: Path) -> ObjectStore:
    return ObjectStore(f"/dev/shm/ember-test-{os.getpid()}-{os.urandom(3).hex()}", 1 << 20, str(tmp_path / "spill"))


def test_a_reader_waits_for_the_seal(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = _store(tmp_path)
        try:
            object_id = b"\x01" * 20
            await store.create(object_id, 1000, "owner:1", "writer:1")
            with pytest.raises(Lost):
                store.start_reading(object_id)  # not sealed: the plain call refuses
            asyncio.get_running_loop().call_later(0.05, store.seal, [object_id])
            entry = await store.start_reading_sealed(object_id, timeout=5)
            assert entry.size >= 1000 and entry.readers == 1  # sizes round up to pages
            store.stop_using(entry)
        finally:
            store.close()

    asyncio.run(scenario())


def test_a_seal_that_never_comes_is_still_lost(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = _store(tmp_path)
        try:
            await store.create(b"\x02" * 20, 10, "owner:1", "writer:1")
            with pytest.raises(Lost, match="not in the object store"):
                await store.start_reading_sealed(b"\x02" * 20, timeout=0.05)
            with pytest.raises(Lost):
                await store.start_reading_sealed(b"\x03" * 20, timeout=0.05)  # never created
        finally:
            store.close()

    asyncio.run(scenario())
