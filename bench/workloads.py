"""The workloads, written once against ``systems`` adapters.

Each returns ``(value, unit)``; units ending in ``/s`` are better when higher, ``s`` when lower.
Functions are module-level so every system can ship them to its workers.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from typing import Any

Result = tuple[float, str]


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


CORE = {
    "tasks_sync": tasks_sync,
    "tasks_async": tasks_async,
    "tasks_1kib": tasks_1kib,
    "put_get_small": put_get_small,
    "seed_matrix_dag": seed_matrix_dag,
    "seed_map_tree_reduce": seed_map_tree_reduce,
    "seed_fibonacci": seed_fibonacci,
}
WIDE = {"seed_sleep16": seed_sleep16}
