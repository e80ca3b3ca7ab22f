"""Seed 002: map, serial reduce and tree reduce over 100 numbers.

From the "Ray: Parallel & Distributed Computing" notebook (NavinKumarMNK, 2023), with
``import ember as ray``. The notebook's Modin cells need Modin and are left out; its dashboard
host was a container address, here it is loopback.
"""

import time
from typing import List

import ember as ray

ray.init(
    num_cpus=8,
    include_dashboard=True,
    dashboard_port=5000,
    dashboard_host="127.0.0.1",
    ignore_reinit_error=True,
)


def map_serial(function, xs):
    return [function(x) for x in xs]


def map_parallel(function: ray.remote, xs: List):
    return [function.remote(x) for x in xs]


# Execution code
def increment_regular(x):
    return x + 1


@ray.remote(num_cpus=4)
def increment_remote(x):
    return x + 1


def reduce_serial(function, xs):
    if len(xs) == 1:
        return xs[0]

    result = xs[0]
    for i in range(1, len(xs)):
        result = function(result, xs[i])

    return result


def reduce_parallel(function: ray.remote, xs: List):
    if len(xs) == 1:
        return xs[0]

    result = xs[0]
    for i in range(1, len(xs)):
        result = function.remote(result, xs[i])

    return result


def add_regular(x, y):
    return x + y


@ray.remote
def add_remote(x, y):
    return x + y


# recurisve overhead
def reduce_parallel_tree(function: ray.remote, xs: List):
    if len(xs) == 2:
        return function.remote(xs[0], xs[1])
    elif len(xs) == 1:
        return xs[0]

    mid = len(xs) // 2 + 1

    return function.remote(
        reduce_parallel_tree(function, xs[:mid]), reduce_parallel_tree(function, xs[mid:])
    )


def timed(label, thunk):
    start = time.perf_counter()
    value = thunk()
    print(f"{label}: {1000 * (time.perf_counter() - start):.1f} ms")
    return value


xs = [x for x in range(100)]

# map
results_serial = timed("map serial", lambda: map_serial(increment_regular, xs))
results_ids = timed("map parallel (submit)", lambda: map_parallel(increment_remote, xs))
results_parallel = timed("map parallel (get)", lambda: ray.get(results_ids))

# reduce
results_serial = timed("reduce serial", lambda: reduce_serial(add_regular, results_serial))
print(f"{results_serial = }")
results_ids = timed("reduce parallel (submit)", lambda: reduce_parallel(add_remote, results_parallel))
print("reduce parallel =", ray.get(results_ids))
results_ids = timed("tree reduce (submit)", lambda: reduce_parallel_tree(add_remote, results_parallel))
results_parallel = timed("tree reduce (get)", lambda: ray.get(results_ids))
print(f"{results_parallel = }")
