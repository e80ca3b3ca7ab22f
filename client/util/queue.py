"""``ember.util.queue.Queue``: a first-in, first-out queue shared across a cluster, as Ray's.

    from ember.util.queue import Empty, Queue
    q = Queue(maxsize=100)
    q.put(1)                      # from the driver, a task or an actor: pass q along
    q.get(timeout=5)              # raises Empty when nothing came within 5 seconds

The items live in an actor (an ``asyncio.Queue`` on its event loop), so that a ``get`` waiting
for an item or a ``put`` waiting for room costs the actor nothing while it waits and lets other
callers in. ``Empty`` and ``Full`` derive from the standard library's ``queue.Empty`` and
``queue.Full``, so ``except queue.Empty`` works too. A ``Queue`` pickles to its actor's handle:
tasks and actors given one use the same queue.
"""

from __future__ import annotations

import asyncio
import queue as standard_queue
from collections.abc import Iterable
from typing import Any

from ember import objects
from ember.actor import kill
from ember.runtime.objects.exceptions import GetTimeoutError


class Empty(standard_queue.Empty):
    """``get`` found no item (at once, or within its timeout)."""


class Full(standard_queue.Full):
    """``put`` found no room (at once, or within its timeout)."""


def _check_timeout(block: bool, timeout: float | None) -> None:
    if block and timeout is not None and timeout < 0:
        raise ValueError("'timeout' must be a non-negative number")


