"""Counts of the ``ObjectRef`` instances alive in this process.

Increments happen where a ref is created, under a lock. Decrements come from ``__del__``, which
can run inside any allocation on any thread, so they are only queued (a lock-free deque append)
and applied by ``drain``. Counts therefore lag behind reality only upwards: an object is never
freed while a ref to it exists.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable


class ReferenceTable:
    """``on_first(id, owner)`` is called when a ref owned by another process (``home`` is
    this one's address) starts being held here: this process becomes a borrower. It must only
    queue work: it runs under the table's lock, on whatever thread created the ref."""

    def __init__(
        self,
        on_zero: Callable[[bytes], None],
        home: str = "",
        on_first: Callable[[bytes, str], None] | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._counts: dict[bytes, int] = {}
        self._released: deque[bytes] = deque()
        self._on_zero = on_zero
        self._home = home
        self._on_first = on_first

    def add_local(self, object_id: bytes, owner_address: str) -> None:
        with self._lock:
            count = self._counts.get(object_id, 0)
            self._counts[object_id] = count + 1
            if not count and self._on_first is not None and owner_address != self._home:
                self._on_first(object_id, owner_address)

    def release_local(self, object_id: bytes) -> None:
        self._released.append(object_id)

    def count(self, object_id: bytes) -> int:
        return self._counts.get(object_id, 0)

    def snapshot(self) -> dict[bytes, int]:
        """The counts now (releases not yet drained still count): for the state API."""
        with self._lock:
            return dict(self._counts)

    def pending_releases(self) -> int:
        return len(self._released)

    def drain(self) -> int:
        """Apply queued releases; calls ``on_zero`` for each id nobody refers to any more."""
        released = self._released
        if not released:
            return 0
        zero: list[bytes] = []
        with self._lock:
            counts = self._counts
            while released:
                try:
                    object_id = released.popleft()
                except IndexError:
                    break
                remaining = counts.get(object_id, 0) - 1
                if remaining > 0:
                    counts[object_id] = remaining
                else:
                    counts.pop(object_id, None)
                    zero.append(object_id)
        for object_id in zero:
            self._on_zero(object_id)
        return len(zero)

    def __len__(self) -> int:
        return len(self._counts)
