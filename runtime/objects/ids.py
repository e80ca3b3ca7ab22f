"""Identifiers for jobs, tasks, objects, workers and nodes.

A task id is an 8-byte random prefix chosen once per process plus an 8-byte counter, so minting
one costs neither a syscall nor a lock (``itertools.count`` is atomic under the GIL). An object
id is the id of the task that creates it plus a 4-byte return index; ``put`` objects belong to
a per-process pseudo task.
"""

from __future__ import annotations

import itertools
import os

TASK_ID_SIZE = 16
OBJECT_ID_SIZE = TASK_ID_SIZE + 4


class IdMint:
    """Mints task ids unique across the cluster; create one per process (after any fork)."""

    def __init__(self) -> None:
        self._prefix = os.urandom(8)
        self._counter = itertools.count(1)

    def task_id(self) -> bytes:
        return self._prefix + next(self._counter).to_bytes(8, "big")


def object_id(task_id: bytes, index: int) -> bytes:
    return task_id + index.to_bytes(4, "big")


def task_of(object_id: bytes) -> bytes:
    return object_id[:TASK_ID_SIZE]


def random_id(size: int = 16) -> bytes:
    return os.urandom(size)


def short(identifier: bytes) -> str:
    """A short hex form for log lines and error messages."""
    return identifier.hex()[:12]


def short_task(task_id: bytes) -> str:
    """``1f3a9c02.17``: the owner's prefix and the task's counter, unique and readable."""
    return f"{task_id[:4].hex()}.{int.from_bytes(task_id[8:16], 'big')}"
