"""``ember.util.multiprocessing.Pool``: the standard library's ``multiprocessing.Pool`` on a
cluster, as ``ray.util.multiprocessing.Pool``; code moves over by changing one import.

    from ember.util.multiprocessing import Pool
    with Pool() as pool:                       # one process per CPU of the cluster
        print(pool.map(square, range(100)))

The pool's processes are actors (``num_cpus=0`` each, as in Ray: the pool decides how many run,
not the scheduler). ``map`` and its kin cut the input into chunks and send them round-robin;
``imap`` and ``imap_unordered`` keep one chunk per process in flight and send the next as a
result comes back, so an endless iterator works. An exception in ``func`` comes back as itself
(``except ValueError`` works, as with ``multiprocessing``), raised by ``get`` or passed to the
``error_callback``. Callbacks run on a thread of the pool's, before ``get`` returns, as the
standard library's do; never on ember's I/O thread, so they may call ember themselves.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import logging
import os
import queue
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from multiprocessing import TimeoutError as PoolTimeoutError
from typing import Any

from ember import objects
from ember.actor import kill
from ember.runtime.objects.object_ref import ObjectRef
from ember.runtime.wire.protocol import ember_pb2 as pb
from ember.util.state import head_query

log = logging.getLogger("ember.util.multiprocessing")

Callback = Callable[[Any], object] | None


class _PoolTaskError:
    """A chunk item whose call raised: carries the exception back in the chunk's results."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


class _PoolActor:
    """One of the pool's processes: runs the initializer once, then chunks of calls."""

    def __init__(self, initializer: Callable[..., Any] | None, initargs: Iterable[Any] | None) -> None:
        if initializer is not None:
            initializer(*(initargs or ()))

    def ping(self) -> int:
        return os.getpid()

    def run_batch(self, func: Callable[..., Any], batch: list[tuple[tuple[Any, ...], dict[str, Any]]]) -> list[Any]:
        results: list[Any] = []
        for args, kwargs in batch:
            try:
                results.append(func(*args, **kwargs))
            except Exception as error:  # noqa: BLE001 - it is the caller's to see, item by item
                results.append(_PoolTaskError(error))
        return results


# ------------------------------------------------------------------------------------ results


class AsyncResult:
    """What ``apply_async`` and ``map_async`` return, as ``multiprocessing.pool.AsyncResult``."""

    def __init__(
        self,
        pool: Pool,
        chunks: list[concurrent.futures.Future[Any]],
        single: bool,
        callback: Callback = None,
        error_callback: Callback = None,
    ) -> None:
        self._single = single
        self._chunks = chunks
        self._callback = callback
        self._error_callback = error_callback
        self._error: BaseException | None = None
        self._done = threading.Event()
        self._remaining = len(chunks)
        self._pool = pool
        pool._pending.add(self)
        jobs = pool._callbacks
        if not chunks:
            jobs.put(self._finish)
        for chunk in chunks:
            # Runs on ember's I/O thread: only hand the work over.
            chunk.add_done_callback(lambda future: jobs.put(lambda: self._chunk_done(future)))

    def _chunk_done(self, future: concurrent.futures.Future[Any]) -> None:
        """On the pool's callback thread: the first error goes to ``error_callback`` at once;
        once every chunk is in, ``callback`` gets the results."""
        error = _first_error([future])
        if error is not None and self._error is None:
            self._error = error
            if self._error_callback is not None:
                _call_safely(self._error_callback, error)
        self._remaining -= 1
        if self._remaining == 0:
            self._finish()

    def _finish(self) -> None:
        if self._error is None and self._callback is not None:
            values = _values(self._chunks)
            _call_safely(self._callback, values[0] if self._single else values)
        self._done.set()
        self._pool._result_done(self)

    def ready(self) -> bool:
        return self._done.is_set()

    def successful(self) -> bool:
        if not self.ready():
            raise ValueError(f"{self!r} not ready")
        return self._error is None

    def wait(self, timeout: float | None = None) -> None:
        self._done.wait(timeout)

    def get(self, timeout: float | None = None) -> Any:
        """The result (a list for the map functions); raises the first exception a call raised,
        or ``multiprocessing.TimeoutError`` after ``timeout`` seconds."""
        if not self._done.wait(timeout):
            raise PoolTimeoutError
        if self._error is not None:
            raise self._error
        values = _values(self._chunks)
        return values[0] if self._single else values


