"""``get``, ``put``, ``wait`` and ``cancel``: the object half of the API, with Ray's rules."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ember.runtime.core import context
from ember.runtime.core.owner import Owner
from ember.runtime.objects.object_ref import ObjectRef
from ember.runtime.objects.type_names import a_type


def _core() -> Owner:
    core = context.current_core()
    if core is None:
        from ember.connection import auto_init

        core = auto_init()
    return core


def _check_timeout(timeout: float | None) -> None:
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout < 0):
        raise ValueError(f"timeout must be None or a number >= 0, got {timeout!r}")


def get(object_refs: ObjectRef | Sequence[ObjectRef], *, timeout: float | None = None) -> Any:
    """The value of a ref, or the values of a list of refs, once ready.

    Raises the task's exception (as a ``TaskError`` that is also of the original type),
    ``GetTimeoutError`` after ``timeout`` seconds, or another ``EmberError`` if the object is lost.
    """
    _check_timeout(timeout)
    if isinstance(object_refs, ObjectRef):
        return _core().get([object_refs], timeout)[0]
    if not isinstance(object_refs, list | tuple):
        raise ValueError(
            "'object_refs' must either be an ObjectRef or a list of ObjectRefs, "
            f"got {type(object_refs).__name__}"
        )
    for ref in object_refs:
        if not isinstance(ref, ObjectRef):
            raise ValueError(
                f"'object_refs' must be a list of ObjectRefs; it holds {a_type(ref)}"
            )
    if not object_refs:
        return []
    return _core().get(list(object_refs), timeout)


def put(value: Any, *, _owner: Any = None) -> ObjectRef:
    """Store a value in the cluster and return a ref to it (the value is copied)."""
    return _core().put(value)


def wait(
    object_refs: Sequence[ObjectRef],
    *,
    num_returns: int = 1,
    timeout: float | None = None,
    fetch_local: bool = True,
) -> tuple[list[ObjectRef], list[ObjectRef]]:
    """Split refs into (ready, not ready) once ``num_returns`` are ready or ``timeout`` passes."""
    if isinstance(object_refs, ObjectRef) or not isinstance(object_refs, list | tuple):
        raise TypeError(f"wait() expected a list of ObjectRef, got {type(object_refs).__name__}")
    for ref in object_refs:
        if not isinstance(ref, ObjectRef):
            raise TypeError(f"wait() expected a list of ObjectRef, it holds {a_type(ref)}")
    if len(set(object_refs)) != len(object_refs):
        raise ValueError("wait() expected a list of unique object refs")
    if isinstance(num_returns, bool) or not isinstance(num_returns, int) or num_returns <= 0:
        raise ValueError(f"num_returns must be an int > 0, got {num_returns!r}")
    if num_returns > len(object_refs):
        raise ValueError(
            f"num_returns ({num_returns}) cannot exceed the number of refs ({len(object_refs)})"
        )
    _check_timeout(timeout)
    return _core().wait(list(object_refs), num_returns, timeout)


def cancel(object_ref: ObjectRef, *, force: bool = False, recursive: bool = True) -> None:
    """Cancel the task that produces ``object_ref``.

    A queued task never runs; a running one gets ``KeyboardInterrupt`` (or, with
    ``force=True``, its worker is killed). Its ``get`` raises ``TaskCancelledError``.
    """
    if not isinstance(object_ref, ObjectRef):
        raise TypeError(f"cancel() expected an ObjectRef, got {type(object_ref).__name__}")
    _core().cancel(object_ref, force)
