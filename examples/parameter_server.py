"""Seed 002: a parameter-server actor used from worker tasks, then a sharded one.

From the "Ray: Parallel & Distributed Computing" notebook (NavinKumarMNK, 2023), with
``import ember as ray``. Worker tasks receive the actor's handle; the driver reads the
parameters while they train and sees them change.
"""

import time

import numpy as np

import ember as ray

ray.init(ignore_reinit_error=True)

dim = 32


# Actor
@ray.remote
class ParameterServer:
    def __init__(self, dim):
        self.parameters = np.zeros(dim)

    def get_parameters(self):
        return self.parameters

    def update_parameters(self, update):
        self.parameters += update


ps = ParameterServer.remote(dim)
print(ps)


@ray.remote
def worker(ps, dim, num_iters):
    for _ in range(num_iters):
        parameters = ps.get_parameters.remote()
        parameters = ray.get(parameters)
        update = 1e-3 * parameters + np.random.rand(dim)

        ps.update_parameters.remote(update)


ray.get(worker.remote(ps, dim, 1))

start = time.perf_counter()
# starting worker
worker_results = [worker.remote(ps, dim, 1000) for _ in range(2)]

print(ray.get(ps.get_parameters.remote())[:4])
print(ray.get(ps.get_parameters.remote())[:4])
print(ray.get(ps.get_parameters.remote())[:4])  # Parameters are changing
ray.get(worker_results)
print(f"2 workers x 1000 iterations: {time.perf_counter() - start:.2f} s")


@ray.remote
class ParameterServerShard:
    def __init__(self, sharded_dim):
        self.parameters = np.zeros(sharded_dim)

    def get_parameters(self):
        return self.parameters

    def update_parameters(self, update):
        self.parameters += update


total_dim = (10**8) // 8
num_shards = 2

assert total_dim % num_shards == 0, "Parameters should totaly divide"

ps_shards = [ParameterServerShard.remote(total_dim // num_shards) for _ in range(num_shards)]

print(ps_shards)


@ray.remote
def worker_task(total_dim, num_iters, *ps_shards):
    for _ in range(num_iters):
        parameter_shards = ray.get([ps.get_parameters.remote() for ps in ps_shards])

        parameters = np.concatenate(parameter_shards)
        update = np.random.rand(total_dim)
        update_shards = np.split(update, len(ps_shards))

        for ps, us in zip(ps_shards, update_shards):
            ps.update_parameters.remote(us)


ray.get(worker_task.remote(total_dim, 40, *ps_shards))

start = time.perf_counter()
num_workers = 4
print(ray.get([worker_task.remote(total_dim, 10, *ps_shards) for _ in range(num_workers)]))
print(f"sharded: {num_workers} workers x 10 iterations: {time.perf_counter() - start:.2f} s")
