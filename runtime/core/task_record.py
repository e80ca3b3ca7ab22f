"""What an owner remembers about a task it submitted, from ``.remote()`` to its result."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ember.runtime.objects import ids
from ember.runtime.wire.resources import Shape, ShapeKey

if TYPE_CHECKING:
    from ember.runtime.core.task_submitter import Lease
    from ember.runtime.objects.object_ref import ObjectRef
    from ember.runtime.wire.protocol import ember_pb2 as pb


@dataclass(frozen=True, slots=True)
class FunctionDescriptor:
    """A remote function as it travels: pickled once per process, cached by content hash."""

    name: str
    function_id: bytes
    data: bytes


@dataclass(frozen=True, slots=True)
class TaskOptions:
    """A task's options, resolved once per ``.options()`` call rather than per submission."""

    name: str
    shape: Shape
    key: ShapeKey
    num_returns: int = 1
    max_retries: int = 3
    # True (any exception), False, or the qualified names of the exception classes to retry.
    retry_exceptions: bool | tuple[str, ...] = False
    strategy: str = "DEFAULT"  # or "SPREAD"


@dataclass(frozen=True, slots=True)
class ActorOptions:
    """An actor's options, resolved once per ``.options()`` call."""

    class_name: str
    shape: Shape  # what placing it needs
    hold: Shape  # what it keeps while alive
    max_restarts: int = 0
    max_task_retries: int = 0
    max_concurrency: int = 1
    is_async: bool = False
    name: str = ""
    namespace: str = ""
    detached: bool = False
    get_if_exists: bool = False


# Task states, in the order a task passes through them.
RESOLVING = "resolving"  # waiting for its top-level ObjectRef arguments
QUEUED = "queued"  # waiting for a lease of its shape
RUNNING = "running"  # pushed to a worker
FINISHED = "finished"


class TaskRecord:
    __slots__ = (
        "task_id",
        "function",
        "options",
        "args",
        "deps",
        "nested",
        "arg_values",
        "unresolved",
        "return_ids",
        "attempt",
        "state",
        "lease",
        "estimate",
        "cancelled",
        "force_cancel",
        "last_failure",
        "actor_id",
        "method",
        "queue",
        "submitted",
        "preemptions",
    )

    def __init__(
        self,
        task_id: bytes,
        function: FunctionDescriptor,
        options: TaskOptions,
        args: bytes,
        deps: list[ObjectRef],
        nested: list[ObjectRef],
        return_ids: list[bytes],
    ) -> None:
        self.task_id = task_id
        self.function = function
        self.options = options
        self.args = args
        self.deps = deps
        self.nested = nested
        self.arg_values: list[pb.ObjectValue | None] | None = None
        self.unresolved = 0
        self.return_ids = return_ids
        self.attempt = 0
        self.state = RESOLVING
        self.lease: Lease | None = None
        self.estimate = 0.0
        self.cancelled = False
        self.force_cancel = False
        self.last_failure = ""
        self.actor_id: bytes | None = None  # set on actor calls
        self.method = ""
        self.queue: Any = None  # the submitter's queue it waits in
        self.submitted = time.monotonic()
        # Attempts stopped because their node was drained: they use up no retry.
        self.preemptions = 0

    @property
    def name(self) -> str:
        return self.options.name

    def retries_left(self) -> int:
        if self.options.max_retries < 0:  # -1: retry forever, as in Ray
            return 1
        return self.options.max_retries - (self.attempt - self.preemptions)

    def describe(self) -> str:
        return f"{self.options.name} (task {ids.short_task(self.task_id)})"

    def __repr__(self) -> str:
        return f"<TaskRecord {self.describe()} {self.state} attempt={self.attempt}>"

    def forget_arguments(self) -> None:
        """Drop what the task held for its arguments once it can never run again."""
        self.deps = []
        self.nested = []
        self.arg_values = None
        self.lease = None

