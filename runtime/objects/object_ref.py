"""``ObjectRef``: a handle to a value that a task will produce or that ``put`` stored.

A ref knows its object id and the address of its owner (the process that can serve the value).
Creating a ref counts it in the process's reference table; dropping it queues a release that the
owner's I/O thread applies later: ``__del__`` may run inside any allocation on any thread, so it
must never take a lock.

A ref needs its process's core (the owner library of ``ember.runtime.core``) to count itself and
to wait for its value, but the core is built on top of this module: so the core registers how
to find it (``set_core_lookup``), and a ref sees it only through ``RefCore``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable
from typing import Any, Protocol

# Refs found while pickling a value are appended here (see serialization.dumps).
_pickling = threading.local()


class LocalCounts(Protocol):
    """The process's count of live refs (``core.reference_table``)."""

    def add_local(self, object_id: bytes, owner_address: str) -> None: ...

    def release_local(self, object_id: bytes) -> None: ...


class RefCore(Protocol):
    """What a ref asks of its process's core."""

    @property
    def references(self) -> LocalCounts: ...

    def as_future(self, ref: ObjectRef) -> asyncio.Future[Any]: ...

    def as_concurrent_future(self, ref: ObjectRef) -> concurrent.futures.Future[Any]: ...


def _no_core() -> RefCore | None:
    return None


_core_lookup: Callable[[], RefCore | None] = _no_core


def set_core_lookup(lookup: Callable[[], RefCore | None]) -> None:
    """How refs find the process's current core: registered by the core when it is imported."""
    global _core_lookup
    _core_lookup = lookup


def _require_core() -> RefCore:
    core = _core_lookup()
    if core is None:
        raise RuntimeError("ember is not initialized in this process: call ember.init() first")
    return core


class ObjectRef:
    __slots__ = ("_id", "_owner_address", "_core", "__weakref__")

    def __init__(self, object_id: bytes, owner_address: str, core: RefCore | None = None) -> None:
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
        return _require_core().as_future(self).__await__()

    def future(self) -> Any:
        """A ``concurrent.futures.Future`` resolved with the value (or its error)."""
        return _require_core().as_concurrent_future(self)


def _rebuild(object_id: bytes, owner_address: str) -> ObjectRef:
    return ObjectRef(object_id, owner_address, _core_lookup())
