"""``ember.util.ActorPool``: spread work over a fixed set of actors, as ``ray.util.ActorPool``.

    pool = ActorPool([Doubler.remote(), Doubler.remote()])
    print(list(pool.map(lambda actor, v: actor.double.remote(v), [1, 2, 3, 4])))  # [2, 4, 6, 8]

It keeps Ray's semantics exactly, since programs depend on them: an actor is busy from the
call ``fn(actor, value)`` makes until its result has been *returned* by ``get_next`` or
``get_next_unordered`` (not merely computed), values beyond the idle actors wait in submission
order, ``map`` returns results in the order of its values and ``map_unordered`` as they finish,
and an actor whose call fails with ``ActorDiedError`` leaves the pool. ``fn`` may return one
``ObjectRef`` or a list of them (the result is then the list of their values). Two cases
differ, where Ray fails by accident: ``get_next_unordered(timeout, ignore_if_timedout=True)``
with nothing ready skips the oldest call (Ray raises ``UnboundLocalError``), and a function
that returns no ``ObjectRef`` raises ``TypeError`` with its actor left in the pool.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from ember.actor import ActorHandle
from ember.objects import get, wait
from ember.runtime.objects.exceptions import ActorDiedError
from ember.runtime.objects.object_ref import ObjectRef

V = TypeVar("V")
Call = Callable[[Any, V], Any]
Future = ObjectRef | tuple[ObjectRef, ...]


def _key(future: Any) -> Future:
    """A call's refs as a dict key: one ref, or a tuple when ``fn`` returned a list."""
    if isinstance(future, ObjectRef):
        return future
    if isinstance(future, list | tuple) and future and all(isinstance(r, ObjectRef) for r in future):
        return tuple(future)
    raise TypeError(
        "ActorPool: the function given to submit/map must return the ObjectRef of an actor call "
        f"(e.g. lambda actor, v: actor.method.remote(v)) or a list of them, not {type(future).__name__}"
    )


def _refs(key: Future) -> tuple[ObjectRef, ...]:
    return key if isinstance(key, tuple) else (key,)


