"""Distributed reference counting: an object lives while any process holds a ref to it — the
driver, a worker, an actor, a ref inside another object, a pending task — and is freed after."""

from __future__ import annotations

import os
import signal
import time

import numpy as np

import ember
from tests.integration.test_object_store import MB, _store_info


def _wait_for(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def _used() -> int:
    return _store_info().used


@ember.remote
class Keeper:
    def __init__(self):
        self.kept = None

    def keep(self, box):
        self.kept = box[0]
        return True

    def read(self):
        return float(ember.get(self.kept)[0])

    def drop(self):
        self.kept = None
        return True

    def pid(self):
        return os.getpid()


def test_a_ref_kept_by_an_actor_outlives_the_driver_ref(cluster):
    assert _wait_for(lambda: _used() == 0)
    ref = ember.put(np.full(8 * MB // 8, 5.0))
    keeper = Keeper.remote()
    assert ember.get(keeper.keep.remote([ref]))
    del ref
    time.sleep(0.5)
    # The driver let go, the actor did not: still readable.
    assert ember.get(keeper.read.remote()) == 5.0
    assert _used() >= 8 * MB
    assert ember.get(keeper.drop.remote())
    assert _wait_for(lambda: _used() == 0), "freed once the last borrower let go"


def test_a_borrower_that_dies_lets_go(cluster):
    assert _wait_for(lambda: _used() == 0)
    ref = ember.put(np.full(8 * MB // 8, 1.0))
    keeper = Keeper.remote()
    ember.get(keeper.keep.remote([ref]))
    pid = ember.get(keeper.pid.remote())
    del ref
    time.sleep(0.3)
    assert _used() >= 8 * MB
    os.kill(pid, signal.SIGKILL)
    assert _wait_for(lambda: _used() == 0)


def test_refs_returned_by_a_task_stay_alive_with_their_borrower(cluster):
    assert _wait_for(lambda: _used() == 0)

    @ember.remote
    def make_inner():
        return [ember.put(np.full(8 * MB // 8, 2.0))]

    (inner,) = ember.get(make_inner.remote())
    time.sleep(0.3)  # the worker's own ref is long gone
    assert ember.get(inner)[0] == 2.0
    del inner
    assert _wait_for(lambda: _used() == 0)


def test_refs_inside_objects_and_pending_tasks(cluster):
    assert _wait_for(lambda: _used() == 0)
    inner = ember.put(np.full(8 * MB // 8, 3.0))
    outer = ember.put({"inner": inner})
    del inner
    time.sleep(0.3)
    assert ember.get(ember.get(outer)["inner"])[0] == 3.0

    @ember.remote
    def slow_sum(box):
        time.sleep(0.5)
        return float(ember.get(box["inner"]).sum())

    pending = slow_sum.remote(ember.get(outer))
    del outer
    assert ember.get(pending) == 3.0 * (8 * MB // 8)
    del pending
    assert _wait_for(lambda: _used() == 0)


def test_a_task_result_dropped_before_it_arrives_is_freed(cluster):
    assert _wait_for(lambda: _used() == 0)

    @ember.remote
    def big():
        time.sleep(0.3)
        return np.ones(8 * MB // 8)

    big.remote()  # the ref is dropped at once
    time.sleep(1.0)
    assert _wait_for(lambda: _used() == 0)
