"""Parallelism shown by what the tasks record, not by how long the test took.

A bound on total time ("sixteen sleeps finish in under 3 s") turns red on a busy machine and
says nothing about why. Here each task stamps when it started and ended, and waits at a barrier
until every task that should run at the same time has started: tasks that cannot all run at
once never pass it, and say so when its wait (a bound against hanging, not a measurement) is
over. Stamps are ``time.monotonic()``, one clock for every process of a Linux machine.

Tasks call these from workers, so this module imports only the standard library.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from typing import NamedTuple

BARRIER_WAIT = 60.0  # seconds a task waits for the others before it gives up


class Span(NamedTuple):
    """When one task ran, and where."""

    start: float
    end: float
    pid: int
    met: bool  # every task it waited for had started


def arrive_and_wait(directory: str, name: str, count: int, wait: float = BARRIER_WAIT) -> bool:
    """Say this task has started (a file ``name`` in ``directory``), then wait until ``count``
    tasks have; False when they did not within ``wait`` seconds."""
    open(os.path.join(directory, name), "w").close()
    deadline = time.monotonic() + wait
    while len(os.listdir(directory)) < count:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def run_together(directory: str, name: str, count: int, then_sleep: float = 0.0) -> Span:
    """A task's body: start, wait for ``count`` tasks to have started, sleep, end."""
    start = time.monotonic()
    met = arrive_and_wait(directory, name, count)
    time.sleep(then_sleep)
    return Span(start, time.monotonic(), os.getpid(), met)


def all_at_once(spans: Iterable[Span]) -> bool:
    """Whether there was a moment when every task was running: the last start came before the
    first end."""
    spans = list(spans)
    return bool(spans) and max(s.start for s in spans) < min(s.end for s in spans)


def wait_for_file(path: str, wait: float = BARRIER_WAIT) -> bool:
    """Block until ``path`` exists (a test opens a gate by creating it); False if it never did."""
    deadline = time.monotonic() + wait
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True
