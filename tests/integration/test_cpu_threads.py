"""Numerical libraries in tasks and actors use as many threads as the task has CPUs, as Ray sets
``OMP_NUM_THREADS``: one by default (not one per core in every worker, which oversubscribes a
node), ``num_cpus=N`` gives N, and a value the user set in a ``runtime_env`` holds.

What the libraries really use is read from inside the task with threadpoolctl (numpy's BLAS
is loaded by the zygote before the worker forks, so the variable alone would prove nothing).
"""

from __future__ import annotations

import os

import pytest

import ember


@pytest.fixture(scope="module")
def cluster(monkeypatch_module):
    monkeypatch_module.delenv("OMP_NUM_THREADS", raising=False)
    ember.init(num_cpus=4)
    yield
    ember.shutdown()


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def _threads() -> tuple[str | None, list[int]]:
    import numpy  # noqa: F401  (loaded by the zygote already: its BLAS pool is what counts)
    from threadpoolctl import threadpool_info

    blas = [info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"]
    return os.environ.get("OMP_NUM_THREADS"), blas


@ember.remote
def threads_of_a_task():
    return _threads()


@ember.remote
class ThreadsOfAnActor:
    def threads(self):
        return _threads()


def test_a_task_has_one_thread_per_cpu(cluster) -> None:
    for _ in range(3):  # the same workers, leased in turn with one CPU and with two
        variable, blas = ember.get(threads_of_a_task.remote())
        assert variable == "1" and blas and set(blas) == {1}, (variable, blas)
        variable, blas = ember.get(threads_of_a_task.options(num_cpus=2).remote())
        assert variable == "2" and blas and set(blas) == {2}, (variable, blas)


def test_an_actor_has_its_cpus(cluster) -> None:
    plain = ThreadsOfAnActor.remote()
    assert ember.get(plain.threads.remote())[0] == "1"
    wide = ThreadsOfAnActor.options(num_cpus=2).remote()
    variable, blas = ember.get(wide.threads.remote())
    assert variable == "2" and set(blas) == {2}, (variable, blas)


def test_the_users_value_holds(cluster) -> None:
    env = {"env_vars": {"OMP_NUM_THREADS": "2"}}
    for cpus in (1, 3):
        variable, blas = ember.get(threads_of_a_task.options(num_cpus=cpus, runtime_env=env).remote())
        assert variable == "2" and set(blas) == {2}, (cpus, variable, blas)


def test_work_in_a_placement_group_bundle_counts_its_cpus(cluster) -> None:
    # In a bundle a task asks for CPU_group_* resources; they are CPUs all the same.
    from ember.util import placement_group, remove_placement_group
    from ember.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    pg = placement_group([{"CPU": 2}, {"CPU": 2}])
    ember.get(pg.ready(), timeout=60)
    try:
        task = threads_of_a_task.options(
            num_cpus=2, scheduling_strategy=PlacementGroupSchedulingStrategy(pg, 0)
        )
        variable, blas = ember.get(task.remote())
        assert variable == "2" and set(blas) == {2}, (variable, blas)
        actor = ThreadsOfAnActor.options(
            num_cpus=2, scheduling_strategy=PlacementGroupSchedulingStrategy(pg, 1)
        ).remote()
        variable, blas = ember.get(actor.threads.remote())
        assert variable == "2" and set(blas) == {2}, (variable, blas)
        ember.kill(actor)
    finally:
        remove_placement_group(pg)
