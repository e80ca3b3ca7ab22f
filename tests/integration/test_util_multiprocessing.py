"""``ember.util.multiprocessing.Pool`` on real actor processes: ``multiprocessing`` code moved
over by changing its import, and Ray's documentation example."""

from __future__ import annotations

import itertools
import os
import threading

import pytest

import ember as ray
from ember.util.multiprocessing import Pool, TimeoutError
from ember.util.state import list_actors


def f(index):
    return index


def square(x):
    return x * x


def pid(_):
    return os.getpid()


def fails_on_three(x):
    if x == 3:
        raise ValueError(f"bad input {x}")
    return x


_initialized = "no"


def initialize(value):
    global _initialized
    _initialized = value


def initialized(_):
    return _initialized


def gated(gate, x):
    ray.get(gate.wait.remote())
    return x


@ray.remote
class Gate:
    def __init__(self):
        import asyncio

        self.event = asyncio.Event()

    async def wait(self):
        await self.event.wait()

    async def open(self):
        self.event.set()


def _alive_pool_actors():
    return {a.actor_id for a in list_actors(filters=[("class_name", "=", "_PoolActor"), ("state", "=", "ALIVE")])}


def test_the_documentation_example(cluster):
    pool = Pool()
    assert len(pool._actors) == 4  # one process per CPU of the cluster
    assert [result for result in pool.map(f, range(100))] == list(range(100))
    pool.terminate()


def test_the_api_of_multiprocessing(cluster):
    with Pool(processes=2) as pool:
        assert pool.map(square, range(10)) == [x * x for x in range(10)]
        assert pool.map(square, range(10), chunksize=3) == [x * x for x in range(10)]
        assert pool.map(square, []) == []
        assert list(pool.imap(square, range(7))) == [x * x for x in range(7)]
        assert sorted(pool.imap_unordered(square, range(7), chunksize=2)) == [x * x for x in range(7)]
        assert pool.starmap(pow, [(2, 3), (3, 2), (10, 0)]) == [8, 9, 1]
        assert pool.apply(square, (12,)) == 144
        assert pool.apply(divmod, (7, 2)) == (3, 1)
        assert pool.apply(int, ("ff",), {"base": 16}) == 255
        assert pool.apply_async(int, ("ff",), kwds={"base": 16}).get() == 255  # multiprocessing's name
        result = pool.apply_async(square, (5,))
        assert result.get(timeout=30) == 25 and result.ready() and result.successful()
        assert pool.map_async(square, range(3)).get() == [0, 1, 4]
        assert pool.starmap_async(pow, [(2, 2)]).get() == [4]
        assert len({*pool.map(pid, range(20), chunksize=1)}) == 2


def test_callbacks_run_before_get_returns_and_not_on_ember_threads(cluster):
    seen = []
    with Pool(processes=2) as pool:
        result = pool.apply_async(square, (4,), callback=lambda v: seen.append((v, threading.current_thread().name)))
        assert result.get() == 16
        assert seen == [(16, "ember-pool-callbacks")]
        errors = []
        failing = pool.map_async(fails_on_three, range(6), chunksize=1, callback=seen.append, error_callback=errors.append)
        failing.wait()
        assert failing.ready() and not failing.successful()
        assert [str(e) for e in errors] == ["bad input 3"]
        assert len(seen) == 1  # callback only when every call succeeded
        listed = pool.map_async(square, range(3), callback=seen.append)
        listed.get()
        assert seen[-1] == [0, 1, 4]


def test_exceptions_come_back_as_themselves(cluster):
    with Pool(processes=2) as pool:
        with pytest.raises(ValueError, match="bad input 3"):
            pool.map(fails_on_three, range(6))
        with pytest.raises(ValueError, match="bad input 3"):
            pool.apply(fails_on_three, (3,))
        iterator = pool.imap(fails_on_three, range(5))
        assert [next(iterator) for _ in range(3)] == [0, 1, 2]
        with pytest.raises(ValueError, match="bad input 3"):
            next(iterator)
        assert next(iterator) == 4


def test_imap_takes_an_endless_iterator(cluster):
    with Pool(processes=2) as pool:
        squares = pool.imap(square, itertools.count())
        assert list(itertools.islice(squares, 50)) == [x * x for x in range(50)]
        unordered = pool.imap_unordered(square, itertools.count(), chunksize=4)
        assert len(set(itertools.islice(unordered, 40))) == 40


def test_get_with_a_timeout(cluster):
    gate = Gate.remote()
    with Pool(processes=2) as pool:
        result = pool.apply_async(gated, (gate, 1))
        with pytest.raises(TimeoutError):
            result.get(timeout=0.3)
        assert not result.ready()
        with pytest.raises(ValueError, match="not ready"):
            result.successful()
        waiting = pool.imap(lambda x: gated(gate, x), [7])
        with pytest.raises(TimeoutError):
            waiting.next(timeout=0.3)
        ray.get(gate.open.remote())
        assert result.get(timeout=30) == 1
        assert waiting.next(timeout=30) == 7


def test_initializer_runs_in_every_process(cluster):
    with Pool(processes=2, initializer=initialize, initargs=("yes",)) as pool:
        assert set(pool.map(initialized, range(8), chunksize=1)) == {"yes"}


def test_maxtasksperchild_replaces_processes(cluster):
    with Pool(processes=2, maxtasksperchild=1) as pool:
        pids = pool.map(pid, range(6), chunksize=1)
        assert len(set(pids)) == 6  # each chunk in a process of its own
        pool.close()
        pool.join()
    assert not _alive_pool_actors()


def test_the_context_manager_and_close_join_terminate(cluster):
    with Pool(processes=2) as pool:
        assert pool.map(square, [3]) == [9]
        assert len(_alive_pool_actors()) == 2
    assert not _alive_pool_actors()  # terminate() on the way out
    with pytest.raises(ValueError, match="Pool not running"):
        pool.map(square, [1])

    pool = Pool(processes=2)
    pending = pool.map_async(square, range(10))
    with pytest.raises(ValueError, match="still running"):
        pool.join()
    pool.close()
    with pytest.raises(ValueError, match="Pool not running"):
        pool.apply(square, (1,))
    pool.join()  # the work sent before close finishes
    assert pending.get() == [x * x for x in range(10)]
    assert not _alive_pool_actors()


def test_refusals(cluster):
    with pytest.raises(ValueError, match="only 4 CPUs"):
        Pool(processes=5)
    with pytest.raises(ValueError, match="must be >0"):
        Pool(processes=0)
    with pytest.raises(ValueError, match="maxtasksperchild"):
        Pool(processes=1, maxtasksperchild=0)


@ray.remote
def pool_in_a_task(n):
    with Pool(processes=1) as pool:
        return pool.map(square, range(n))


def test_a_pool_inside_a_task(cluster):
    assert ray.get(pool_in_a_task.remote(4)) == [0, 1, 4, 9]


def test_every_callback_runs_once_before_its_get_returns(cluster):
    """Many results arriving at once, repeated: each callback runs exactly once, and get()
    returns only after it ran."""
    with Pool(processes=2) as pool:
        for _ in range(3):
            seen = []
            results = [pool.apply_async(square, (i,), callback=seen.append) for i in range(100)]
            for i, result in enumerate(results):
                assert result.get() == i * i
                assert i * i in seen
            assert sorted(seen) == sorted(i * i for i in range(100))
