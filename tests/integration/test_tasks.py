"""Tasks and objects through the public API, on a real local cluster."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

import ember
from ember.exceptions import GetTimeoutError, TaskError, TaskUnschedulableError
from tests.overlap import all_at_once, run_together, wait_for_file


@ember.remote
def add_one(x):
    return x + 1


@ember.remote
def add(x, y):
    return x + y


@ember.remote
def identity(x):
    return x


@ember.remote(num_returns=3)
def three(x):
    return x, x * 2, x * 3


@ember.remote
def pid():
    return os.getpid()


@ember.remote
def sleep_then(seconds, value):
    time.sleep(seconds)
    return value


def test_init_context_repr_and_resources(cluster):
    assert repr(cluster).startswith("EmberContext(address='ember://127.0.0.1:")
    assert ember.is_initialized()
    total = ember.cluster_resources()
    assert total["CPU"] == 4
    assert total["custom"] == 2
    assert total["memory"] > 0 and total["object_store_memory"] > 0
    nodes = ember.nodes()
    assert len(nodes) == 1 and nodes[0]["Alive"] and nodes[0]["Resources"]["CPU"] == 4


def test_remote_and_get(cluster):
    assert ember.get(add_one.remote(1)) == 2
    assert ember.get([add_one.remote(i) for i in range(100)]) == list(range(1, 101))
    assert ember.get([]) == []


def test_kwargs_and_defaults(cluster):
    @ember.remote
    def f(a, b=10, *rest, c=5, **more):
        return (a, b, rest, c, more)

    assert ember.get(f.remote(1)) == (1, 10, (), 5, {})
    assert ember.get(f.remote(1, 2, 3, c=4, d=6)) == (1, 2, (3,), 4, {"d": 6})


def test_calling_a_remote_function_directly_fails(cluster):
    with pytest.raises(TypeError, match=r"try 'add_one.remote\(\)'"):
        add_one(1)


def test_refs_as_arguments_are_resolved_top_level_only(cluster):
    ref = ember.put(41)
    assert ember.get(add_one.remote(ref)) == 42
    assert ember.get(add.remote(x=ref, y=add_one.remote(ref))) == 83

    @ember.remote
    def inspect(items):
        return [type(item).__name__ for item in items], ember.get(items[0])

    names, value = ember.get(inspect.remote([ref]))
    assert names == ["ObjectRef"] and value == 41


def test_tasks_can_return_refs(cluster):
    @ember.remote
    def make():
        return ember.put("inner value")

    inner = ember.get(make.remote())
    assert isinstance(inner, ember.ObjectRef)
    assert ember.get(inner) == "inner value"


def test_chained_dependencies(cluster):
    ref = ember.put(0)
    for _ in range(20):
        ref = add_one.remote(ref)
    assert ember.get(ref) == 20


def test_num_returns(cluster):
    a, b, c = three.remote(7)
    assert ember.get([a, b, c]) == [7, 14, 21]
    assert ember.get(three.options(num_returns=3).remote(1)) == [1, 2, 3]

    @ember.remote(num_returns=0)
    def nothing():
        return None

    assert nothing.remote() is None

    @ember.remote(num_returns=2)
    def wrong():
        return 1

    x, _ = wrong.remote()
    with pytest.raises(TaskError, match="num_returns=2"):
        ember.get(x)


def test_put_get_values(cluster):
    values = [None, 1, "text", b"bytes" * 1000, {"a": [1, 2]}, np.arange(10)]
    refs = [ember.put(v) for v in values]
    got = ember.get(refs)
    assert got[:5] == values[:5]
    assert np.array_equal(got[5], values[5])
    with pytest.raises(TypeError, match="put on an ObjectRef"):
        ember.put(refs[0])


def test_large_values_travel(cluster):
    array = np.random.default_rng(0).random(2_000_000)  # 16 MB
    ref = ember.put(array)
    assert ember.get(identity.remote(ref)).sum() == pytest.approx(array.sum())


@ember.remote
def after_gate(gate, value):
    assert wait_for_file(gate), f"nobody opened {gate}"
    return value


def test_get_timeout(cluster, tmp_path):
    gate = tmp_path / "gate"
    ref = after_gate.remote(str(gate), "late")
    with pytest.raises(GetTimeoutError, match="timed out after 0.3s") as info:
        ember.get(ref, timeout=0.3)
    assert isinstance(info.value, TimeoutError)
    assert ember.wait([ref], timeout=0)[1] == [ref]  # gave up while the task still ran
    gate.touch()
    assert ember.get(ref, timeout=60) == "late"


def test_wait(cluster, tmp_path):
    gate = tmp_path / "gate"
    fast = sleep_then.remote(0, "fast")
    slow = after_gate.remote(str(gate), "slow")
    ready, not_ready = ember.wait([slow, fast], num_returns=1, timeout=60)
    assert ready == [fast] and not_ready == [slow]
    ready, not_ready = ember.wait([slow, fast], num_returns=2, timeout=0.1)
    assert ready == [fast] and not_ready == [slow]
    gate.touch()
    ready, not_ready = ember.wait([slow, fast], num_returns=2)
    assert ready == [slow, fast] and not_ready == []
    with pytest.raises(ValueError, match="unique"):
        ember.wait([fast, fast])
    with pytest.raises(ValueError, match="cannot exceed"):
        ember.wait([fast], num_returns=2)
    with pytest.raises(TypeError):
        ember.wait(fast)  # type: ignore[arg-type]


def test_get_validates_input(cluster):
    with pytest.raises(ValueError, match="ObjectRef"):
        ember.get(1)
    with pytest.raises(ValueError, match="list of ObjectRefs"):
        ember.get([1])


def test_parallelism_uses_every_cpu(cluster, tmp_path):
    @ember.remote
    def together(i):
        return run_together(str(tmp_path), str(i), 4)

    spans = ember.get([together.remote(i) for i in range(4)], timeout=120)
    assert all(span.met for span in spans), "the four tasks never ran at the same time"
    assert all_at_once(spans) and len({span.pid for span in spans}) == 4, spans


def test_options_validation():
    with pytest.raises(ValueError, match="invalid option 'num_cpu'"):
        ember.remote(num_cpu=1)(lambda: None)
    with pytest.raises(ValueError, match="num_cpus must be a number >= 0"):
        add_one.options(num_cpus=-1)
    with pytest.raises(ValueError, match="use num_cpus/num_gpus"):
        add_one.options(resources={"CPU": 1})
    with pytest.raises(ValueError, match=r"runtime_env.env_vars.A must be a string, not int"):
        add_one.options(runtime_env={"env_vars": {"A": 1}})
    with pytest.raises(ValueError, match=r"runtime_env.conda is not supported"):
        add_one.options(runtime_env={"conda": "env"})


def test_custom_resources_and_fractional_cpus(cluster):
    @ember.remote(resources={"custom": 1}, num_cpus=0.5)
    def needs_custom():
        return "ran"

    assert ember.get([needs_custom.remote() for _ in range(4)]) == ["ran"] * 4


def test_infeasible_task_fails_fast_naming_the_shape(cluster):
    @ember.remote(num_cpus=64)
    def huge():
        return 1

    # Fails, rather than waiting for a node that will never come (a GetTimeoutError).
    with pytest.raises(TaskUnschedulableError, match=r"needs \{CPU: 64\}.*largest node: \{CPU: 4"):
        ember.get(huge.remote(), timeout=20)
    with pytest.raises(TaskUnschedulableError, match="missing_resource"):
        ember.get(add_one.options(resources={"missing_resource": 1}).remote(1), timeout=20)


def test_available_resources_follow_running_tasks(cluster, tmp_path):
    gate = tmp_path / "gate"
    ref = after_gate.options(num_cpus=3).remote(str(gate), None)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and ember.available_resources().get("CPU", 0) != 1:
        time.sleep(0.05)
    assert ember.available_resources().get("CPU", 0) == 1
    gate.touch()
    ember.get(ref, timeout=60)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and ember.available_resources().get("CPU", 0) != 4:
        time.sleep(0.05)
    assert ember.available_resources()["CPU"] == 4


def test_reinit_raises_unless_ignored(cluster):
    with pytest.raises(RuntimeError, match="init twice"):
        ember.init()
    assert ember.init(ignore_reinit_error=True) is cluster


def test_workers_are_reused(cluster):
    pids = set(ember.get([pid.remote() for _ in range(200)]))
    assert len(pids) <= 8
