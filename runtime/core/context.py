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
    """What ``get_runtime_context`` reports about the task running in this thread or coroutine,
    and the placement group it runs in (whose ``capture_child_tasks`` puts the tasks it submits
    there too)."""

    __slots__ = ("task_id", "name", "placement_group", "capture_child_tasks")

    def __init__(
        self, task_id: bytes, name: str, placement_group: bytes = b"", capture_child_tasks: bool = False
    ) -> None:
        global capturing
        self.task_id = task_id
        self.name = name
        self.placement_group = placement_group
        self.capture_child_tasks = capture_child_tasks
        if capture_child_tasks:
            capturing = True


task_context: contextvars.ContextVar[TaskContext | None] = contextvars.ContextVar(
    "ember_task", default=None
)

# Set in a worker that hosts an actor.
actor_id: bytes = b""
actor_restarted = False
actor_placement_group: bytes = b""
actor_capture_child_tasks = False
# Set once a task or actor that captures its children has run in this process: until then (in
# a driver, always) a submission need not look for a group to put its task in.
capturing = False


def current_placement_group() -> tuple[bytes, bool]:
    """The placement group the running task or actor is in (b"" for none), and whether it
    captures its children: Ray's ``get_current_placement_group`` and capture rule."""
    current = task_context.get()
    if current is not None and current.placement_group:
        return current.placement_group, current.capture_child_tasks
    return actor_placement_group, actor_capture_child_tasks

# Where this process runs: set by the driver's init and at a worker's start (hex strings).
node_id = ""
worker_id = ""
