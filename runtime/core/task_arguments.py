"""A task's arguments: how they travel, and waiting for the ObjectRefs among them.

Arguments travel inline in the task's spec; large ones are put in the object store first and
pass as refs (resolved to their values on the worker), as Ray does. A task whose top-level
arguments include refs waits (``RESOLVING``) until each of their values is present in this
process, then goes to its queue with the values (or their locations) attached; if one of them is
an error, the task ends with that error without running.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from ember.runtime.core.memory_store import ERROR, MemoryStore, StoredValue
from ember.runtime.core.task_record import RESOLVING, TaskRecord
from ember.runtime.objects import serialization, shm_object
from ember.runtime.objects.object_ref import ObjectRef
from ember.runtime.objects.shm_object import INLINE_THRESHOLD


def serialize_args(
    name: str, args: Sequence[Any], kwargs: dict[str, Any], put: Callable[[Any], ObjectRef]
) -> tuple[bytes, list[ObjectRef], list[ObjectRef]]:
    """The arguments' bytes, the refs among the top-level arguments (``deps``, resolved before
    the task runs) and the refs nested deeper (``nested``, held until the task's reply);
    ``put`` stores a large argument and returns its ref."""
    if any(_large(a) for a in args) or any(_large(v) for v in kwargs.values()):
        args = [put(a) if _large(a) else a for a in args]
        kwargs = {k: put(v) if _large(v) else v for k, v in kwargs.items()}
    data, deps, nested = serialization.serialize_args(name, args, kwargs)
    if len(data) > INLINE_THRESHOLD:
        # Big without a buffer to show for it (a long list, say): measure each one.
        args = [
            put(a) if type(a) is not ObjectRef and _pickled_size(a) > INLINE_THRESHOLD else a
            for a in args
        ]
        kwargs = {
            k: put(v) if type(v) is not ObjectRef and _pickled_size(v) > INLINE_THRESHOLD else v
            for k, v in kwargs.items()
        }
        data, deps, nested = serialization.serialize_args(name, args, kwargs)
    return data, deps, nested


def _large(value: Any) -> bool:
    """A top-level argument big enough to go through the object store (cheap to tell)."""
    if type(value) is ObjectRef:
        return False
    size = getattr(value, "nbytes", None)
    if isinstance(size, int):
        return size > INLINE_THRESHOLD
    if isinstance(value, bytes | bytearray | memoryview):
        return len(value) > INLINE_THRESHOLD
    return False


def _pickled_size(value: Any) -> int:
    return shm_object.serialize(value).inline_size


class ArgumentResolver:
    """Waits (on the I/O thread) for the values of a task's ref arguments.

    ``fetch`` asks the owners of borrowed refs for their values; ``failed`` ends a task with
    the error one of its arguments holds; ``ready`` is called once every value is present.
    """

    def __init__(
        self,
        store: MemoryStore,
        address: str,
        fetch: Callable[[list[ObjectRef]], None],
        failed: Callable[[TaskRecord, StoredValue], None],
        ready: Callable[[TaskRecord], None],
    ) -> None:
        self.store = store
        self.address = address
        self.fetch = fetch
        self.failed = failed
        self.ready = ready

    def resolve(self, task: TaskRecord) -> None:
        task.move(RESOLVING)
        task.arg_values = [None] * len(task.deps)
        task.unresolved = len(task.deps)
        for index, ref in enumerate(task.deps):
            if ref._id not in self.store and ref._owner_address != self.address:
                self.fetch([ref])
            self.store.on_ready(ref._id, partial(self._dep_ready, task, index))

    def _dep_ready(self, task: TaskRecord, index: int, _: bytes, value: StoredValue) -> None:
        if task.state != RESOLVING or task.arg_values is None:
            return
        if value.kind == ERROR:
            # An argument failed: so does this task, with the same error, without running.
            self.failed(task, value)
            return
        task.arg_values[index] = value.message(task.deps[index]._id)
        task.unresolved -= 1
        if task.unresolved == 0:
            self.ready(task)
