"""``ember.util.ActorPool`` on real actors, with programs from Ray's documentation run as
``import ember as ray``. Orders are forced with a gate (an actor whose calls wait until the
test opens them), never with sleeps."""

from __future__ import annotations

import asyncio
import os

import pytest

import ember as ray
from ember.exceptions import ActorDiedError
from ember.util import ActorPool


@ray.remote
class Gate:
    """Calls to ``wait(key)`` return once ``open(key)`` was called."""

    def __init__(self):
        self.events = {}

    def _event(self, key):
        return self.events.setdefault(key, asyncio.Event())

    async def wait(self, key):
        await self._event(key).wait()
        return key

    async def open(self, key):
        self._event(key).set()


@ray.remote
class Actor:
    def double(self, n):
        return n * 2

    def gated_double(self, gate, n):
        ray.get(gate.wait.remote(n))
        return n * 2

    def pid(self, _):
        return os.getpid()

    @ray.method(num_returns=2)
    def both(self, n):
        return n, -n


def test_the_documentation_example(cluster):
    a1, a2 = Actor.remote(), Actor.remote()
    pool = ActorPool([a1, a2])
    gen = pool.map(lambda a, v: a.double.remote(v), [1, 2, 3, 4])
    assert list(gen) == [2, 4, 6, 8]
    results = pool.map_unordered(lambda a, v: a.double.remote(v), [1, 2, 3, 4])
    assert set(results) == {2, 4, 6, 8}


def test_ray_util_names(cluster):
    from ember.util.actor_pool import ActorPool as FromModule

    assert FromModule is ActorPool


def test_map_keeps_order_and_map_unordered_yields_what_finished_first(cluster):
    gate = Gate.remote()
    pool = ActorPool([Actor.remote(), Actor.remote()])
    ordered = pool.map(lambda a, v: a.gated_double.remote(gate, v), [1, 2])
    ray.get(gate.open.remote(2))
    with pytest.raises(TimeoutError):  # 2 is done, but 1 comes first and cannot be
        pool.get_next(timeout=0.5)
    ray.get(gate.open.remote(1))
    assert list(ordered) == [2, 4]

    gate = Gate.remote()
    unordered = pool.map_unordered(lambda a, v: a.gated_double.remote(gate, v), [1, 2])
    ray.get(gate.open.remote(2))
    assert next(unordered) == 4
    ray.get(gate.open.remote(1))
    assert next(unordered) == 2
    assert list(unordered) == []


def test_values_beyond_the_actors_wait_for_one(cluster):
    """Two actors, five values: the pool keeps three back and sends each when an actor's
    result is taken, so every actor runs at most one call at a time."""
    gate = Gate.remote()
    pool = ActorPool([Actor.remote(), Actor.remote()])
    for v in range(5):
        pool.submit(lambda a, x: a.gated_double.remote(gate, x), v)
    assert len(pool._pending_submits) == 3 and not pool.has_free()
    assert pool.pop_idle() is None
    for v in range(5):
        ray.get(gate.open.remote(v))
    assert [pool.get_next() for _ in range(5)] == [0, 2, 4, 6, 8]
    assert not pool.has_next() and pool.has_free()


def test_submit_get_next_has_next_push_and_pop_idle(cluster):
    a1, a2 = Actor.remote(), Actor.remote()
    pool = ActorPool([a1])
    pool.submit(lambda a, v: a.double.remote(v), 1)
    assert pool.has_next() and not pool.has_free()
    assert pool.pop_idle() is None
    assert pool.get_next() == 2
    assert not pool.has_next()
    assert pool.pop_idle() == a1
    with pytest.raises(StopIteration):
        pool.get_next()
    pool.push(a2)
    with pytest.raises(ValueError, match="already belongs"):
        pool.push(a2)
    pool.submit(lambda a, v: a.double.remote(v), 3)
    pool.submit(lambda a, v: a.double.remote(v), 4)
    assert sorted([pool.get_next_unordered(), pool.get_next_unordered()]) == [6, 8]


def test_get_next_after_get_next_unordered_is_refused(cluster):
    pool = ActorPool([Actor.remote()])
    pool.submit(lambda a, v: a.double.remote(v), 1)
    pool.submit(lambda a, v: a.double.remote(v), 2)
    assert pool.get_next_unordered() == 2
    assert pool.get_next_unordered() == 4
    pool.submit(lambda a, v: a.double.remote(v), 3)
    assert pool.get_next() == 6


def test_timeouts_and_ignoring_a_call(cluster):
    gate = Gate.remote()
    pool = ActorPool([Actor.remote()])
    pool.submit(lambda a, v: a.gated_double.remote(gate, v), 1)
    with pytest.raises(TimeoutError):
        pool.get_next(timeout=0.2)
    assert pool.has_next()  # still there to be waited for
    with pytest.raises(TimeoutError, match="ignored"):
        pool.get_next_unordered(timeout=0.2, ignore_if_timedout=True)
    assert not pool.has_next() and pool.has_free()
    ray.get(gate.open.remote(1))


def test_a_function_returning_several_refs(cluster):
    pool = ActorPool([Actor.remote(), Actor.remote()])
    assert list(pool.map(lambda a, v: a.both.remote(v), [1, 2, 3])) == [[1, -1], [2, -2], [3, -3]]
    assert sorted(pool.map_unordered(lambda a, v: a.both.remote(v), [4, 5])) == [[4, -4], [5, -5]]


def test_a_dead_actor_leaves_the_pool(cluster):
    alive, doomed = Actor.remote(), Actor.remote()
    ray.get([alive.double.remote(0), doomed.double.remote(0)])
    ray.kill(doomed)
    pool = ActorPool([alive, doomed])  # the pool hands out the last actor first: doomed
    pool.submit(lambda a, v: a.double.remote(v), 1)
    with pytest.raises(ActorDiedError):
        pool.get_next()
    assert pool._idle_actors == [alive]
    assert list(pool.map(lambda a, v: a.double.remote(v), [5, 6])) == [10, 12]


def test_the_work_is_spread_over_the_actors(cluster):
    actors = [Actor.remote() for _ in range(3)]
    pids = {ray.get(a.pid.remote(None)) for a in actors}
    pool = ActorPool(actors)
    assert set(pool.map(lambda a, v: a.pid.remote(v), range(30))) == pids


def test_refuses_what_is_not_an_actor(cluster):
    with pytest.raises(TypeError, match="actor handles"):
        ActorPool([1, 2])
    pool = ActorPool([Actor.remote()])
    for _ in range(2):  # not a call: a clear error, and the actor stays in the pool
        with pytest.raises(TypeError, match="ObjectRef"):
            pool.submit(lambda a, v: v, 1)
    assert pool.has_free()
    assert list(pool.map(lambda a, v: a.double.remote(v), [1])) == [2]


def test_repeated_maps_return_everything_in_order(cluster):
    pool = ActorPool([Actor.remote() for _ in range(3)])
    for round in range(5):
        values = list(range(round * 100, round * 100 + 100))
        assert list(pool.map(lambda a, v: a.double.remote(v), values)) == [2 * v for v in values]
        assert sorted(pool.map_unordered(lambda a, v: a.double.remote(v), values)) == [2 * v for v in values]
    assert not pool.has_next() and len(pool._idle_actors) == 3
