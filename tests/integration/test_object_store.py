"""The node's shared-memory object store, through the public API on real processes:
zero-copy reads, reuse within a bounded store, spilling, a full store, and lost objects."""

from __future__ import annotations

import mmap
import os
import time

import numpy as np
import pytest

import ember
from ember.exceptions import ObjectLostError
from ember.runtime.core import context
from ember.runtime.wire.protocol import ember_pb2 as pb

MB = 1 << 20


def _store_info() -> pb.StoreInfo:
    core = context.require_core()

    async def ask() -> pb.StoreInfo:
        return await core.channels.node_agent(core.local_agent).GetStoreInfo(pb.Empty())

    return core.io.run(ask())


def _shmem_bytes() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("Shmem:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no Shmem line in /proc/meminfo")


@ember.remote
def total(array):
    return float(array.sum())


@ember.remote
def make(n, value):
    return np.full(n, value, dtype=np.float64)


def test_large_values_are_shared_read_only_views(cluster):
    array = np.arange(4 * MB // 8, dtype=np.float64)
    ref = ember.put(array)
    first, second = ember.get(ref), ember.get(ref)
    assert np.array_equal(first, array)
    assert not first.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        first[0] = 1.0
    # Both gets view the same shared memory: nothing was copied.
    assert first.__array_interface__["data"][0] == second.__array_interface__["data"][0]
    assert first.__array_interface__["data"][0] != array.__array_interface__["data"][0]
    writable = np.array(first)  # how to get a private, writable copy
    writable[0] = 42.0
    assert first[0] == 0.0


def test_small_values_stay_inline(cluster):
    before = _store_info().created
    refs = [ember.put(np.arange(100)) for _ in range(50)]
    assert ember.get(refs[0]).sum() == 4950
    assert _store_info().created == before


def test_tasks_read_and_return_large_arrays(cluster):
    big = np.ones(10 * MB // 8)
    assert ember.get(total.remote(big)) == pytest.approx(10 * MB // 8)
    result = ember.get(make.remote(2 * MB // 8, 3.0))
    assert result.shape == (2 * MB // 8,) and result[0] == 3.0 and not result.flags.writeable


def _destroy(ref: ember.ObjectRef) -> None:
    """Overwrite the stored copy behind the store's back."""
    core = context.require_core()
    location = core.store.get(ref.binary()).location
    arena = core.objects.arena
    with open(arena.path, "r+b") as f:
        with mmap.mmap(f.fileno(), 0) as mapped:
            mapped[location.offset : location.offset + 64] = bytes(64)


def test_lost_result_is_rebuilt_from_lineage(cluster, tmp_path):
    runs = tmp_path / "runs"

    @ember.remote
    def produce(path):
        with open(path, "a") as f:
            f.write("x")
        return np.full(MB // 4, 7.0)

    ref = produce.remote(str(runs))
    assert ember.get(ref)[0] == 7.0
    _destroy(ref)
    assert ember.get(ref)[0] == 7.0
    assert runs.read_text() == "xx"


def test_lost_put_object_says_so(cluster):
    ref = ember.put(np.ones(MB // 4))
    _destroy(ref)
    with pytest.raises(ObjectLostError, match=f"{ref.hex()}.*destroyed.*cannot be rebuilt: it was put"):
        ember.get(ref)


def test_lost_result_of_unretryable_task(cluster):
    @ember.remote(max_retries=0)
    def once():
        return np.ones(MB // 4)

    ref = once.remote()
    ember.get(ref)
    _destroy(ref)
    with pytest.raises(ObjectLostError, match="cannot be rebuilt"):
        ember.get(ref)


def test_a_task_reading_a_lost_borrowed_object_says_why_once(cluster, tmp_path):
    """The worker cannot rebuild what it borrows; the driver's get must not treat the task's
    error as a copy of its own gone missing and add its own reason again."""
    runs = tmp_path / "runs"

    @ember.remote
    def reads(refs, path):
        with open(path, "a") as f:
            f.write("x")
        return float(ember.get(refs[0]).sum())

    ref = ember.put(np.ones(MB // 4))
    _destroy(ref)
    with pytest.raises(ObjectLostError) as raised:
        ember.get(reads.remote([ref], str(runs)))
    message = str(raised.value).splitlines()[-1]
    assert f"{ref.hex()} is lost" in message, message
    assert message.count("cannot be rebuilt") == 1, message
    assert message.endswith(f"it cannot be rebuilt: this process borrows it from its owner at "
                            f"{context.require_core().address}"), message
    assert runs.read_text() == "x"  # the task failed; nothing ran it again


def test_store_memory_goes_back_after_the_work(cluster):
    arrays = [ember.put(np.ones(50 * MB // 8)) for _ in range(4)]
    assert _store_info().used >= 200 * MB
    del arrays
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _store_info().used:
        time.sleep(0.05)
    assert _store_info().used == 0
    assert os.path.exists(context.require_core().objects.arena.path)
