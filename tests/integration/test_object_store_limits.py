"""The object store's limits, each on a cluster of its own size: a put/drop loop that must
fit in a small store, spilling and restoring, and a store that cannot make room."""

from __future__ import annotations

import time

import numpy as np
import pytest

import ember
from ember.exceptions import ObjectStoreFullError
from tests.integration.test_object_store import MB, _shmem_bytes, _store_info


@pytest.fixture
def small_store():
    ctx = ember.init(num_cpus=2, object_store_memory=300 * MB)
    try:
        yield ctx
    finally:
        ember.shutdown()


def test_put_and_drop_loop_stays_within_a_small_store():
    ember.init(num_cpus=2, object_store_memory=1024 * MB)
    try:
        array = np.zeros(100 * MB // 8)
        baseline = _shmem_bytes()
        peak = 0
        for i in range(200):
            array[0] = i
            ref = ember.put(array)
            if i % 20 == 0:
                assert ember.get(ref)[0] == i
                peak = max(peak, _shmem_bytes() - baseline)
            del ref
        info = _store_info()
        assert info.capacity <= 1024 * MB
        assert peak < 1100 * MB, f"shared memory grew by {peak / MB:.0f} MB"
        assert info.spilled == 0  # dropped objects were freed, not spilled
        assert info.recycled > 150 * 100 * MB  # and their memory was written again
    finally:
        ember.shutdown()


def test_full_store_spills_and_restores(small_store):
    refs = [ember.put(np.full(100 * MB // 8, float(i))) for i in range(5)]
    info = _store_info()
    assert info.spilled > 0 and info.used <= 300 * MB
    for i, ref in enumerate(refs):
        assert ember.get(ref)[0] == float(i)
    assert _store_info().restored > 0


def test_store_full_of_pinned_objects_raises(small_store):
    views = [ember.get(ember.put(np.full(90 * MB // 8, 1.0))) for _ in range(3)]
    with pytest.raises(ObjectStoreFullError, match="the object store is full: .* needed"):
        ember.put(np.full(90 * MB // 8, 2.0))
    assert sum(v[0] for v in views) == 3.0
    del views
    time.sleep(0.2)
    assert ember.get(ember.put(np.full(90 * MB // 8, 2.0)))[0] == 2.0


def test_object_bigger_than_the_store_raises(small_store):
    with pytest.raises(ObjectStoreFullError, match="larger than the whole object store"):
        ember.put(np.zeros(400 * MB // 8))