def _run_callbacks(jobs: queue.SimpleQueue[Callable[[], None] | None]) -> None:
    while True:
        job = jobs.get()
        if job is None:
            return
        job()


def _first_error(chunks: list[concurrent.futures.Future[Any]]) -> BaseException | None:
    for chunk in chunks:
        error = chunk.exception()
        if error is not None:
            return error  # the actor could not run the chunk (it died)
        for item in chunk.result():
            if isinstance(item, _PoolTaskError):
                return item.error
    return None


def _values(chunks: list[concurrent.futures.Future[Any]]) -> list[Any]:
    return [item for chunk in chunks for item in chunk.result()]


def _call_safely(callback: Callable[[Any], object], value: Any) -> None:
    try:
        callback(value)
    except Exception:  # noqa: BLE001 - as multiprocessing: a callback's error is not the pool's
        log.exception("a multiprocessing Pool callback raised")


class IMapIterator:
    """``imap`` / ``imap_unordered``: one chunk per process in flight, the next sent as one
    comes back; results in input order, or as they finish (``ordered=False``)."""

    def __init__(self, pool: Pool, func: Any, iterable: Iterable[Any], chunksize: int, ordered: bool) -> None:
        if chunksize < 1:
            raise ValueError(f"chunksize must be >= 1, got {chunksize}")
        self._pool = pool
        self._func = objects.put(func)  # pickled once for every chunk
        self._items = iter(iterable)
        self._chunksize = chunksize
        self._ordered = ordered
        self._exhausted = False
        self._sent = 0  # chunks sent
        self._in_flight: dict[concurrent.futures.Future[Any], int] = {}  # future -> chunk index
        self._arrived: dict[int, list[Any]] = {}
        self._next_chunk = 0  # ordered: the chunk whose results come next
        self._ready: list[Any] = []  # results of the current chunk not yet returned
        for _ in range(len(pool._actors)):
            self._send_next()

    def _send_next(self) -> None:
        if self._exhausted:
            return
        chunk = list(itertools.islice(self._items, self._chunksize))
        if not chunk:
            self._exhausted = True
            return
        future = self._pool._run_chunk(self._func, [((item,), {}) for item in chunk])
        self._in_flight[future] = self._sent
        self._sent += 1

    def __iter__(self) -> IMapIterator:
        return self

    def __next__(self) -> Any:
        return self.next()

    def next(self, timeout: float | None = None) -> Any:
        while not self._ready:
            if self._ordered and self._next_chunk in self._arrived:
                self._ready = self._arrived.pop(self._next_chunk)
                self._next_chunk += 1
                continue
            if not self._in_flight:
                raise StopIteration
            done, _ = concurrent.futures.wait(
                list(self._in_flight), timeout=timeout, return_when=concurrent.futures.FIRST_COMPLETED
            )
            if not done:
                raise PoolTimeoutError
            for future in done:
                index = self._in_flight.pop(future)
                self._send_next()
                results = future.result()  # raises when the process died
                if self._ordered:
                    self._arrived[index] = results
                else:
                    self._ready += results
        item = self._ready.pop(0)
        if isinstance(item, _PoolTaskError):
            raise item.error
        return item


# ------------------------------------------------------------------------------------ the pool


