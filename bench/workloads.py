"""The workloads, written once against ``systems`` adapters.

Each returns ``(value, unit)``; units ending in ``/s`` are better when higher, ``s`` and ``ms``
when lower. A workload returns None for a system with no equivalent of what it measures (the
report prints "-"). Functions and actor classes are module-level so every system can ship them
to its workers.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

Result = tuple[float, str]
Workload = Callable[[Any], Result | None]

MB = 10**6


def noop() -> None:
    return None


def echo(x: Any) -> Any:
    return x


def sleep_for(seconds: float) -> str:
    time.sleep(seconds)
    return f"Sleep time {seconds}"


def create_matrix(size: list[int]) -> Any:
    import numpy as np

    return np.random.normal(size=size)


def multiply_matrices(x: Any, y: Any) -> Any:
    import numpy as np

    return np.dot(x, y)


def sum_matrices(x: Any, y: Any) -> Any:
    import numpy as np

    return np.add(x, y)


def increment(x: int) -> int:
    return x + 1


def add(x: int, y: int) -> int:
    return x + y


def fibonacci(sequence_size: int) -> int:
    fib: list[int] = []
    for i in range(sequence_size):
        if i < 2:
            fib.append(i)
            continue
        fib.append(fib[i - 1] + fib[i - 2])
    return sequence_size


def array_sum(array: Any) -> float:
    return float(array.sum())


class Pinger:
    """The trivial actor: what creating one and calling it costs, with no work inside."""

    def ping(self) -> None:
        return None


class Doubler:
    """An actor of an ActorPool: a call that does almost nothing, so the pool's cost shows."""

    def double(self, x: int) -> int:
        return 2 * x


class ParameterServer:
    """The seed's ParameterServer; with a shard's size, its identical ParameterServerShard."""

    def __init__(self, dim: int) -> None:
        import numpy as np

        self.parameters = np.zeros(dim)

    def get_parameters(self) -> Any:
        return self.parameters

    def update_parameters(self, update: Any) -> None:
        self.parameters += update


def call_round_robin(calls: Any, handles: list[Any], n: int) -> int:
    """A caller task of ``actor_calls_n_n``: submits all its calls, then waits for them at once."""
    calls.get([calls.call(handles[i % len(handles)], "ping") for i in range(n)])
    return n


def ps_worker(calls: Any, ps: Any, dim: int, num_iters: int) -> None:
    """The seed's ``worker``: reads the parameters, and sends an update without waiting for it."""
    import numpy as np

    for _ in range(num_iters):
        parameters = calls.get(calls.call(ps, "get_parameters"))
        update = 1e-3 * parameters + np.random.rand(dim)
        calls.call(ps, "update_parameters", update)


def sharded_ps_worker(calls: Any, total_dim: int, num_iters: int, *ps_shards: Any) -> None:
    """The seed's ``worker_task``: gathers every shard, sends each its slice of a random update."""
    import numpy as np

    for _ in range(num_iters):
        parameter_shards = calls.get([calls.call(ps, "get_parameters") for ps in ps_shards])
        parameters = np.concatenate(parameter_shards)
        assert parameters.shape == (total_dim,)
        update = np.random.rand(total_dim)
        for ps, update_shard in zip(ps_shards, np.split(update, len(ps_shards)), strict=True):
            calls.call(ps, "update_parameters", update_shard)


def _median(run: Callable[[], float], repeat: int) -> float:
    return statistics.median(run() for _ in range(repeat))


def tasks_sync(system: Any, repeat: int = 3, n: int = 1000) -> Result:
    submit = system.task(noop)
    system.get(submit())

    def run() -> float:
        start = time.perf_counter()
        for _ in range(n):
            system.get(submit())
        return n / (time.perf_counter() - start)

    return _median(run, repeat), "tasks/s"


def tasks_async(system: Any, repeat: int = 3, n: int = 10_000) -> Result:
    submit = system.task(noop)
    system.get(submit())

    def run() -> float:
        start = time.perf_counter()
        system.get([submit() for _ in range(n)])
        return n / (time.perf_counter() - start)

    return _median(run, repeat), "tasks/s"


