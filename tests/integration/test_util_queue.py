"""``ember.util.queue.Queue`` on a real actor, shared by a driver, tasks and actors, with the
programs of Ray's documentation run as ``import ember as ray``. A blocked ``get`` is shown
blocked by its result not being ready while nothing was put, not by a clock."""

from __future__ import annotations

import asyncio
import queue as standard_queue

import pytest

import ember as ray
from ember.exceptions import ActorDiedError
from ember.util.queue import Empty, Full, Queue


@ray.remote
def consumer(id, queue):
    got = []
    try:
        while True:
            got.append(queue.get(block=True, timeout=1))
    except Empty:
        pass
    return got


def test_the_documentation_example(cluster):
    queue = Queue(maxsize=100)
    [queue.put(i) for i in range(10)]
    consumers = [consumer.remote(id, queue) for id in range(2)]
    got = ray.get(consumers)
    assert sorted(got[0] + got[1]) == list(range(10))
    for items in got:  # each consumer took its items in the order they were put
        assert items == sorted(items)
    queue.shutdown()


def test_fifo_sizes_and_the_nowait_variants(cluster):
    q = Queue(maxsize=3)
    assert q.empty() and not q.full() and len(q) == 0
    q.put("a")
    q.put_nowait("b")
    q.put_nowait_batch(["c"])
    assert q.full() and q.qsize() == q.size() == len(q) == 3
    with pytest.raises(Full):
        q.put_nowait("d")
    with pytest.raises(Full):
        q.put("d", block=False)
    with pytest.raises(Full, match="Cannot add 2 items"):
        q.put_nowait_batch(["d", "e"])
    assert q.get() == "a"
    assert q.get_nowait_batch(2) == ["b", "c"]
    with pytest.raises(Empty):
        q.get_nowait()
    with pytest.raises(Empty, match="Cannot get 1 items"):
        q.get_nowait_batch(1)
    with pytest.raises(standard_queue.Empty):  # the standard library's classes catch them too
        q.get(block=False)
    q.shutdown()


def test_timeouts_raise_empty_and_full(cluster):
    q = Queue(maxsize=1)
    with pytest.raises(Empty, match="stayed empty"):
        q.get(timeout=0.2)
    q.put(1)
    with pytest.raises(Full, match="stayed full"):
        q.put(2, timeout=0.2)
    assert q.get(timeout=0) == 1  # an item there is taken even with no time to wait
    with pytest.raises(ValueError, match="non-negative"):
        q.get(timeout=-1)
    with pytest.raises(ValueError, match="non-negative"):
        q.put(1, timeout=-1)
    with pytest.raises(TypeError):
        q.get_nowait_batch("2")
    with pytest.raises(ValueError):
        q.get_nowait_batch(-1)
    q.shutdown()


def test_a_get_blocks_until_an_item_is_put(cluster):
    q = Queue()
    waiting = consumer_forever.remote(q)
    ready, _ = ray.wait([waiting], timeout=0.5)
    assert ready == []  # nothing was put: it cannot have returned
    q.put("item")
    assert ray.get(waiting) == "item"
    q.shutdown()


@ray.remote
def consumer_forever(q):
    return q.get()


@ray.remote
def producer(q, items):
    for item in items:
        q.put(item)
    return len(items)


def test_a_put_blocks_until_there_is_room(cluster):
    q = Queue(maxsize=2)
    sent = producer.remote(q, [1, 2, 3, 4])
    ready, _ = ray.wait([sent], timeout=0.5)
    assert ready == []  # two fit; the third waits for room
    assert [q.get(), q.get(), q.get(), q.get()] == [1, 2, 3, 4]
    assert ray.get(sent) == 4
    q.shutdown()


@ray.remote
class Relay:
    """An actor that moves items from one queue to another."""

    def __init__(self, source, sink):
        self.source, self.sink = source, sink

    def move(self, n):
        for _ in range(n):
            self.sink.put(self.source.get() * 10)
        return n


def test_queues_passed_to_actors(cluster):
    source, sink = Queue(), Queue()
    relay = Relay.remote(source, sink)
    moved = relay.move.remote(3)
    for i in range(3):
        source.put(i)
    assert ray.get(moved) == 3
    assert [sink.get(timeout=5) for _ in range(3)] == [0, 10, 20]
    source.shutdown()
    sink.shutdown()


def test_async_variants(cluster):
    q = Queue(maxsize=1)

    async def main():
        await q.put_async("x")
        with pytest.raises(Full):
            await q.put_async("y", block=False)
        with pytest.raises(Full):
            await q.put_async("y", timeout=0.1)
        assert await q.get_async() == "x"
        with pytest.raises(Empty):
            await q.get_async(block=False)
        with pytest.raises(Empty):
            await q.get_async(timeout=0.1)
        # A get waiting on the event loop does not stop a put on the same loop.
        getter = asyncio.ensure_future(q.get_async())
        await q.put_async("z")
        return await getter

    assert asyncio.run(main()) == "z"
    q.shutdown()


@ray.remote
class AsyncConsumer:
    async def take(self, q, n):
        return [await q.get_async(timeout=10) for _ in range(n)]


def test_async_variants_in_an_async_actor(cluster):
    q = Queue()
    taker = AsyncConsumer.remote()
    taken = taker.take.remote(q, 3)
    for i in range(3):
        q.put(i)
    assert ray.get(taken) == [0, 1, 2]
    q.shutdown()


def test_shutdown_ends_the_actor_and_fails_waiting_calls(cluster):
    q = Queue()
    waiting = consumer_forever.remote(q)
    ready, _ = ray.wait([waiting], timeout=0.5)
    assert ready == []
    actor = q.actor
    q.shutdown()
    with pytest.raises(ActorDiedError):
        ray.get(waiting)
    with pytest.raises(ActorDiedError):
        ray.get(actor.qsize.remote())
    with pytest.raises(RuntimeError, match="shut down"):
        q.put(1)
    q.shutdown()  # a second time: nothing to do

    forced = Queue()
    forced.put(1)
    forced.shutdown(force=True)
    assert forced.actor is None


def test_actor_options_reach_the_actor(cluster):
    q = Queue(actor_options={"name": "shared-queue", "num_cpus": 0})
    q.put("from the driver")
    named = ray.get_actor("shared-queue")
    assert ray.get(named.get.remote()) == "from the driver"
    q.shutdown()


@ray.remote
def consumer_until_none(q):
    got = []
    while (item := q.get(timeout=60)) is not None:
        got.append(item)
    return got


def test_many_producers_and_consumers_lose_and_repeat_nothing(cluster):
    """Races between blocked gets, puts on a full queue and batches, repeated: every item
    arrives exactly once, and each producer's items in the order it put them."""
    for _ in range(3):
        q = Queue(maxsize=5)
        consumers = [consumer_until_none.remote(q) for _ in range(3)]
        producers = [producer.remote(q, [(p, i) for i in range(60)]) for p in range(4)]
        assert ray.get(producers) == [60] * 4
        for _ in consumers:
            q.put(None)
        taken = ray.get(consumers)
        everything = [item for got in taken for item in got]
        assert sorted(everything) == sorted((p, i) for p in range(4) for i in range(60))
        for got in taken:
            for p in range(4):
                mine = [i for (who, i) in got if who == p]
                assert mine == sorted(mine)
        q.shutdown()
