"""Seed 000: sixteen sleeping tasks, first with concurrent.futures, then as remote tasks.

From "Perform Distributed Computing Easily Using Ray in Python" (Utpal Kumar, 2021), with
``import ember as ray``. The article ran ``ray.init()`` on a machine with more cores than this
one; ``num_cpus=16`` gives every sleep a CPU, so the wall time approaches the longest sleep.
"""

import concurrent.futures
import time

import ember as ray

Stime = time.perf_counter()
tasks = []
sleepTimes = [0.1, 0.2, 0.1, 0.5, 0.7, 0.9, 0.5, 0.4, 1.5, 1.3, 1.0, 0.3, 0.7, 0.6, 0.3, 0.8]
print(f"Total time of sleep: {sum(sleepTimes)} for {len(sleepTimes)} tasks")


def my_awesome_function(sleepTime=0.1):
    time.sleep(sleepTime)
    return f"Sleep time {sleepTime}"


if __name__ == "__main__":
    all_results = []
    with concurrent.futures.ProcessPoolExecutor() as executor:
        tasks = [executor.submit(my_awesome_function, sleep) for sleep in sleepTimes]
        for ff in concurrent.futures.as_completed(tasks):
            all_results.append(ff.result())
    print(f"concurrent.futures: finished in {time.perf_counter()-Stime:.2f}")

    Stime = time.perf_counter()
    # Start Ray.
    ray.init(num_cpus=16)

    @ray.remote  # convert to a function that can be executed remotely and asynchronously
    def my_awesome_function(sleepTime=0.1):  # noqa: F811 - the article redefines it
        time.sleep(sleepTime)
        return f"Sleep time {sleepTime}"

    tasks = []
    for sleep in sleepTimes:
        tasks.append(my_awesome_function.remote(sleep))
    all_results = ray.get(tasks)
    print(f"Finished in {time.perf_counter()-Stime:.2f}")
    print(all_results[:3], "...")