def tasks_1kib(system: Any, repeat: int = 3, n: int = 5000) -> Result:
    submit = system.task(echo)
    payload = os.urandom(1024)
    system.get(submit(payload))

    def run() -> float:
        start = time.perf_counter()
        results = system.get([submit(payload) for _ in range(n)])
        assert len(results) == n and results[-1] == payload
        return n / (time.perf_counter() - start)

    return _median(run, repeat), "tasks/s"


def put_get_small(system: Any, repeat: int = 3, n: int = 2000) -> Result:
    value = {"key": "value", "numbers": list(range(10))}

    def run() -> float:
        start = time.perf_counter()
        for _ in range(n):
            assert system.get(system.put(value)) == value
        return n / (time.perf_counter() - start)

    return _median(run, repeat), "ops/s"


def seed_matrix_dag(system: Any, repeat: int = 3) -> Result:
    create, multiply, total = (
        system.task(create_matrix),
        system.task(multiply_matrices),
        system.task(sum_matrices),
    )
    system.get(create([10, 10]))

    def run() -> float:
        start = time.perf_counter()
        m = [create([1000, 1000]) for _ in range(4)]
        result = system.get(total(multiply(m[0], m[1]), multiply(m[2], m[3])))
        assert result.shape == (1000, 1000)
        return time.perf_counter() - start

    return _median(run, repeat), "s"


def seed_map_tree_reduce(system: Any, repeat: int = 3) -> Result:
    inc, plus = system.task(increment), system.task(add)

    def tree(xs: list[Any]) -> Any:
        if len(xs) == 2:
            return plus(xs[0], xs[1])
        if len(xs) == 1:
            return xs[0]
        mid = len(xs) // 2 + 1
        return plus(tree(xs[:mid]), tree(xs[mid:]))

    system.get(inc(0))

    def run() -> float:
        start = time.perf_counter()
        mapped = system.get([inc(x) for x in range(100)])
        assert system.get(tree(mapped)) == 5050
        return time.perf_counter() - start

    return _median(run, repeat), "s"


def seed_fibonacci(system: Any, repeat: int = 3) -> Result:
    submit = system.task(fibonacci)
    system.get([submit(100_000) for _ in range(os.cpu_count() or 1)])

    def run() -> float:
        start = time.perf_counter()
        system.get([submit(100_000) for _ in range(os.cpu_count() or 1)])
        return time.perf_counter() - start

    return _median(run, repeat), "s"


def seed_sleep16(system: Any, repeat: int = 3) -> Result:
    """Needs a cluster with 16 CPU slots: sum of sleeps 9.9 s, longest 1.5 s."""
    submit = system.task(sleep_for)
    sleeps = [0.1, 0.2, 0.1, 0.5, 0.7, 0.9, 0.5, 0.4, 1.5, 1.3, 1.0, 0.3, 0.7, 0.6, 0.3, 0.8]

    def run() -> float:
        start = time.perf_counter()
        system.get([submit(s) for s in sleeps])
        return time.perf_counter() - start

    return _median(run, repeat), "s"


# ------------------------------------------------------------------ actors


def actor_create(system: Any, repeat: int = 3, n: int = 20) -> Result:
    """Counts an actor only once it has answered a call: creation is asynchronous in ember/Ray."""

    def run() -> float:
        start = time.perf_counter()
        handles = system.actors(Pinger, n)
        system.get([system.call(handle, "ping") for handle in handles])
        rate = n / (time.perf_counter() - start)
        for handle in handles:  # so that the repetitions do not pile actors up
            system.kill(handle)
        return rate

    return _median(run, repeat), "actors/s"


def actor_calls_sync(system: Any, repeat: int = 3, n: int = 2000) -> Result:
    [handle] = system.actors(Pinger, 1)
    system.get(system.call(handle, "ping"))

    def run() -> float:
        start = time.perf_counter()
        for _ in range(n):
            system.get(system.call(handle, "ping"))
        return n / (time.perf_counter() - start)

    rate = _median(run, repeat)
    system.kill(handle)
    return rate, "calls/s"


def actor_calls_async(system: Any, repeat: int = 3, n: int = 10_000) -> Result:
    [handle] = system.actors(Pinger, 1)
    system.get(system.call(handle, "ping"))

    def run() -> float:
        start = time.perf_counter()
        system.get([system.call(handle, "ping") for _ in range(n)])
        return n / (time.perf_counter() - start)

    rate = _median(run, repeat)
    system.kill(handle)
    return rate, "calls/s"


