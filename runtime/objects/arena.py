"""A node's shared-memory arena: one sparse file in ``/dev/shm``, mapped once per process.

Every process on a node maps the whole arena once and keeps the mapping, so reading or writing
an object costs no ``mmap`` and, once the memory has been touched, no page fault: writing into
reused memory runs at memory bandwidth. (A fresh mapping per object costs ~5 ms per 50 MB to set
up on a small VM; a fresh page ~3 us to fault in.)

Readers *pin* the ranges they view with a shared POSIX record lock on the arena file, held as
long as any view of the object lives in the process. The store reuses, spills or frees a range
only when it can take an exclusive lock on it: a reader's arrays never change under it, and no
message is spent on pinning.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import mmap
import os
import threading
import weakref
from collections import deque

FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
PAGE = mmap.PAGESIZE

_libc = ctypes.CDLL(None, use_errno=True)


class Arena:
    """One process's mapping of a node's arena file."""

    def __init__(self, path: str, size: int | None = None, create: bool = False) -> None:
        self.path = path
        flags = os.O_RDWR | (os.O_CREAT if create else 0)
        self.fd = os.open(path, flags, 0o600)
        if create and size is not None:
            os.ftruncate(self.fd, size)
        self.size = os.fstat(self.fd).st_size
        self.map = mmap.mmap(self.fd, self.size, flags=mmap.MAP_SHARED)
        self.view = memoryview(self.map)
        self._pins: dict[tuple[int, int], int] = {}
        self._released: deque[tuple[int, int]] = deque()
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ readers

    def pinned_view(self, offset: int, size: int) -> memoryview:
        """A read-only view of [offset, offset+size) that keeps the range pinned while it (or
        any array made from it) lives."""
        self._apply_releases()
        key = (offset, size)
        with self._lock:
            count = self._pins.get(key, 0)
            if count == 0:
                fcntl.lockf(self.fd, fcntl.LOCK_SH, size, offset)
            self._pins[key] = count + 1
        region = (ctypes.c_char * size).from_buffer(self.map, offset)
        # The finalizer may run inside any allocation: it only queues the release.
        weakref.finalize(region, self._released.append, key)
        return memoryview(region).toreadonly()

    def _apply_releases(self) -> None:
        released = self._released
        while released:
            try:
                key = released.popleft()
            except IndexError:
                return
            with self._lock:
                count = self._pins.get(key, 0) - 1
                if count > 0:
                    self._pins[key] = count
                    continue
                self._pins.pop(key, None)
                fcntl.lockf(self.fd, fcntl.LOCK_UN, key[1], key[0])

    def release_pins(self) -> None:
        """Drop the pins of views that died (also done on each new pin)."""
        self._apply_releases()

    # ------------------------------------------------------------------ the store

    def in_use(self, offset: int, size: int) -> bool:
        """True while some other process pins part of the range."""
        try:
            fcntl.lockf(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB, size, offset)
        except OSError as error:
            if error.errno in (errno.EACCES, errno.EAGAIN):
                return True
            raise
        fcntl.lockf(self.fd, fcntl.LOCK_UN, size, offset)
        return False

    def punch(self, offset: int, size: int) -> None:
        """Give the pages of a free range back to the system (the range stays usable)."""
        start = (offset + PAGE - 1) // PAGE * PAGE
        end = (offset + size) // PAGE * PAGE
        if end <= start:
            return
        if _libc.fallocate(
            self.fd,
            FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
            ctypes.c_long(start),
            ctypes.c_long(end - start),
        ) != 0:
            raise OSError(ctypes.get_errno(), "fallocate(PUNCH_HOLE) failed on the arena")

    def close(self) -> None:
        try:
            self.view.release()
            self.map.close()
        except BufferError:
            pass  # views still live in this process; the mapping goes with the process
        os.close(self.fd)


def copy_out(arena: Arena, offset: int, size: int, path: str) -> None:
    """Write a range to a file (spilling), readable only by this user: it is someone's data."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "wb") as f:
        f.write(arena.view[offset : offset + size])


def copy_in(arena: Arena, offset: int, size: int, path: str, last: int = 0) -> None:
    """Read a file of ``size`` bytes into a range (restoring). Its first ``last`` bytes are
    written after all the others: a reader of another process that checks them (an object's
    header) never sees them before the bytes they describe."""
    view = arena.view[offset : offset + size]
    with open(path, "rb") as f:
        first = f.read(last)
        got = len(first) + f.readinto(view[last:])
    if got != size:
        raise OSError(errno.EIO, f"{path} holds {got} bytes, not {size}")
    view[:last] = first