class Queue:
    """A FIFO queue in an actor. ``maxsize`` <= 0 means no limit; ``actor_options`` go to the
    actor's ``.options()`` (``num_cpus``, ``resources``, ``name``, ...)."""

    def __init__(self, maxsize: int = 0, actor_options: dict[str, Any] | None = None) -> None:
        from ember import remote

        self.maxsize = maxsize
        self.actor: Any = remote(_QueueActor).options(**(actor_options or {})).remote(maxsize)

    def __len__(self) -> int:
        return self.size()

    def size(self) -> int:
        """How many items the queue holds now."""
        return int(objects.get(self._actor().qsize.remote()))

    def qsize(self) -> int:
        return self.size()

    def empty(self) -> bool:
        return bool(objects.get(self._actor().empty.remote()))

    def full(self) -> bool:
        return bool(objects.get(self._actor().full.remote()))

    # ---------------------------------------------------------------- put

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        """Add ``item``; when the queue is full, wait up to ``timeout`` seconds for room (forever
        with None), or raise ``Full`` at once with ``block=False``. Several producers waiting on
        a full queue get in in no promised order."""
        _check_timeout(block, timeout)
        try:
            if block:
                objects.get(self._actor().put.remote(item, timeout))
            else:
                objects.get(self._actor().put_nowait.remote(item))
        except Full as full:
            raise Full(_reason(full)) from None

    async def put_async(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        """``put`` for asyncio code: awaits instead of blocking the thread."""
        _check_timeout(block, timeout)
        try:
            if block:
                await self._actor().put.remote(item, timeout)
            else:
                await self._actor().put_nowait.remote(item)
        except Full as full:
            raise Full(_reason(full)) from None

    def put_nowait(self, item: Any) -> None:
        self.put(item, block=False)

    def put_nowait_batch(self, items: Iterable[Any]) -> None:
        """Add every item, in order, or none of them (``Full``) if they do not all fit."""
        if not isinstance(items, Iterable):
            raise TypeError("Argument 'items' must be an Iterable")
        try:
            objects.get(self._actor().put_nowait_batch.remote(list(items)))
        except Full as full:
            raise Full(_reason(full)) from None

    # ---------------------------------------------------------------- get

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """Take the oldest item; when there is none, wait up to ``timeout`` seconds (forever
        with None), or raise ``Empty`` at once with ``block=False``."""
        _check_timeout(block, timeout)
        try:
            if block:
                return objects.get(self._actor().get.remote(timeout))
            return objects.get(self._actor().get_nowait.remote())
        except Empty as empty:
            raise Empty(_reason(empty)) from None

    async def get_async(self, block: bool = True, timeout: float | None = None) -> Any:
        """``get`` for asyncio code: awaits instead of blocking the thread."""
        _check_timeout(block, timeout)
        try:
            if block:
                return await self._actor().get.remote(timeout)
            return await self._actor().get_nowait.remote()
        except Empty as empty:
            raise Empty(_reason(empty)) from None

    def get_nowait(self) -> Any:
        return self.get(block=False)

    def get_nowait_batch(self, num_items: int) -> list[Any]:
        """Take ``num_items`` items in order, or none (``Empty``) if there are fewer."""
        if isinstance(num_items, bool) or not isinstance(num_items, int):
            raise TypeError("Argument 'num_items' must be an int")
        if num_items < 0:
            raise ValueError("'num_items' must be nonnegative")
        try:
            return list(objects.get(self._actor().get_nowait_batch.remote(num_items)))
        except Empty as empty:
            raise Empty(_reason(empty)) from None

    # ---------------------------------------------------------------- the end

    def shutdown(self, force: bool = False, grace_period_s: float = 5) -> None:
        """Stop the queue's actor; its items are gone, and calls still waiting in it fail with
        ``ActorDiedError``. Without ``force``, the calls already sent to it by this process are
        let in first (for up to ``grace_period_s`` seconds)."""
        actor = self.actor
        if actor is None:
            return
        if not force:
            # Calls from one caller reach an actor in order: once this one answers, every call
            # made before it has been taken in by the queue.
            try:
                objects.get(actor.qsize.remote(), timeout=grace_period_s)
            except GetTimeoutError:
                pass
        kill(actor, no_restart=True)
        self.actor = None

    def _actor(self) -> Any:
        if self.actor is None:
            raise RuntimeError("the queue was shut down")
        return self.actor


def _reason(error: BaseException) -> str:
    """The message the queue's actor gave, without the remote traceback around it."""
    cause = getattr(error, "cause", None)
    return str(cause if cause is not None else error)


class _QueueActor:
    """The queue's items, in the actor. Its ``async`` methods make it an asyncio actor."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self.queue: asyncio.Queue[Any] = asyncio.Queue(maxsize)

    async def qsize(self) -> int:
        return self.queue.qsize()

    async def empty(self) -> bool:
        return self.queue.empty()

    async def full(self) -> bool:
        return self.queue.full()

    async def put(self, item: Any, timeout: float | None = None) -> None:
        if not self.queue.full():  # room now: no wait, whatever the timeout (even 0)
            self.queue.put_nowait(item)
            return
        try:
            await asyncio.wait_for(self.queue.put(item), timeout)
        except TimeoutError:
            raise Full(f"the queue stayed full (maxsize {self.maxsize}) for {timeout}s") from None

    async def get(self, timeout: float | None = None) -> Any:
        if not self.queue.empty():  # an item now: no wait, whatever the timeout (even 0)
            return self.queue.get_nowait()
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except TimeoutError:
            raise Empty(f"the queue stayed empty for {timeout}s") from None

    async def put_nowait(self, item: Any) -> None:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            raise Full(f"the queue is full (maxsize {self.maxsize})") from None

    async def put_nowait_batch(self, items: list[Any]) -> None:
        if self.maxsize > 0 and len(items) + self.queue.qsize() > self.maxsize:
            raise Full(
                f"Cannot add {len(items)} items to queue of size {self.queue.qsize()} "
                f"and maxsize {self.maxsize}."
            )
        for item in items:
            self.queue.put_nowait(item)

    async def get_nowait(self) -> Any:
        try:
            return self.queue.get_nowait()
        except asyncio.QueueEmpty:
            raise Empty("the queue is empty") from None

    async def get_nowait_batch(self, num_items: int) -> list[Any]:
        if num_items > self.queue.qsize():
            raise Empty(f"Cannot get {num_items} items from queue of size {self.queue.qsize()}.")
        return [self.queue.get_nowait() for _ in range(num_items)]
