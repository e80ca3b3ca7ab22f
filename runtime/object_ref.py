"""``ObjectRef``: a handle to a value that a task will produce or that ``put`` stored.

A ref knows its object id and the address of its owner (the process that can serve the value).
Creating a ref counts it in the process's reference table; dropping it queues a release that the
owner's I/O thread applies later: ``__del__`` may run inside any allocation on any thread, so it
must never take a lock.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ember.runtime.owner import Owner

# Refs found while pickling a value are appended here (see serialization.dumps).
_pickling = threading.local()


class ObjectRef:
    __slots__ = ("_id", "_owner_address", "_core", "__weakref__")

    def __init__(self, object_id: bytes, owner_address: str, core: Owner | None = None) -> None:
        self._id = object_id
        self._owner_address = owner_address
        self._core = core
        if core is not None:
            core.references.add_local(object_id, owner_address)

    @property
    def id(self) -> bytes:
        return self._id

    @property
    def owner_address(self) -> str:
        return self._owner_address

    def binary(self) -> bytes:
        return self._id

    def hex(self) -> str:
        return self._id.hex()

    def task_id(self) -> bytes:
        return self._id[:16]

    def __repr__(self) -> str:
        return f"ObjectRef({self._id.hex()})"

    def __hash__(self) -> int:
        return hash(self._id)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ObjectRef) and other._id == self._id

    def __del__(self) -> None:
        core = self._core
        if core is not None:
            core.references.release_local(self._id)

    def __reduce__(self) -> tuple[Any, ...]:
        found = getattr(_pickling, "refs", None)
        if found is not None:
            found.append(self)
        return (_rebuild, (self._id, self._owner_address))

    def __await__(self) -> Any:
        from ember.runtime import context

        return context.require_core().as_future(self).__await__()

    def future(self) -> Any:
        """A ``concurrent.futures.Future`` resolved with the value (or its error)."""
        from ember.runtime import context

        return context.require_core().as_concurrent_future(self)


def _rebuild(object_id: bytes, owner_address: str) -> ObjectRef:
    from ember.runtime import context

    return ObjectRef(object_id, owner_address, context.current_core())