def actor_pool_map(
    system: Any, repeat: int = 3, n: int = 2000, actors: int = 4, ordered: bool = True
) -> Result | None:
    """``ActorPool.map`` (or ``map_unordered``) of ``n`` values over ``actors`` actors, driven
    as Ray documents it: each actor takes the next value when its result is returned."""
    if not hasattr(system, "actor_pool"):
        return None  # Dask has no ActorPool
    handles = system.actors(Doubler, actors)
    system.get([system.call(handle, "double", 0) for handle in handles])
    pool = system.actor_pool(handles)

    def run() -> float:
        start = time.perf_counter()
        mapped = pool.map if ordered else pool.map_unordered
        results = list(mapped(lambda actor, v: actor.double.remote(v), range(n)))
        rate = n / (time.perf_counter() - start)
        assert sorted(results) == [2 * v for v in range(n)]
        return rate

    rate = _median(run, repeat)
    for handle in handles:
        system.kill(handle)
    return rate, "values/s"


def actor_calls_n_n(
    system: Any, repeat: int = 3, n: int = 2000, actors: int = 2, callers: int = 2
) -> Result:
    """Calls made from tasks, not the driver: each caller spreads its calls over every actor."""
    handles = system.actors(Pinger, actors)
    submit = system.task(call_round_robin)
    calls = system.in_task()
    system.get([submit(calls, handles, actors) for _ in range(callers)])

    def run() -> float:
        start = time.perf_counter()
        assert system.get([submit(calls, handles, n) for _ in range(callers)]) == [n] * callers
        return callers * n / (time.perf_counter() - start)

    rate = _median(run, repeat)
    for handle in handles:
        system.kill(handle)
    return rate, "calls/s"


def seed_parameter_server(
    system: Any, repeat: int = 3, dim: int = 32, workers: int = 2, iterations: int = 1000
) -> Result:
    """Seed 002, first half: 2 worker tasks x 1000 iterations against one actor.

    As in the seed, the driver reads the parameters three times while the workers train.
    """
    [ps] = system.actors(ParameterServer, 1, dim)
    submit = system.task(ps_worker)
    calls = system.in_task()
    system.get(submit(calls, ps, dim, 1))

    def run() -> float:
        start = time.perf_counter()
        results = [submit(calls, ps, dim, iterations) for _ in range(workers)]
        for _ in range(3):
            assert system.get(system.call(ps, "get_parameters")).shape == (dim,)
        system.get(results)
        return time.perf_counter() - start

    elapsed = _median(run, repeat)
    system.kill(ps)
    return elapsed, "s"


