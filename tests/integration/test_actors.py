"""Actors on real processes: state, handles that travel, ordering, concurrency, names,
lifetimes, kill, restarts and the errors that say why an actor is gone."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time

import numpy as np
import pytest

import ember
from ember.exceptions import ActorDiedError, RayActorError


@ember.remote
class Counter:
    def __init__(self, start=0):
        self.n = start

    def add(self, k=1):
        self.n += k
        return self.n

    def value(self):
        return self.n

    def pid(self):
        return os.getpid()

    @ember.method(num_returns=2)
    def pair(self):
        return self.n, -self.n

    def _private(self):
        return "hidden"


def _wait_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except OSError:
            return True
        time.sleep(0.05)
    return False


def test_state_repr_and_methods(cluster):
    c = Counter.remote(10)
    assert repr(c) == f"Actor(Counter, {c._ember_actor_id.hex()})"
    assert ember.get(c.add.remote(5)) == 15
    assert ember.get([c.add.remote() for _ in range(5)]) == [16, 17, 18, 19, 20]
    a, b = c.pair.remote()
    assert ember.get([a, b]) == [20, -20]
    with pytest.raises(AttributeError, match="no public method"):
        _ = c.missing
    with pytest.raises(AttributeError):
        _ = c._private
    assert "add" in dir(c) and "_private" not in dir(c)
    with pytest.raises(TypeError, match="Counter.remote"):
        Counter()
    with pytest.raises(TypeError, match=r"add.remote\(\)"):
        c.add(1)


def test_method_options_num_returns(cluster):
    @ember.remote
    class Splitter:
        def split(self, items):
            return tuple(items)

    s = Splitter.remote()
    first, second = s.split.options(num_returns=2).remote([1, 2])
    assert ember.get([first, second]) == [1, 2]


def test_refs_as_call_arguments(cluster):
    c = Counter.remote()
    ref = ember.put(41)
    assert ember.get(c.add.remote(ref)) == 41

    @ember.remote
    def slow_value():
        time.sleep(0.5)
        return 100

    # A call waiting for an argument keeps its place: the next call runs after it.
    later = c.add.remote(slow_value.remote())
    after = c.add.remote(1)
    assert ember.get([later, after]) == [141, 142]


def test_per_caller_order(cluster):
    @ember.remote
    class Log:
        def __init__(self):
            self.items = []

        def append(self, item):
            self.items.append(item)

        def items_(self):
            return self.items

    log = Log.remote()
    for i in range(500):
        log.append.remote(i)
    assert ember.get(log.items_.remote()) == list(range(500))


def test_handles_travel_to_tasks_actors_and_objects(cluster):
    c = Counter.remote()

    @ember.remote
    def bump(counter, times):
        return ember.get([counter.add.remote() for _ in range(times)])[-1]

    @ember.remote
    class Forwarder:
        def __init__(self, counter):
            self.counter = counter

        def bump(self):
            return ember.get(self.counter.add.remote(100))

    @ember.remote
    def make_counter():
        return Counter.remote(1000)

    assert ember.get([bump.remote(c, 10), bump.remote(c, 10)])[-1] <= 20
    assert ember.get(c.value.remote()) == 20
    f = Forwarder.remote(c)
    assert ember.get(f.bump.remote()) == 120
    boxed = ember.put({"counter": c})
    assert ember.get(ember.get(boxed)["counter"].value.remote()) == 120
    returned = ember.get(make_counter.remote())
    assert ember.get(returned.add.remote(1)) == 1001


def test_parameter_server_seed(cluster):
    dim = 32

    @ember.remote
    class ParameterServer:
        def __init__(self, dim):
            self.parameters = np.zeros(dim)

        def get_parameters(self):
            return self.parameters

        def update_parameters(self, update):
            self.parameters += update

    @ember.remote
    def worker(ps, dim, num_iters):
        for _ in range(num_iters):
            parameters = ps.get_parameters.remote()
            parameters = ember.get(parameters)
            update = 1e-3 * parameters + np.random.rand(dim)
            ps.update_parameters.remote(update)

    ps = ParameterServer.remote(dim)
    ember.get(worker.remote(ps, dim, 1))
    workers = [worker.remote(ps, dim, 300) for _ in range(2)]
    seen = [ember.get(ps.get_parameters.remote()).sum()]
    deadline = time.monotonic() + 30
    while len(set(seen)) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
        seen.append(ember.get(ps.get_parameters.remote()).sum())
    assert len(set(seen)) >= 3, "the driver should see the parameters change"
    ember.get(workers)
    final = ember.get(ps.get_parameters.remote())
    assert final.shape == (dim,) and final.sum() > seen[0]


def test_threaded_actor_runs_calls_at_once(cluster):
    @ember.remote(max_concurrency=4)
    class Meeting:
        def __init__(self):
            # Four calls pass only together: run one after another, the first waits in vain.
            self.everyone = threading.Barrier(4, timeout=60)

        def arrive(self):
            self.everyone.wait()
            return threading.current_thread().name

    m = Meeting.remote()
    names = ember.get([m.arrive.remote() for _ in range(4)], timeout=120)
    assert len(set(names)) == 4, names


def test_async_actor_runs_coroutines_concurrently(cluster):
    @ember.remote
    class AsyncWorker:
        def __init__(self):
            self.running = 0
            self.peak = 0
            self.all_in = None

        async def nap(self, seconds):
            # Each coroutine waits until all twenty run: one at a time, the first never would.
            self.all_in = self.all_in or asyncio.Event()
            self.running += 1
            self.peak = max(self.peak, self.running)
            if self.running == 20:
                self.all_in.set()
            await asyncio.wait_for(self.all_in.wait(), 60)
            await asyncio.sleep(seconds)
            self.running -= 1
            return seconds

        async def peak_(self):
            return self.peak

        async def await_ref(self, ref_box):
            return await ref_box[0]

    w = AsyncWorker.remote()
    assert ember.get([w.nap.remote(0.01) for _ in range(20)], timeout=120) == [0.01] * 20
    assert ember.get(w.peak_.remote()) == 20
    assert ember.get(w.await_ref.remote([ember.put("awaited")])) == "awaited"


def test_async_actor_respects_max_concurrency(cluster):
    @ember.remote(max_concurrency=2)
    class Limited:
        def __init__(self):
            self.running = 0
            self.peak = 0

        async def nap(self):
            self.running += 1
            self.peak = max(self.peak, self.running)
            await asyncio.sleep(0.1)
            self.running -= 1

        async def peak_(self):
            return self.peak

    limited = Limited.remote()
    ember.get([limited.nap.remote() for _ in range(8)])
    assert ember.get(limited.peak_.remote()) == 2


def test_named_actors(cluster):
    a = Counter.options(name="shared", namespace="tests").remote(5)
    same = Counter.options(name="shared", namespace="tests", get_if_exists=True).remote(99)
    assert same == a and ember.get(same.value.remote()) == 5
    found = ember.get_actor("shared", namespace="tests")
    assert ember.get(found.add.remote(1)) == 6
    with pytest.raises(ValueError, match="already exists"):
        Counter.options(name="shared", namespace="tests").remote()
    with pytest.raises(ValueError, match="Failed to look up actor with name 'nobody'"):
        ember.get_actor("nobody")
    with pytest.raises(ValueError) as caught:
        ember.get_actor("shared")  # this driver's namespace is an anonymous one
    assert "but an actor named 'shared' lives in namespace 'tests'" in str(caught.value)
    assert "ember.get_actor('shared', namespace='tests')" in str(caught.value)
    other = Counter.options(name="shared", namespace="more-tests").remote(1)
    with pytest.raises(ValueError, match="lives in namespaces 'more-tests', 'tests'"):
        ember.get_actor("shared", namespace="none-of-these")
    ember.kill(other)
    mine = Counter.options(name="in-my-namespace").remote()
    assert ember.get(ember.get_actor("in-my-namespace").value.remote()) == 0
    ember.kill(mine)


def test_kill_reports_the_cause(cluster):
    c = Counter.remote()
    pid = ember.get(c.pid.remote())
    ember.kill(c)
    with pytest.raises(ActorDiedError, match="killed with ember.kill") as info:
        ember.get(c.add.remote(), timeout=30)
    assert isinstance(info.value, RayActorError)
    assert _wait_gone(pid)


def test_constructor_error_surfaces_on_first_call(cluster):
    @ember.remote
    class Broken:
        def __init__(self):
            raise ValueError("cannot build this")

        def call(self):
            return "unreachable"

    b = Broken.remote()
    with pytest.raises(ActorDiedError, match=r"constructor raised:(.|\n)*ValueError: cannot build this"):
        ember.get(b.call.remote(), timeout=30)


def test_crash_without_restarts_is_reported(cluster):
    c = Counter.remote()
    _crash(ember.get(c.pid.remote()))
    with pytest.raises(ActorDiedError, match="killed by SIGKILL"):
        ember.get(c.add.remote(), timeout=30)


def _crash(pid: int) -> None:
    """Kill an actor's worker and give its callers a moment to see the connection drop (a call
    sent into the dying connection fails as interrupted, as in Ray)."""
    os.kill(pid, signal.SIGKILL)
    assert _wait_gone(pid)
    time.sleep(0.2)


def test_restart_reruns_the_constructor(cluster):
    c = Counter.options(max_restarts=2).remote(7)
    assert ember.get(c.add.remote(3)) == 10
    first = ember.get(c.pid.remote())
    _crash(first)
    # A fresh incarnation: state from the constructor again.
    assert ember.get(c.value.remote(), timeout=30) == 7
    second = ember.get(c.pid.remote())
    assert second != first
    _crash(second)
    assert ember.get(c.value.remote(), timeout=30) == 7
    _crash(ember.get(c.pid.remote()))
    with pytest.raises(ActorDiedError, match=r"killed by SIGKILL.*2 restarts, max_restarts=2"):
        ember.get(c.value.remote(), timeout=30)


def test_kill_with_restart_allowed(cluster):
    c = Counter.options(max_restarts=1).remote(1)
    pid = ember.get(c.pid.remote())
    ember.kill(c, no_restart=False)
    assert _wait_gone(pid)
    time.sleep(0.2)
    assert ember.get(c.value.remote(), timeout=30) == 1
    assert ember.get(c.pid.remote()) != pid


def test_interrupted_calls_retry_with_max_task_retries(cluster):
    @ember.remote
    class Slow:
        def __init__(self):
            self.calls = 0

        def work(self, seconds):
            time.sleep(seconds)
            return "done"

        def pid(self):
            return os.getpid()

    retried = Slow.options(max_restarts=1, max_task_retries=1).remote()
    pid = ember.get(retried.pid.remote())
    ref = retried.work.remote(1.0)
    time.sleep(0.3)
    os.kill(pid, signal.SIGKILL)
    assert ember.get(ref, timeout=30) == "done"

    not_retried = Slow.options(max_restarts=1).remote()
    pid = ember.get(not_retried.pid.remote())
    ref = not_retried.work.remote(1.0)
    time.sleep(0.3)
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(ActorDiedError, match="died while running"):
        ember.get(ref, timeout=30)
    assert ember.get(not_retried.work.remote(0), timeout=30) == "done"


def test_actor_that_fits_nowhere_is_dead_with_the_shape(cluster):
    big = Counter.options(num_gpus=4).remote()
    with pytest.raises(ActorDiedError, match=r"needs \{CPU: 1, GPU: 4\}"):
        ember.get(big.value.remote(), timeout=30)


def test_resources_held_by_actors(cluster):
    free = ember.available_resources().get("CPU", 0)
    light = Counter.remote()  # placed with a CPU, holds none
    ember.get(light.value.remote())
    heavy = Counter.options(num_cpus=2).remote()
    ember.get(heavy.value.remote())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and ember.available_resources().get("CPU", 0) != free - 2:
        time.sleep(0.05)
    assert ember.available_resources().get("CPU", 0) == free - 2
    ember.kill(heavy)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and ember.available_resources().get("CPU", 0) != free:
        time.sleep(0.05)
    assert ember.available_resources().get("CPU", 0) == free


def test_actor_goes_away_with_its_last_handle(cluster):
    c = Counter.remote()
    pid = ember.get(c.pid.remote())
    del c
    assert _wait_gone(pid)


def test_runtime_context(cluster):
    @ember.remote
    def task_ids():
        ctx = ember.get_runtime_context()
        return ctx.get_job_id(), ctx.get_task_id(), ctx.get_actor_id(), ctx.get_node_id()

    @ember.remote
    class Reporter:
        def ids(self):
            ctx = ember.get_runtime_context()
            return ctx.get_job_id(), ctx.get_task_id(), ctx.get_actor_id(), ctx.get_node_id()

    driver = ember.get_runtime_context()
    job, task, actor, node = ember.get(task_ids.remote())
    assert job == driver.get_job_id() and task and actor is None and node == driver.get_node_id()
    r = Reporter.remote()
    job, task, actor, node = ember.get(r.ids.remote())
    assert actor == r._ember_actor_id.hex() and task and job == driver.get_job_id()
    assert driver.get_task_id() is None and driver.get_actor_id() is None
