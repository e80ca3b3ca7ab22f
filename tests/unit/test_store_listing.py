"""What a node's store says it holds for ``ember memory``: each sealed object with its owner,
whether it is the first copy or one pulled from another node, and whether it is spilled; an
object still being written is not listed yet."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from ember.runtime.node.object_store import ObjectStore
from ember.runtime.node.store_listing import store_view
from tests.unit.test_object_store_spilling import MiB, assert_sound, object_id, put


def test_first_copies_pulled_copies_spilled_and_unsealed(tmp_path: Path) -> None:
    store = ObjectStore(f"/dev/shm/ember-test-{os.getpid()}-{os.urandom(3).hex()}", 8 * MiB, str(tmp_path / "spill"))

    async def scenario() -> None:
        first, second, third, pulled, unsealed = (object_id(n) for n in range(1, 6))
        await put(store, first, 3 * MiB)
        await put(store, second, 3 * MiB)
        await put(store, third, 3 * MiB)  # no room: the oldest, ``first``, is spilled
        await store.settle()
        offset = await store.create(pulled, 4096, "owner:2", "pull:127.0.0.1:7")
        assert offset is not None
        store.seal([pulled])
        assert await store.create(unsealed, 4096, "owner:1", "writer:1") is not None
        assert_sound(store)

        view = store_view(store, b"n" * 16, "127.0.0.1:5")
        listed = {o.object_id: o for o in view.objects}
        assert set(listed) == {first, second, third, pulled}
        assert listed[first].spilled and not listed[second].spilled and not listed[third].spilled
        assert [listed[oid].primary for oid in (first, second, third, pulled)] == [True, True, True, False]
        assert listed[pulled].owner_address == "owner:2" and listed[second].owner_address == "owner:1"
        assert (view.node_id, view.node_address, view.capacity) == (b"n" * 16, "127.0.0.1:5", 8 * MiB)
        assert view.spilled == listed[first].size and view.used == store.used and view.omitted == 0

    try:
        asyncio.run(scenario())
    finally:
        store.close()
