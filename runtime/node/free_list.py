"""The free ranges of a node's object store arena (``ObjectStore.free_list``).

Ranges are kept sorted and coalesced, and handed out first-fit from the lowest offset, so the
memory written for earlier objects is what new objects reuse. Each free range remembers when it
was freed, so that memory unused for a while can be given back to the system. A range given back
while part of it is free already was released twice: that is refused (``FreeListError``), since
accepting it would let two objects share memory later.
"""

from __future__ import annotations

import bisect


class FreeListError(Exception):
    """A range given back overlaps a free one: it was released twice."""


class FreeList:
    """Free ranges of the arena, kept sorted and coalesced; each remembers when it was freed."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.starts: list[int] = [0]
        self.blocks: dict[int, tuple[int, float]] = {0: (size, 0.0)}  # start -> (size, freed)

    def take(self, size: int, skip: set[int]) -> int | None:
        """The lowest free offset with ``size`` bytes (ranges starting in ``skip`` excluded)."""
        for start in self.starts:
            block, freed = self.blocks[start]
            if block >= size and start not in skip:
                self._remove(start)
                if block > size:
                    self._insert(start + size, block - size, freed)
                return start
        return None

    def give(self, start: int, size: int, now: float) -> None:
        """Give a range back. One that overlaps a free range was given back already: refused,
        so a double release cannot make two objects share memory later."""
        index = bisect.bisect_left(self.starts, start)
        if start < 0 or size <= 0 or start + size > self.size:
            raise FreeListError(f"range [{start}, {start + size}) is not in the arena of {self.size} bytes")
        if index < len(self.starts) and self.starts[index] < start + size:
            after = self.starts[index]
            raise FreeListError(
                f"range [{start}, {start + size}) released twice: it overlaps the free range "
                f"[{after}, {after + self.blocks[after][0]})"
            )
        if index > 0:
            before = self.starts[index - 1]
            before_size, _ = self.blocks[before]
            if before + before_size > start:
                raise FreeListError(
                    f"range [{start}, {start + size}) released twice: it overlaps the free range "
                    f"[{before}, {before + before_size})"
                )
            if before + before_size == start:
                self._remove(before)
                start, size = before, before_size + size
        after = start + size
        if after in self.blocks:
            after_size, _ = self.blocks[after]
            self._remove(after)
            size += after_size
        self._insert(start, size, now)

    def largest(self) -> int:
        return max((size for size, _ in self.blocks.values()), default=0)

    def idle(self, now: float, seconds: float) -> list[tuple[int, int]]:
        found = []
        for start in self.starts:
            size, freed = self.blocks[start]
            if freed and now - freed > seconds:
                found.append((start, size))
                self.blocks[start] = (size, 0.0)  # released: not again until reused
        return found

    def _insert(self, start: int, size: int, freed: float) -> None:
        bisect.insort(self.starts, start)
        self.blocks[start] = (size, freed)

    def _remove(self, start: int) -> None:
        del self.starts[bisect.bisect_left(self.starts, start)]
        del self.blocks[start]