class Pool:
    """A pool of ``processes`` actor processes (default: the cluster's CPUs).

    Joins the cluster of ``ray_address`` (or ``EMBER_ADDRESS``, or the one ``ember start``
    started here), or starts a local one with ``processes`` CPUs, unless ember is initialized
    already. ``maxtasksperchild`` replaces a process after that many chunks; ``ray_remote_args``
    are the actors' options. ``context`` is accepted and ignored, as in Ray."""

    def __init__(
        self,
        processes: int | None = None,
        initializer: Callable[..., Any] | None = None,
        initargs: Iterable[Any] | None = None,
        maxtasksperchild: int | None = None,
        context: Any = None,
        ray_address: str | None = None,
        ray_remote_args: dict[str, Any] | None = None,
    ) -> None:
        if context is not None:
            log.warning("ember.util.multiprocessing.Pool ignores 'context': the cluster starts the processes")
        if maxtasksperchild is not None and maxtasksperchild < 1:
            raise ValueError(f"maxtasksperchild must be >= 1 or None, got {maxtasksperchild}")
        self._closed = False
        self._initializer = initializer
        self._initargs = tuple(initargs) if initargs is not None else None
        self._maxtasksperchild = maxtasksperchild
        self._remote_args = {"num_cpus": 0, **(ray_remote_args or {})}
        processes = _connect(processes, ray_address)
        # Callbacks, and the moment a result counts as ready, belong to this thread; it ends
        # once the pool is closed and every result is in, or the pool is collected.
        self._callbacks: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._pending: set[AsyncResult] = set()
        threading.Thread(
            target=_run_callbacks, args=(self._callbacks,), name="ember-pool-callbacks", daemon=True
        ).start()
        weakref.finalize(self, self._callbacks.put, None)
        self._actors: list[list[Any]] = []  # [handle, chunks sent to it]
        # A process's calls run in the order they were sent: when its last chunk is back, all are.
        self._last_sent: dict[Any, ObjectRef] = {}
        self._retiring: list[tuple[Any, ObjectRef | None]] = []
        self._next_actor = 0
        self._actors = [[self._new_actor(), 0] for _ in range(processes)]
        try:
            objects.get([actor.ping.remote() for actor, _ in self._actors])
        except BaseException:
            self.terminate()
            raise

    def _new_actor(self) -> Any:
        from ember import remote

        return remote(_PoolActor).options(**self._remote_args).remote(self._initializer, self._initargs)

    def _result_done(self, result: AsyncResult) -> None:
        self._pending.discard(result)
        self._end_callbacks_if_done()

    def _end_callbacks_if_done(self) -> None:
        if self._closed and not self._pending:
            self._callbacks.put(None)

    # ---------------------------------------------------------------- sending chunks

    def _run_chunk(self, func: Any, batch: list[tuple[tuple[Any, ...], dict[str, Any]]]) -> concurrent.futures.Future[Any]:
        """Send one chunk to the next process in turn; a future of its list of results."""
        self._check_running()
        index = self._next_actor
        self._next_actor = (index + 1) % len(self._actors)
        entry = self._actors[index]
        actor = entry[0]
        ref = actor.run_batch.remote(func, batch)
        self._last_sent[actor] = ref
        entry[1] += 1
        if self._maxtasksperchild is not None and entry[1] >= self._maxtasksperchild:
            self._retiring.append((actor, self._last_sent.pop(actor, None)))
            self._actors[index] = [self._new_actor(), 0]
        self._stop_retired(wait=False)
        future: concurrent.futures.Future[Any] = ref.future()
        return future

    def _stop_retired(self, wait: bool) -> None:
        """Stop replaced processes once their last chunks are back (all of them with ``wait``)."""
        still: list[tuple[Any, ObjectRef | None]] = []
        for actor, last in self._retiring:
            if last is not None and not objects.wait([last], timeout=None if wait else 0)[0]:
                still.append((actor, last))
                continue
            kill(actor)
        self._retiring = still

    def _chunks(self, func: Any, iterable: Iterable[Any], chunksize: int | None, star: bool) -> list[concurrent.futures.Future[Any]]:
        self._check_running()
        items = list(iterable)
        if chunksize is None:
            chunksize, extra = divmod(len(items), len(self._actors) * 4)
            chunksize += 1 if extra else 0
        chunksize = max(chunksize, 1)
        func_ref = objects.put(func) if items else func  # pickled once for every chunk
        futures = []
        for start in range(0, len(items), chunksize):
            batch: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
                (tuple(item) if star else (item,), {}) for item in items[start:start + chunksize]
            ]
            futures.append(self._run_chunk(func_ref, batch))
        return futures

    # ---------------------------------------------------------------- the API

    def apply(
        self,
        func: Callable[..., Any],
        args: Iterable[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        *,
        kwds: dict[str, Any] | None = None,
    ) -> Any:
        """``func(*args, **kwargs)`` on one of the processes; its result. (``kwds`` is the
        standard library's name for ``kwargs``, Ray's.)"""
        return self.apply_async(func, args, kwargs, kwds=kwds).get()

    def apply_async(
        self,
        func: Callable[..., Any],
        args: Iterable[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        callback: Callback = None,
        error_callback: Callback = None,
        *,
        kwds: dict[str, Any] | None = None,
    ) -> AsyncResult:
        if kwargs is not None and kwds is not None:
            raise TypeError("apply_async takes kwargs (Ray's name) or kwds (multiprocessing's), not both")
        future = self._run_chunk(func, [(tuple(args or ()), dict(kwargs or kwds or {}))])
        return AsyncResult(self, [future], True, callback, error_callback)

    def map(self, func: Callable[[Any], Any], iterable: Iterable[Any], chunksize: int | None = None) -> list[Any]:
        """``[func(x) for x in iterable]``, computed by the processes."""
        return self.map_async(func, iterable, chunksize).get()

    def map_async(
        self,
        func: Callable[[Any], Any],
        iterable: Iterable[Any],
        chunksize: int | None = None,
        callback: Callback = None,
        error_callback: Callback = None,
    ) -> AsyncResult:
        return AsyncResult(self, self._chunks(func, iterable, chunksize, False), False, callback, error_callback)

    def starmap(self, func: Callable[..., Any], iterable: Iterable[Iterable[Any]], chunksize: int | None = None) -> list[Any]:
        """``[func(*args) for args in iterable]``, computed by the processes."""
        return self.starmap_async(func, iterable, chunksize).get()

    def starmap_async(
        self,
        func: Callable[..., Any],
        iterable: Iterable[Iterable[Any]],
        chunksize: int | None = None,
        callback: Callback = None,
        error_callback: Callback = None,
    ) -> AsyncResult:
        return AsyncResult(self, self._chunks(func, iterable, chunksize, True), False, callback, error_callback)

    def imap(self, func: Callable[[Any], Any], iterable: Iterable[Any], chunksize: int = 1) -> IMapIterator:
        """Results in input order, lazily: the input may be an endless iterator."""
        self._check_running()
        return IMapIterator(self, func, iterable, chunksize, ordered=True)

    def imap_unordered(self, func: Callable[[Any], Any], iterable: Iterable[Any], chunksize: int = 1) -> Iterator[Any]:
        """Results as they finish, lazily."""
        self._check_running()
        return IMapIterator(self, func, iterable, chunksize, ordered=False)

    # ---------------------------------------------------------------- the end

    def _check_running(self) -> None:
        if self._closed:
            raise ValueError("Pool not running")

    def __enter__(self) -> Pool:
        self._check_running()
        return self

    def __exit__(self, *exc: object) -> None:
        self.terminate()

    def close(self) -> None:
        """Take no more work; what was sent finishes (``join`` waits for it)."""
        self._closed = True

    def terminate(self) -> None:
        """Stop every process now: work still running fails."""
        self._closed = True
        for actor in [entry[0] for entry in self._actors] + [actor for actor, _ in self._retiring]:
            kill(actor)
        self._actors = []
        self._retiring = []
        self._last_sent.clear()
        self._callbacks.put(self._end_callbacks_if_done)

    def join(self) -> None:
        """After ``close``: wait for the work sent, then stop the processes."""
        if not self._closed:
            raise ValueError("Pool is still running")
        for actor, _ in self._actors:
            self._retiring.append((actor, self._last_sent.pop(actor, None)))
        self._actors = []
        self._stop_retired(wait=True)
        self._callbacks.put(self._end_callbacks_if_done)


def _connect(processes: int | None, address: str | None) -> int:
    """Join or start a cluster as Ray's pool does; how many processes the pool gets."""
    import ember
    from ember.runtime import session

    if not ember.is_initialized():
        if address == "local" or (
            address is None and not os.environ.get("EMBER_ADDRESS") and not session.read_current_cluster()
        ):
            ember.init(num_cpus=processes)
        else:
            ember.init(address=address or "auto")
    view: pb.ClusterView = head_query.ask("GetClusterView", pb.Empty())  # from a task too
    cpus = int(sum(node.info.total.quantities.get("CPU", 0) for node in view.nodes if node.alive))
    if processes is None:
        processes = cpus
    if processes <= 0:
        raise ValueError("Processes in the pool must be >0.")
    if cpus < processes:
        raise ValueError(
            f"Tried to start a pool with {processes} processes on an existing cluster, but there "
            f"are only {cpus} CPUs in the cluster."
        )
    return processes
