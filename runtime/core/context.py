"""The process's current owner core: set by ``init`` in a driver and at start in a worker."""

from __future__ import annotations

import contextvars
from typing import TYPE_CHECKING

from ember.runtime.objects import object_ref

if TYPE_CHECKING:
    from ember.runtime.core.owner import Owner

_core: Owner | None = None


def current_core() -> Owner | None:
    return _core


object_ref.set_core_lookup(current_core)


def set_core(core: Owner | None) -> None:
    global _core
    _core = core


def require_core() -> Owner:
    core = _core
    if core is None:
        raise RuntimeError(
            "ember is not initialized in this process: call ember.init() first"
        )
    return core


class TaskContext:
    """What ``get_runtime_context`` reports about the task running in this thread or coroutine."""

    __slots__ = ("task_id", "name")

    def __init__(self, task_id: bytes, name: str) -> None:
        self.task_id = task_id
        self.name = name


task_context: contextvars.ContextVar[TaskContext | None] = contextvars.ContextVar(
    "ember_task", default=None
)

# Set in a worker that hosts an actor.
actor_id: bytes = b""
actor_restarted = False

# Where this process runs: set by the driver's init and at a worker's start (hex strings).
node_id = ""
worker_id = ""
