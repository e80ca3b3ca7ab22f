"""The GPUs the code running in this worker may use, and ``CUDA_VISIBLE_DEVICES`` saying so.

The node agent gives each lease its devices; the owner sends their ids with every task it runs
on the lease (``TaskSpec.gpu_ids``), and the worker sets ``CUDA_VISIBLE_DEVICES`` to them before
each task, as Ray does: a worker kept for reuse serves lease after lease, each with devices of
its own, and a task without GPUs sees none (the variable set, and empty). An actor's devices are
set once, before its constructor, and stay; its methods may change the variable themselves.

CUDA reads the variable once per process: a library that started CUDA in an earlier task keeps
that task's devices. That is why a GPU task gets a fresh worker unless it says ``max_calls=0``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

VISIBLE = "CUDA_VISIBLE_DEVICES"

# The devices of the running task or actor, by the node's ids.
ids: list[str] = []
# Whether the node named its devices from CUDA_VISIBLE_DEVICES (seen at the worker's start):
# then ids are names, returned as strings; else they are the indices 0..N-1, returned as ints.
_named = False


def remember_start_environment() -> None:
    """Called once as the worker starts, before any task has set the variable."""
    global _named
    _named = VISIBLE in os.environ


def use(gpu_ids: Iterable[str]) -> None:
    global ids
    ids = list(gpu_ids)
    value = ",".join(ids)
    if os.environ.get(VISIBLE) != value:
        os.environ[VISIBLE] = value


def gpu_ids() -> list[int] | list[str]:
    """``ray.get_gpu_ids()``: the running task's or actor's devices ([] in a driver)."""
    if _named or not all(device.isdigit() for device in ids):
        return list(ids)
    return [int(device) for device in ids]
