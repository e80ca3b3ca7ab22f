"""The owner's in-process store of object values, and the waiting on them.

Values are kept serialized (as they arrived on the wire) and unpickled on each ``get``. The
user's thread reads and waits here without involving the I/O thread: a ``get`` of a ready value
costs one dict lookup and one ``pickle.loads``.
"""

from __future__ import annotations

import _thread
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from ember.runtime.objects import serialization
from ember.runtime.wire.protocol import ember_pb2 as pb

if TYPE_CHECKING:
    from ember.runtime.objects.object_ref import ObjectRef

VALUE = pb.VALUE
ERROR = pb.ERROR


class StoredValue:
    """A value as it travels: inline pickle bytes, or where it lives in a node's object store;
    and the refs pickled inside it (kept alive while it is). ``call_site``, where the program
    made it, is set only when call sites are recorded (``call_sites.py``): unset, it costs the
    constructor nothing; read it with ``getattr(value, "call_site", "")``."""

    __slots__ = ("data", "kind", "contained", "location", "call_site")
    call_site: str

    def __init__(
        self,
        data: bytes,
        kind: pb.ValueKind = VALUE,
        contained: list[ObjectRef] | None = None,
        location: pb.ObjectLocation | None = None,
    ) -> None:
        self.data = data
        self.kind = kind
        self.contained = contained
        self.location = location

    def message(self, object_id: bytes = b"") -> pb.ObjectValue:
        value = pb.ObjectValue(id=object_id, data=self.data, kind=self.kind)
        if self.location is not None:
            value.location.CopyFrom(self.location)
        return value


def error_value(error: BaseException) -> StoredValue:
    """What each return of a task that failed holds: its error, raised by whoever gets it."""
    data, _ = serialization.dumps(error)
    return StoredValue(data, ERROR)


class _Waiter:
    """Released once ``remaining`` of the objects it waits for have arrived."""

    __slots__ = ("remaining", "lock")

    def __init__(self, remaining: int) -> None:
        self.remaining = remaining
        self.lock = _thread.allocate_lock()
        self.lock.acquire()

    def arrived(self) -> None:
        self.remaining -= 1
        if self.remaining == 0:
            self.lock.release()


class MemoryStore:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[bytes, StoredValue] = {}
        self._waiters: dict[bytes, list[_Waiter]] = {}
        self._callbacks: dict[bytes, list[Callable[[bytes, StoredValue], None]]] = {}

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, object_id: bytes) -> bool:
        return object_id in self._values

    def get(self, object_id: bytes) -> StoredValue | None:
        return self._values.get(object_id)

    def put(self, object_id: bytes, value: StoredValue) -> None:
        """Store a value (the first one wins) and release whoever waits for it."""
        with self._lock:
            if object_id in self._values:
                return
            self._values[object_id] = value
            waiters = self._waiters.pop(object_id, None)
            if waiters:
                for waiter in waiters:
                    waiter.arrived()
            callbacks = self._callbacks.pop(object_id, None)
        if callbacks:
            for callback in callbacks:
                callback(object_id, value)

    def delete(self, object_id: bytes) -> StoredValue | None:
        with self._lock:
            return self._values.pop(object_id, None)

    def on_ready(self, object_id: bytes, callback: Callable[[bytes, StoredValue], None]) -> None:
        """Call ``callback`` (now, or in the thread that stores the value) once it is present."""
        with self._lock:
            value = self._values.get(object_id)
            if value is None:
                self._callbacks.setdefault(object_id, []).append(callback)
                return
        callback(object_id, value)

    def release_waiters(self) -> None:
        """Wake everyone blocked in ``wait`` at once: what they wait for will never come (the
        cluster is gone), and each of them asks its owner why."""
        with self._lock:
            waiters = {id(w): w for ws in self._waiters.values() for w in ws}
            self._waiters.clear()
            for waiter in waiters.values():
                if waiter.remaining > 0:
                    waiter.remaining = 0
                    waiter.lock.release()

    def wait(self, object_ids: list[bytes], num: int, timeout: float | None) -> bool:
        """Block until ``num`` of the (distinct) ids are present; False on timeout."""
        with self._lock:
            missing = [oid for oid in object_ids if oid not in self._values]
            needed = num - (len(object_ids) - len(missing))
            if needed <= 0:
                return True
            if timeout is not None and timeout <= 0:
                return False
            waiter = _Waiter(needed)
            for oid in missing:
                self._waiters.setdefault(oid, []).append(waiter)
        done = False
        try:
            if timeout is None:
                done = waiter.lock.acquire()
            else:
                done = waiter.lock.acquire(timeout=timeout)
        finally:
            if not done:
                with self._lock:
                    done = waiter.remaining <= 0
                    for oid in missing:
                        waiters = self._waiters.get(oid)
                        if waiters and waiter in waiters:
                            waiters.remove(waiter)
                            if not waiters:
                                del self._waiters[oid]
        return done
