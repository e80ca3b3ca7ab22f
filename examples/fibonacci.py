"""Seed 004: Fibonacci sequences computed locally and as remote tasks.

From "Writing your first distributed Python application with Ray" (Michael Galarnyk, KDnuggets
2021), with ``import ember as ray``.
"""

import os
import time

import ember as ray


# Normal Python
def fibonacci_local(sequence_size):
    fibonacci = []
    for i in range(0, sequence_size):
        if i < 2:
            fibonacci.append(i)
            continue
        fibonacci.append(fibonacci[i - 1] + fibonacci[i - 2])
    return sequence_size


# Ray task
@ray.remote
def fibonacci_distributed(sequence_size):
    fibonacci = []
    for i in range(0, sequence_size):
        if i < 2:
            fibonacci.append(i)
            continue
        fibonacci.append(fibonacci[i - 1] + fibonacci[i - 2])
    return sequence_size


# Normal Python
def run_local(sequence_size):
    start_time = time.time()
    results = [fibonacci_local(sequence_size) for _ in range(os.cpu_count())]
    duration = time.time() - start_time
    print(f"Sequence size: {sequence_size}, Local execution time: {duration}")
    return results


# Ray
def run_remote(sequence_size):
    # Starting Ray
    ray.init()
    start_time = time.time()
    results = ray.get([fibonacci_distributed.remote(sequence_size) for _ in range(os.cpu_count())])
    duration = time.time() - start_time
    print(f"Sequence size: {sequence_size}, Remote execution time: {duration}")
    return results


if __name__ == "__main__":
    run_local(100000)
    run_remote(100000)
    # To explicitly stop or restart Ray, use the shutdown API
    ray.shutdown()
