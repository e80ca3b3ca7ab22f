"""Distributed reference counting: an object lives while any process holds a ref to it — the
driver, a worker, an actor, a ref inside another object, a pending task — and is freed after."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time

import numpy as np

import ember
from ember.runtime.core import context
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


@ember.remote
class LateReporter:
    """Keeps a ref as ``Keeper`` does, its reports of borrows to their owners delayed by
    ``delay`` seconds (``Borrowing._send`` slowed in its own worker, which lives and dies with
    it): a borrow that reaches the owner late, as on a loaded machine."""

    def __init__(self, delay):
        from ember.runtime.core import borrowing

        self.kept = None
        self.sending = sending = threading.Event()
        send = borrowing.Borrowing._send

        async def late(self, owner, update):
            sending.set()
            await asyncio.sleep(delay)
            await send(self, owner, update)

        borrowing.Borrowing._send = late

    def keep(self, box):
        self.kept = box[0]
        # Answer only once the report of this borrow is on its way (and held up).
        assert self.sending.wait(30), "the borrow was never reported"
        return True

    def read(self):
        return float(ember.get(self.kept)[0])


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


def test_a_borrow_reported_late_still_keeps_the_object(cluster):
    """The owner must know a borrower before the reply of the call that handed it the ref:
    the reply lets the owner drop the ref the call held, and it frees what nobody it knows
    of holds. The borrower's report used to be waited for only if it had not left yet."""
    assert _wait_for(lambda: _used() == 0)
    core = context.require_core()
    ref = ember.put(np.full(8 * MB // 8, 7.0))
    object_id = ref.id
    borrower = LateReporter.remote(1.0)
    assert ember.get(borrower.keep.remote([ref]))
    assert core.borrowers.get(object_id), "the call's reply came before its borrow was reported"
    del ref
    assert _wait_for(lambda: core.references.count(object_id) == 0)
    core.io.run(asyncio.sleep(0.2))  # the owner's drains of released refs have run
    assert ember.get(borrower.read.remote()) == 7.0
    assert _used() >= 8 * MB
    del borrower
    assert _wait_for(lambda: _used() == 0), "freed once the borrower went"


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


def test_two_results_of_one_task_let_go_on_two_threads_at_once(cluster):
    """Releases are applied on the I/O thread (every 50 ms) and, before a put, on the user's
    thread. Two large results of one task, let go one on each thread at the same moment, must
    both be freed, and neither thread may fail: a failure on the I/O thread would stop every
    later release of the process. The interleaving is forced: each thread, about to see that
    the other result is unreferenced too, waits until the other thread got as far."""
    assert _wait_for(lambda: _used() == 0)
    core = context.require_core()

    @ember.remote(num_returns=2)
    def two():
        return np.ones(MB), np.ones(MB)

    a, b = two.remote()
    ember.get([a, b])
    task_id = a.task_id()
    assert task_id in core.lineage  # large results: the task is kept to run again
    ids = {a.id, b.id}

    barrier = threading.Barrier(2, timeout=10)
    calls = threading.local()
    count = core.references.count

    def slowed_count(object_id: bytes) -> int:
        # In each freeing thread: its own result's count first, then the other one's.
        calls.n = getattr(calls, "n", 0) + 1
        if threading.current_thread().name.startswith("freeing") and calls.n == 2:
            barrier.wait()
        return count(object_id)

    errors: list[BaseException] = []

    def drain() -> None:
        try:
            core.references.drain()
        except BaseException as error:  # noqa: BLE001 - what the test looks for
            errors.append(error)

    loop_free = threading.Event()
    core.io.call_soon(loop_free.wait, 30)  # the periodic drain must not take these releases
    core.references.count = slowed_count
    try:
        del a
        first = threading.Thread(target=drain, name="freeing-1")
        first.start()
        assert _wait_for(lambda: barrier.n_waiting == 1)
        del b
        second = threading.Thread(target=drain, name="freeing-2")
        second.start()
        first.join(15)
        second.join(15)
    finally:
        del core.references.count
        loop_free.set()
    assert errors == []
    assert task_id not in core.lineage
    assert not any(object_id in core.store for object_id in ids)
    assert _wait_for(lambda: _used() == 0), "both results freed"


@ember.remote
def read_all(box):
    """Reads every borrowed ref at once: one ``get`` of thousands of objects of one owner."""
    return sum(ember.get(box[0]))


@ember.remote
def slow_value(i, delay):
    time.sleep(delay)
    return i


def test_a_get_of_thousands_of_borrowed_objects_reads_them_all(cluster):
    """Each borrowed object used to be one unary GetObject to its owner, all at once: past the
    owner's gRPC server's pending-request limit (1,000) the rest failed with OwnerDiedError
    though the owner was alive."""
    refs = [ember.put(i) for i in range(5000)]
    assert ember.get(read_all.remote([refs])) == sum(range(5000))


def test_borrowed_objects_arrive_as_they_become_ready(cluster):
    """A batch of borrowed refs waits for none of its slow members: ``wait`` in a task sees the
    ready ones while the slow ones still run."""

    @ember.remote
    def first_ready(box):
        ready, _ = ember.wait(box[0], num_returns=len(box[0]) - 1, timeout=60)
        return sorted(ember.get(ready))

    refs = [ember.put(i) for i in range(2000)]
    slow = slow_value.remote(-1, 30)
    assert ember.get(first_ready.remote([[slow, *refs]])) == list(range(2000))
    ember.cancel(slow, force=True)
