"""Two nodes' object stores under a random mix of everything at once, with slowed disk I/O.

Node A's store serves pulls over its real bulk transfer socket and streams objects as
PullObject does; node B's agent code (``ObjectTransfer``) pulls copies from it into B's store.
On both, concurrent tasks put objects (create, write, seal), free them (forwarding the free to
the copies, as the agent does), read them (restoring them from disk if spilled) and pull them,
in small stores that must spill and restore all the time, while every spill and restore copy is
slowed by a random sleep. After every operation both stores' books must add up
(``check_invariants``) and every byte read must be the object's own.

Seeded schedules, many repetitions, bounded by their count (not by the clock); a failure names
its seed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ember.runtime.node import object_transfer
from ember.runtime.node.bulk_transfer import BulkServer
from ember.runtime.node.object_store import Lost, ObjectStore, StoreFull
from ember.runtime.node.object_transfer import ObjectTransfer
from ember.runtime.objects import arena as arena_io
from ember.runtime.objects import shm_object
from ember.runtime.wire import rpc
from ember.runtime.wire.protocol import ember_pb2 as pb

KiB = 1 << 10
SEEDS = range(16)
OPERATIONS = 250  # per seed
CONCURRENCY = 6  # operations in flight at once
SOURCE = "127.0.0.1:1"  # node A's gRPC address: nothing listens there, pulls use the bulk socket
TARGET = "node-b"


def payload(oid: bytes, size: int) -> np.ndarray:
    return np.frombuffer((oid * (size // len(oid) + 1))[:size], dtype=np.uint8)


class World:
    """The two stores and what the test knows about them."""

    def __init__(self, a: ObjectStore, b: ObjectStore, transfer: ObjectTransfer, rng: random.Random):
        self.stores = {"A": a, "B": b}
        self.transfer = transfer
        self.rng = rng
        self.sizes: dict[bytes, int] = {}
        self.held: dict[str, set[bytes]] = {"A": set(), "B": set()}
        self.freed: set[bytes] = set()
        self.counter = 0
        self.done = 0

    def check(self, step: str) -> None:
        for name, store in self.stores.items():
            problems = store.check_invariants()
            assert not problems, f"after {step}, store {name}'s books are wrong:\n" + "\n".join(problems)

    def new_id(self) -> bytes:
        self.counter += 1
        return self.counter.to_bytes(4, "little") + os.urandom(16)

    def pick(self, node: str) -> bytes | None:
        held = sorted(self.held[node])
        return self.rng.choice(held) if held else None

    def verify(self, node: str, oid: bytes, offset: int) -> None:
        """Synchronously, right after the store said where the object is."""
        store = self.stores[node]
        entry = store.entries[oid]
        value = shm_object.load(store.arena.view[offset : offset + entry.size], oid)
        assert np.array_equal(value, payload(oid, self.sizes[oid])), (
            f"object {oid.hex()[:8]} on {node} holds other bytes"
        )

    # ------------------------------------------------------------------ operations

    async def put(self, node: str) -> None:
        store = self.stores[node]
        oid = self.new_id()
        size = self.rng.randrange(100 * KiB, 1200 * KiB)
        self.sizes[oid] = size
        serialized = shm_object.serialize(payload(oid, size))
        try:
            offset = await store.create(oid, serialized.size, f"owner-{node}", "writer:1")
        except StoreFull:
            return
        assert offset is not None
        view = store.arena.view[offset : offset + serialized.size]
        # A worker writes through its own mapping while the agent goes on.
        await asyncio.get_running_loop().run_in_executor(None, serialized.write_into, view, oid)
        store.seal([oid])
        self.held[node].add(oid)

    async def abandoned_put(self, node: str) -> None:
        """A CreateObject whose caller went away mid-request (grpc cancels the handler), maybe
        while the store spilled to make room; the writer's death frees what it created."""
        store = self.stores[node]
        creator = f"writer:gone-{self.counter}"
        create = asyncio.ensure_future(store.create(self.new_id(), self.rng.randrange(100 * KiB, 1200 * KiB), f"owner-{node}", creator))
        await asyncio.sleep(self.rng.random() * 0.003)
        create.cancel()
        try:
            await create
        except (asyncio.CancelledError, StoreFull):
            pass
        store.creator_gone(creator)

    async def free(self, node: str) -> None:
        oid = self.pick(node)
        if oid is None:
            return
        self.held[node].discard(oid)
        self.freed.add(oid)
        elsewhere = self.stores[node].free([oid])
        for address, ids in elsewhere.items():  # forward_frees, as the agent does
            assert address == TARGET
            self.stores["B"].free(ids)
            self.held["B"].difference_update(ids)

    async def read(self, node: str) -> None:
        oid = self.pick(node)
        if oid is None:
            return
        try:
            offset = await self.stores[node].restore(oid)
        except Lost:
            assert oid in self.freed, f"object {oid.hex()[:8]} on {node} was lost, not freed"
            return
        except StoreFull:
            return
        self.verify(node, oid, offset)

    async def pull(self) -> None:
        oid = self.pick("A")
        if oid is None:
            return
        request = pb.FetchRequest(
            object_id=oid, owner_address="owner-A", location=pb.ObjectLocation(node_address=SOURCE)
        )
        reply = await self.transfer.fetch(request)
        if reply.lost_reason:
            assert oid in self.freed or "full" in reply.lost_reason, f"pull of {oid.hex()[:8]}: {reply.lost_reason}"
            return
        if oid in self.freed:
            # Freed while it was pulled. A free that reached B before B's copy existed leaves
            # the copy behind until its owner ends (owner_gone frees it): do that here.
            self.stores["B"].free([oid])
            return
        self.held["B"].add(oid)
        try:
            offset = await self.stores["B"].restore(oid)
        except Lost:
            assert oid in self.freed, f"pulled object {oid.hex()[:8]} was lost on B"
            return
        except StoreFull:
            return
        self.verify("B", oid, offset)

    async def stream(self) -> None:
        """PullObject's stream of an object held by A, read slowly, chunk by chunk."""
        oid = self.pick("A")
        if oid is None:
            return
        received = bytearray()
        size = 0
        try:
            async with contextlib.aclosing(self.transfer_a.serve(pb.PullRequest(object_id=oid))) as chunks:
                async for chunk in chunks:
                    size = size or chunk.size
                    received += chunk.data
                    await asyncio.sleep(self.rng.random() * 0.002)
        except Lost as lost:
            # Freed, or spilled with no room to bring it back (streams and pulls hold it).
            assert oid in self.freed or "no room" in str(lost), f"the stream of {oid.hex()[:8]}: {lost}"
            return
        assert len(received) == size
        value = shm_object.load(memoryview(bytes(received)), oid)
        assert np.array_equal(value, payload(oid, self.sizes[oid])), f"stream of {oid.hex()[:8]} corrupt"

    transfer_a: ObjectTransfer


