"""The I/O thread every ember process runs beside the user's code.

User code (a driver's program, a worker's task) runs on the main thread; gRPC streams, timers
and bookkeeping run on one asyncio loop in a daemon thread. The user's thread hands work over
with ``call_soon`` (batched by the callers) and waits on results with plain locks.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

log = logging.getLogger("ember.runtime.wire.event_loop")


class IoThread:
    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()
        self._ready.wait()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._ready.set)
        try:
            self.loop.run_forever()
        finally:
            try:
                pending = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
                for task in pending:
                    task.cancel()
                if pending:
                    self.loop.run_until_complete(
                        asyncio.wait(pending, timeout=1.0)
                    )
            except Exception:  # the loop is going away; nothing left to report to
                log.debug("error while cancelling tasks at loop exit", exc_info=True)
            self.loop.close()

    def in_loop_thread(self) -> bool:
        return threading.current_thread() is self.thread

    def call_soon(self, callback: Callable[..., Any], *args: Any) -> None:
        self.loop.call_soon_threadsafe(callback, *args)

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run a coroutine on the loop and wait for it from another thread."""
        if self.in_loop_thread():
            raise RuntimeError("IoThread.run called from the I/O thread itself")
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise

    def stop(self, timeout: float = 2.0) -> None:
        if self.loop.is_closed():
            return
        try:
            self.loop.call_soon_threadsafe(self.loop.stop)
        except RuntimeError:
            return
        if not self.in_loop_thread():
            self.thread.join(timeout)


_detached: set[asyncio.Task[Any]] = set()


def detach(coro: Coroutine[Any, Any, Any], what: str) -> asyncio.Task[Any]:
    """Run a coroutine on the running loop without awaiting it, and keep it alive until done.

    The loop holds its tasks only weakly, so a task nobody keeps may be collected before it
    ends (the asyncio documentation's warning for ``create_task``), and its error would be
    said only when it is collected, if ever. This keeps each one until it ends and logs an
    error it ends with, naming ``what`` it was doing."""
    task = asyncio.ensure_future(coro)
    _detached.add(task)
    task.add_done_callback(lambda done: _finished(done, what))
    return task


def _finished(task: asyncio.Task[Any], what: str) -> None:
    _detached.discard(task)
    if not task.cancelled() and (error := task.exception()) is not None:
        log.error("%s failed: %s", what, error, exc_info=error)
