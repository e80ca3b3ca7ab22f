"""An actor whose last handle goes away lives until every call made through its handles has
finished, as in Ray: ``Counter.remote().incr.remote()`` must work every time, whether the
actor is still being created when its handle is dropped, runs its calls concurrently, or was
made (and dropped) inside a task. Once those calls are done it ends, and is not restarted.

The race is tested both ways: by repetition (hundreds of create-call-drop cycles), and with
the lease grant held back (the node's ``custom`` resource taken by another actor until the
handle is gone), which makes the old failure certain instead of likely.
"""

from __future__ import annotations

import asyncio
import os
import time

import pytest

import ember
from ember.connection import head_call
from ember.runtime.core import context
from ember.runtime.wire.protocol import ember_pb2 as pb

CYCLES = 300


@ember.remote
class Counter:
    def __init__(self):
        self.n = 0

    def incr(self):
        self.n += 1
        return self.n, os.getpid()


@ember.remote
class Splitter:
    @ember.method(num_returns=3)
    def three(self):
        return 1, 2, os.getpid()


@ember.remote
class AsyncCounter:
    def __init__(self):
        self.n = 0

    async def incr(self):
        await asyncio.sleep(0.001)  # the calls overlap on the actor's event loop
        self.n += 1
        return self.n, os.getpid()


@ember.remote
class Holder:
    """Takes the node's ``custom`` resource while it lives: actors that need some wait."""

    def ready(self):
        return True


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _wait_all_gone(pids: set[int], timeout: float = 120.0) -> set[int]:
    deadline = time.monotonic() + timeout
    alive = {pid for pid in pids if not _gone(pid)}
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = {pid for pid in alive if not _gone(pid)}
    return alive


def _wait_released(actor_id: bytes, timeout: float = 30.0) -> None:
    """Wait until this process has counted the actor's last handle gone, and its I/O loop has
    run what that set off: from here on, the owner has done whatever dropping it does."""
    core = context.require_core()
    deadline = time.monotonic() + timeout
    while core.handles.count(actor_id) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert core.handles.count(actor_id) == 0, "the handle was not released"

    async def turn() -> None:
        await asyncio.sleep(0.01)

    core.io.run(turn())


def _actor_info(actor_id: bytes) -> pb.ActorInfo:
    for info in head_call("ListActors", pb.Empty()).actors:
        if info.actor_id == actor_id:
            return info
    raise AssertionError(f"the head knows no actor {actor_id.hex()}")


def _wait_dead(actor_id: bytes, timeout: float = 30.0) -> pb.ActorInfo:
    deadline = time.monotonic() + timeout
    info = _actor_info(actor_id)
    while info.state != pb.DEAD and time.monotonic() < deadline:
        time.sleep(0.05)
        info = _actor_info(actor_id)
    return info


def test_create_call_drop_cycles(cluster):
    """Each kind of cycle a user writes, many times over; every actor ends after its calls."""
    pids = set()
    for cycle in range(CYCLES):
        kind = cycle % 4
        if kind == 0:
            n, pid = ember.get(Counter.remote().incr.remote())
            assert n == 1
        elif kind == 1:
            a, b, c = Splitter.remote().three.remote()
            one, two, pid = ember.get([a, b, c])
            assert (one, two) == (1, 2)
        elif kind == 2:
            actor = AsyncCounter.remote()
            refs = [actor.incr.remote() for _ in range(5)]
            del actor
            results = ember.get(refs)
            assert sorted(n for n, _ in results) == [1, 2, 3, 4, 5]
            pid = results[0][1]
        else:
            actor = Counter.remote()
            refs = [actor.incr.remote() for _ in range(3)]
            del actor
            results = ember.get(refs)
            assert [n for n, _ in results] == [1, 2, 3]
            pid = results[0][1]
        pids.add(pid)
    assert len(pids) == CYCLES  # one worker per actor
    assert _wait_all_gone(pids) == set()


@pytest.mark.parametrize("kind", ["sync", "num_returns", "async"])
def test_calls_queued_while_the_creation_waits(cluster, kind):
    """The handle is gone before the actor's worker is even leased: its calls still run."""
    holder = Holder.options(resources={"custom": 2}).remote()
    assert ember.get(holder.ready.remote())
    if kind == "sync":
        actor = Counter.options(resources={"custom": 1}).remote()
        refs = [actor.incr.remote() for _ in range(3)]
    elif kind == "num_returns":
        actor = Splitter.options(resources={"custom": 1}).remote()
        refs = list(actor.three.remote())
    else:
        actor = AsyncCounter.options(resources={"custom": 1}).remote()
        refs = [actor.incr.remote() for _ in range(3)]
    actor_id = actor._ember_actor_id
    del actor
    _wait_released(actor_id)
    assert _actor_info(actor_id).state == pb.PENDING
    ember.kill(holder)  # now it can be placed
    values = ember.get(refs, timeout=60)
    if kind == "num_returns":
        assert values[:2] == [1, 2]
        pid = values[2]
    else:
        assert sorted(n for n, _ in values) == [1, 2, 3]
        pid = values[0][1]
    assert _wait_all_gone({pid}) == set()
    info = _wait_dead(actor_id)
    assert info.state == pb.DEAD and "out of scope" in info.death_cause


def test_handle_dropped_inside_a_task(cluster):
    """A task makes an actor, calls it, and returns only the call's ref: the task's worker
    owns both, and the actor must outlive the task until the call is done."""
    holder = Holder.options(resources={"custom": 2}).remote()
    assert ember.get(holder.ready.remote())

    @ember.remote
    def make_call():
        counter = Counter.options(resources={"custom": 1}).remote()
        refs = [counter.incr.remote(), counter.incr.remote()]
        actor_id = counter._ember_actor_id
        del counter
        _wait_released(actor_id)
        return refs, actor_id

    @ember.remote
    def make_call_and_wait():
        return ember.get(Counter.remote().incr.remote())

    refs, actor_id = ember.get(make_call.remote())
    assert _actor_info(actor_id).state == pb.PENDING
    ember.kill(holder)
    (first, pid), (second, _) = ember.get(refs, timeout=60)
    assert (first, second) == (1, 2)
    assert _wait_all_gone({pid}) == set()
    results = ember.get([make_call_and_wait.remote() for _ in range(20)])
    assert [n for n, _ in results] == [1] * 20
    assert _wait_all_gone({pid for _, pid in results}) == set()


def test_released_actor_is_not_restarted(cluster):
    """Letting an actor go is no failure: with restarts allowed, it still ends for good."""
    actor = Counter.options(max_restarts=3).remote()
    actor_id = actor._ember_actor_id
    _, pid = ember.get(actor.incr.remote())
    del actor
    assert _wait_all_gone({pid}) == set()
    info = _wait_dead(actor_id)
    assert info.state == pb.DEAD
    assert info.num_restarts == 0
    assert info.death_cause == "every handle to it went out of scope"


def test_pending_actor_without_calls_is_never_created(cluster):
    """Dropped before it was placed, with nothing to run, it is not placed later either (so
    it is no demand for a node, and never takes the resource it waited for)."""
    holder = Holder.options(resources={"custom": 2}).remote()
    assert ember.get(holder.ready.remote())
    idle = Counter.options(resources={"custom": 1}).remote()
    actor_id = idle._ember_actor_id
    del idle
    info = _wait_dead(actor_id)
    assert info.state == pb.DEAD and info.pid == 0
    assert info.death_cause == "every handle to it went out of scope"
    ember.kill(holder)
