"""How many threads a task's numerical libraries may use: its whole CPUs, at least one.

A worker holds one CPU of its node by default, but OpenMP and BLAS start a thread per core of
the machine: two workers each multiplying matrices on a 2-core node run four threads on two
cores, and both slow down (the seed matrix DAG took 0.21 s instead of 0.13 s). Ray sets
``OMP_NUM_THREADS`` to a task's ``num_cpus`` for the same reason, unless the user set it.

The zygote imports numpy before it forks, so the variable alone is read too early to follow each
task: the node starts the zygote with ``OMP_NUM_THREADS=1`` (and the marker below) when its own
environment does not set it, and a worker resizes the libraries' pools (``threadpoolctl``) when
a task of another CPU count arrives: a ``num_cpus=4`` task gets four threads. When the user set
the variable (on the node, or in a ``runtime_env``'s ``env_vars``), that value holds for every
task, as in Ray.
"""

from __future__ import annotations

import os

VARIABLE = "OMP_NUM_THREADS"
# Set by the node beside OMP_NUM_THREADS=1 when it chose that value, not the user.
BY_LEASE = "EMBER_THREADS_BY_LEASE"

_current = 0  # the pools' size as this worker last set it (0: as the process started)


def start() -> None:
    """Called once as the worker starts: a value the user gave (a runtime_env's env_vars reach
    a worker forked from the zygote after numpy was loaded) is applied to the pools now."""
    global _current
    if os.environ.get(BY_LEASE):
        _current = 1
        return
    value = os.environ.get(VARIABLE, "")
    if value.isdigit() and int(value) > 0:
        _limit(int(value))


def use(threads: int) -> None:
    """Before each task (and an actor's constructor): ``threads`` is the lease's whole CPUs
    (0: one). Nothing happens unless the node chose the default and the count changes."""
    global _current
    threads = max(threads, 1)
    if threads == _current or not _current:
        return
    os.environ[VARIABLE] = str(threads)
    _limit(threads)
    _current = threads


def _limit(threads: int) -> None:
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads)
