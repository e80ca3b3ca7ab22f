"""Seed 000: four random matrices, two products in parallel, then their sum.

From "Perform Distributed Computing Easily Using Ray in Python", with ``import ember as ray``.
"""

import time

import numpy as np

import ember as ray

ray.init()
Stime = time.perf_counter()


@ray.remote
def create_matrix(size):
    return np.random.normal(size=size)


@ray.remote
def multiply_matrices(x, y):
    return np.dot(x, y)


@ray.remote
def sum_matrices(x, y):
    return np.add(x, y)


m1 = create_matrix.remote([1000, 1000])
m2 = create_matrix.remote([1000, 1000])
m3 = create_matrix.remote([1000, 1000])
m4 = create_matrix.remote([1000, 1000])
m12 = multiply_matrices.remote(m1, m2)
m34 = multiply_matrices.remote(m3, m4)
a12_34 = sum_matrices.remote(m12, m34)
## Results
MM = ray.get(a12_34)
print(f"Finished in {time.perf_counter()-Stime:.2f}")
print("result", MM.shape, f"mean {MM.mean():.4f}")