def slowed(copy: Callable[..., Any], rng: random.Random) -> Callable[..., Any]:
    lock = threading.Lock()

    def slow(*args: Any) -> Any:
        with lock:
            pause = rng.random() * 0.004
        time.sleep(pause)
        return copy(*args)

    return slow


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_random_schedules_keep_the_books_and_the_bytes(seed: int, tmp_path: Path, monkeypatch) -> None:
    rng = random.Random(seed)
    monkeypatch.setattr(arena_io, "copy_out", slowed(arena_io.copy_out, rng))
    monkeypatch.setattr(arena_io, "copy_in", slowed(arena_io.copy_in, rng))
    monkeypatch.setattr(object_transfer, "CHUNK", 64 * KiB)  # many chunks: a stream yields often

    async def scenario() -> None:
        tag = f"{os.getpid()}-{os.urandom(3).hex()}"
        a = ObjectStore(f"/dev/shm/ember-test-a-{tag}", 6 << 20, str(tmp_path / "a"))
        b = ObjectStore(f"/dev/shm/ember-test-b-{tag}", 4 << 20, str(tmp_path / "b"))
        bulk = BulkServer(a, asyncio.get_running_loop(), "127.0.0.1")
        channels = rpc.Channels()
        transfer_b = ObjectTransfer(b, channels, b"B" * 16)
        transfer_b.address = TARGET
        transfer_b._bulk_ports[SOURCE] = bulk.port  # what GetStoreInfo would answer
        world = World(a, b, transfer_b, rng)
        world.transfer_a = ObjectTransfer(a, channels, b"A" * 16)
        kinds: list[tuple[str, Callable[[], Any]]] = [
            ("put A", lambda: world.put("A")),
            ("put A", lambda: world.put("A")),
            ("put B", lambda: world.put("B")),
            ("abandoned put A", lambda: world.abandoned_put("A")),
            ("abandoned put B", lambda: world.abandoned_put("B")),
            ("free A", lambda: world.free("A")),
            ("free B", lambda: world.free("B")),
            ("read A", lambda: world.read("A")),
            ("read B", lambda: world.read("B")),
            ("pull A->B", world.pull),
            ("pull A->B", world.pull),
            ("stream A", world.stream),
        ]

        async def runner() -> None:
            while world.done < OPERATIONS:
                world.done += 1
                name, operation = rng.choice(kinds)
                await operation()
                world.check(f"{name} (operation {world.done}, seed {seed})")

        runners = [asyncio.ensure_future(runner()) for _ in range(CONCURRENCY)]
        try:
            await asyncio.gather(*runners)
            # Everything freed: nothing is left held, spilled or on disk.
            for node in ("A", "B"):
                world.stores[node].free(sorted(world.held[node]))
                await world.stores[node].settle()
            world.check(f"freeing everything (seed {seed})")
            # The schedule did what it is for: the stores spilled and restored.
            assert a.spilled_total + b.spilled_total and a.restored_total + b.restored_total
            for name, store in world.stores.items():
                assert store.used == 0 and store.spilled_bytes == 0, f"store {name}: {store.info()}"
                spill = store.spill_dir
                assert not os.path.isdir(spill) or os.listdir(spill) == [], f"store {name} left spill files"
        finally:
            for task in runners:  # a failed one leaves the others running
                task.cancel()
            await asyncio.gather(*runners, return_exceptions=True)
            await asyncio.gather(a.settle(), b.settle())
            bulk.stop()
            await channels.close()
            a.close()
            b.close()

    asyncio.run(scenario())