def seed_sharded_ps(
    system: Any,
    total_dim: int = 10**8 // 8,
    shards: int = 2,
    workers: int = 4,
    iterations: int = 10,
    warmup_iterations: int = 40,
) -> Result:
    """Seed 002, second half: 100 MB of parameters over 2 shard actors, 4 workers x 10 iterations.

    Timed once, as the seed does: its untimed warm-up alone moves some 8 GB.
    """
    ps_shards = system.actors(ParameterServer, shards, total_dim // shards)
    submit = system.task(sharded_ps_worker)
    calls = system.in_task()
    system.get(submit(calls, total_dim, warmup_iterations, *ps_shards))
    start = time.perf_counter()
    system.get([submit(calls, total_dim, iterations, *ps_shards) for _ in range(workers)])
    elapsed = time.perf_counter() - start
    for ps in ps_shards:
        system.kill(ps)
    return elapsed, "s"


# ------------------------------------------------------------------ large objects


def put_array(system: Any, nbytes: int, repeat: int = 3) -> Result:
    """Each ref is dropped once timed, as in a loop, so the store may reuse its memory."""
    import numpy as np

    array = np.ones(nbytes // 8)

    def run() -> float:
        start = time.perf_counter()
        ref = system.put(array)
        elapsed = time.perf_counter() - start
        del ref
        return nbytes / 1e9 / elapsed

    return _median(run, repeat), "GB/s"


def get_array(system: Any, nbytes: int, repeat: int = 3) -> Result:
    """In ember and Ray a zero-copy view of the store, hence milliseconds; Dask copies it over."""
    import numpy as np

    array = np.ones(nbytes // 8)

    def run() -> float:
        ref = system.put(array)
        start = time.perf_counter()
        value = system.get(ref)
        elapsed = time.perf_counter() - start
        assert value.nbytes == nbytes
        del value, ref
        return elapsed * 1000

    return _median(run, repeat), "ms"


def arg_by_ref(system: Any, nbytes: int = 100 * MB, repeat: int = 3) -> Result:
    """The array is stored once; each task reads it from the store."""
    import numpy as np

    submit = system.task(array_sum)
    system.get(submit(np.ones(1)))
    ref = system.put(np.ones(nbytes // 8))

    def run() -> float:
        start = time.perf_counter()
        assert system.get(submit(ref)) == nbytes // 8
        return time.perf_counter() - start

    return _median(run, repeat), "s"


def arg_by_value(system: Any, nbytes: int = 100 * MB, repeat: int = 3) -> Result:
    """The array goes with each submission, so storing it is part of every call."""
    import numpy as np

    submit = system.task(array_sum)
    system.get(submit(np.ones(1)))
    array = np.ones(nbytes // 8)

    def run() -> float:
        start = time.perf_counter()
        assert system.get(submit(array)) == nbytes // 8
        return time.perf_counter() - start

    return _median(run, repeat), "s"


def transfer_between_nodes(system: Any, nbytes: int = 1000 * MB, repeat: int = 3) -> Result:
    """A task on the second node reads an array stored on the first: the bytes cross over.

    Each repetition stores a fresh array, so no copy cached on the second node from an earlier
    run can answer.
    """
    import numpy as np

    submit = system.task(array_sum, on_second_node=True)
    system.get(submit(np.ones(1)))
    array = np.ones(nbytes // 8)

    def run() -> float:
        ref = system.put(array)
        system.wait_all([ref])
        start = time.perf_counter()
        assert system.get(submit(ref)) == nbytes // 8
        elapsed = time.perf_counter() - start
        del ref
        return nbytes / 1e9 / elapsed

    return _median(run, repeat), "GB/s"


# ------------------------------------------------------------------ suites


CORE: dict[str, Workload] = {
    "tasks_sync": tasks_sync,
    "tasks_async": tasks_async,
    "tasks_1kib": tasks_1kib,
    "put_get_small": put_get_small,
    "seed_matrix_dag": seed_matrix_dag,
    "seed_map_tree_reduce": seed_map_tree_reduce,
    "seed_fibonacci": seed_fibonacci,
}
WIDE: dict[str, Workload] = {"seed_sleep16": seed_sleep16}
ACTORS: dict[str, Workload] = {
    "actor_create": actor_create,
    "actor_calls_sync": actor_calls_sync,
    "actor_calls_async": actor_calls_async,
    "actor_calls_n_n": actor_calls_n_n,
    "seed_parameter_server": seed_parameter_server,
}
OBJECTS: dict[str, Workload] = {
    "put_100mb": partial(put_array, nbytes=100 * MB),
    "put_1gb": partial(put_array, nbytes=1000 * MB),
    "get_100mb": partial(get_array, nbytes=100 * MB),
    "get_1gb": partial(get_array, nbytes=1000 * MB),
    "arg_by_ref_100mb": arg_by_ref,
    "arg_by_value_100mb": arg_by_value,
}


@dataclass(frozen=True)
class Suite:
    """Workloads that share one cluster, started fresh in a child process of its own.

    Separate suites keep what one leaves behind (actors, gigabytes in a store, a wider cluster)
    from weighing on another.
    """

    workloads: dict[str, Workload]
    num_cpus: int | None = None
    nodes: int = 1


ACTOR_POOL: dict[str, Workload] = {
    "actor_pool_map": actor_pool_map,
    "actor_pool_map_unordered": partial(actor_pool_map, ordered=False),
}

SUITES = {
    "core": Suite(CORE),
    "wide": Suite(WIDE, num_cpus=16),
    "actors": Suite(ACTORS),
    "actor_pool": Suite(ACTOR_POOL),
    "objects": Suite(OBJECTS),
    "sharded_ps": Suite({"seed_sharded_ps": seed_sharded_ps}),
    "two_nodes": Suite({"transfer_1gb_between_nodes": transfer_between_nodes}, num_cpus=2, nodes=2),
}

from placement import PLACEMENT  # noqa: E402 - its own module; only the driver runs it

SUITES["placement_groups"] = Suite(PLACEMENT, num_cpus=2, nodes=2)
