"""Tasks that submit tasks, and a blocked get that gives its CPU back."""

from __future__ import annotations

import time

import ember


@ember.remote
def fan_out(depth, width):
    """Each level blocks in get on its children: deeper than the CPUs, it would deadlock
    unless a blocked task gives its CPU back."""
    if depth == 0:
        return 1
    return sum(ember.get([fan_out.remote(depth - 1, width) for _ in range(width)]))


def test_recursive_fan_out_deeper_than_the_cpus(cluster):
    # 4 CPUs; a chain 8 levels deep, each level holding a CPU while it waits.
    assert ember.get(fan_out.remote(8, 1), timeout=120) == 1
    assert ember.get(fan_out.remote(3, 3), timeout=120) == 27


def test_nested_refs_owned_by_a_worker(cluster):
    @ember.remote
    def producer():
        return [ember.put(i) for i in range(5)]

    @ember.remote
    def consumer(refs):
        return sum(ember.get(refs))

    refs = ember.get(producer.remote())
    assert ember.get(refs) == [0, 1, 2, 3, 4]
    assert ember.get(consumer.remote(refs)) == 10


def test_nested_wait(cluster):
    @ember.remote
    def sleepy(s):
        time.sleep(s)
        return s

    @ember.remote
    def waiter():
        refs = [sleepy.remote(0.1), sleepy.remote(3)]
        ready, not_ready = ember.wait(refs, num_returns=1, timeout=10)
        return ember.get(ready), len(not_ready)

    assert ember.get(waiter.remote()) == ([0.1], 1)


def test_borrowed_ref_passed_down_two_levels(cluster):
    data = ember.put({"answer": 42})

    @ember.remote
    def inner(box):
        return ember.get(box[0])["answer"]

    @ember.remote
    def outer(box):
        return ember.get(inner.remote(box))

    assert ember.get(outer.remote([data])) == 42