class ActorPool:
    """A fixed set of actors taking calls in turn; see the module's docstring."""

    def __init__(self, actors: Iterable[Any]) -> None:
        self._idle_actors: list[Any] = list(actors)
        for actor in self._idle_actors:
            if not isinstance(actor, ActorHandle):
                raise TypeError(f"ActorPool takes actor handles, got a {type(actor).__name__}")
        self._future_to_actor: dict[Future, tuple[int, Any]] = {}
        self._index_to_future: dict[int, Any] = {}
        self._next_task_index = 0
        self._next_return_index = 0
        self._pending_submits: list[tuple[Call[Any], Any]] = []

    # ---------------------------------------------------------------- submitting

    def map(self, fn: Call[V], values: Iterable[V]) -> Iterator[Any]:
        """Apply ``fn(actor, value)`` to every value; the results in the order of the values.

        Results left over from earlier submissions are dropped first, as in Ray."""
        self._drop_outstanding(ordered=True)
        for value in values:
            self.submit(fn, value)

        def results() -> Iterator[Any]:
            while self.has_next():
                yield self.get_next()

        return results()

    def map_unordered(self, fn: Call[V], values: Iterable[V]) -> Iterator[Any]:
        """As ``map``, with the results in the order they finish."""
        self._drop_outstanding(ordered=False)
        for value in values:
            self.submit(fn, value)

        def results() -> Iterator[Any]:
            while self.has_next():
                yield self.get_next_unordered()

        return results()

    def submit(self, fn: Call[V], value: V) -> None:
        """Run ``fn(actor, value)`` on an idle actor, or as soon as one is returned."""
        if not self._idle_actors:
            self._pending_submits.append((fn, value))
            return
        actor = self._idle_actors.pop()
        try:
            key = _key(fn(actor, value))
        except BaseException:
            self._idle_actors.append(actor)
            raise
        self._future_to_actor[key] = (self._next_task_index, actor)
        self._index_to_future[self._next_task_index] = key
        self._next_task_index += 1

    def _drop_outstanding(self, ordered: bool) -> None:
        """What ``map`` does with results nobody took (Ray's behaviour): ``map`` skips those
        not ready; ``map_unordered`` waits for each. A failed one raises its error."""
        while self.has_next():
            if ordered:
                try:
                    self.get_next(timeout=0, ignore_if_timedout=True)
                except TimeoutError:
                    pass
            else:
                self.get_next_unordered()

    # ---------------------------------------------------------------- results

    def has_next(self) -> bool:
        """Whether a submitted call's result has not been returned yet."""
        return bool(self._future_to_actor)

    def get_next(self, timeout: float | None = None, ignore_if_timedout: bool = False) -> Any:
        """The next result in submission order, waiting up to ``timeout`` seconds for it.

        Raises ``TimeoutError`` when it is not ready in time; with ``ignore_if_timedout`` the
        call is skipped for good (its actor returns to the pool) before that is raised."""
        if not self.has_next():
            raise StopIteration("No more results to get")
        if self._next_return_index >= self._next_task_index:
            raise ValueError("It is not allowed to call get_next() after get_next_unordered().")
        future = self._index_to_future[self._next_return_index]
        key = _key(future)
        timed_out = False
        if timeout is not None:
            refs = list(_refs(key))
            ready, _ = wait(refs, num_returns=len(refs), timeout=timeout)
            if len(ready) < len(refs):
                if not ignore_if_timedout:
                    raise TimeoutError("Timed out waiting for result")
                timed_out = True
        del self._index_to_future[self._next_return_index]
        self._next_return_index += 1
        _, actor = self._future_to_actor.pop(key)
        if timed_out:
            self._return_actor(actor)
            raise TimeoutError(f"Timed out waiting for result. The task {future} has been ignored.")
        return self._get_result(future, actor)

    def get_next_unordered(
        self, timeout: float | None = None, ignore_if_timedout: bool = False
    ) -> Any:
        """Whichever result is ready first, waiting up to ``timeout`` seconds for one."""
        if not self.has_next():
            raise StopIteration("No more results to get")
        key = self._first_ready(timeout)
        timed_out = key is None
        if key is None:
            if not ignore_if_timedout:
                raise TimeoutError("Timed out waiting for result")
            key = next(iter(self._future_to_actor))  # skip the oldest call outstanding
        index, actor = self._future_to_actor.pop(key)
        future = self._index_to_future.pop(index)
        self._next_return_index = max(self._next_return_index, index + 1)
        if timed_out:
            self._return_actor(actor)
            raise TimeoutError(f"Timed out waiting for result. The task {future} has been ignored.")
        return self._get_result(future, actor)

    def _first_ready(self, timeout: float | None) -> Future | None:
        """The first outstanding call whose refs are all ready, within ``timeout``."""
        single = [key for key in self._future_to_actor if isinstance(key, ObjectRef)]
        if len(single) == len(self._future_to_actor):
            ready, _ = wait(single, num_returns=1, timeout=timeout)
            return ready[0] if ready else None
        # Some calls returned several refs: a call is ready when all of its refs are.
        refs = list(dict.fromkeys(ref for key in self._future_to_actor for ref in _refs(key)))
        while True:
            ready_now = set(wait(refs, num_returns=len(refs), timeout=0)[0])
            for key in self._future_to_actor:
                if all(ref in ready_now for ref in _refs(key)):
                    return key
            waiting = [ref for ref in refs if ref not in ready_now]
            if timeout is not None and timeout <= 0:
                return None
            ready, _ = wait(waiting, num_returns=1, timeout=timeout)
            if not ready:
                return None

    def _get_result(self, future: Any, actor: Any) -> Any:
        alive = True
        try:
            return get(future if isinstance(future, ObjectRef) else list(future))
        except ActorDiedError:
            alive = False
            raise
        finally:
            self._return_actor(actor, alive)

    def _return_actor(self, actor: Any, alive: bool = True) -> None:
        if alive:
            self._idle_actors.append(actor)
        if self._pending_submits and self._idle_actors:
            self.submit(*self._pending_submits.pop(0))

    # ---------------------------------------------------------------- the actors

    def has_free(self) -> bool:
        """Whether an actor is idle and no submitted value waits for one."""
        return bool(self._idle_actors) and not self._pending_submits

    def pop_idle(self) -> Any | None:
        """Take an idle actor out of the pool; None when none is free."""
        if self.has_free():
            return self._idle_actors.pop()
        return None

    def push(self, actor: Any) -> None:
        """Add an actor to the pool (it takes a waiting value at once, if there is one)."""
        if not isinstance(actor, ActorHandle):
            raise TypeError(f"ActorPool.push takes an actor handle, got a {type(actor).__name__}")
        busy = [busy_actor for _, busy_actor in self._future_to_actor.values()]
        if actor in self._idle_actors or actor in busy:
            raise ValueError("Actor already belongs to current ActorPool")
        self._return_actor(actor)
