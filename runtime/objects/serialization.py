"""Turning functions, arguments and values into bytes and back.

Everything is pickled with cloudpickle (protocol 5), so functions and classes defined in a
driver's ``__main__`` travel by value. Refs met while pickling are collected so their owners can
count the borrowers. Top-level ``ObjectRef`` arguments become placeholders: the owner resolves
them and ships their values beside the arguments (Ray's rule: nested refs stay refs).
"""

from __future__ import annotations

import hashlib
import io
import pickle
import types
from collections import ChainMap
from collections.abc import Sequence
from typing import Any

import cloudpickle

from ember.runtime.objects import unpicklable
from ember.runtime.objects.object_ref import ObjectRef, _pickling

PROTOCOL = 5


class _Placeholder:
    """Stands for the value of the ``index``-th top-level ObjectRef argument."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index

    def __reduce__(self) -> tuple[Any, ...]:
        return (_Placeholder, (self.index,))


EMPTY_ARGS = pickle.dumps(((), {}), protocol=PROTOCOL)

_DYNAMIC_FILENAME = "<dynamic-code>"


def _code_reduce(code: types.CodeType) -> tuple[Any, tuple[Any, ...]]:
    """cloudpickle's reduction of a code object, with the real file name put back.

    Since 3.1.3 cloudpickle names every function's file ``<dynamic-code>``, which takes the
    source lines out of a remote traceback. The worker runs the same files (on this machine, or
    from the same image), so the real name lets it quote the failing line, as Ray's do.
    """
    constructor, args = cloudpickle.cloudpickle._code_reduce(code)
    return constructor, tuple(
        code.co_filename if arg is _DYNAMIC_FILENAME or arg == _DYNAMIC_FILENAME else arg
        for arg in args
    )


class _Pickler(cloudpickle.Pickler):
    dispatch_table = ChainMap({types.CodeType: _code_reduce}, cloudpickle.Pickler.dispatch_table)


def _cloudpickle(value: Any) -> bytes:
    buffer = io.BytesIO()
    _Pickler(buffer, protocol=PROTOCOL).dump(value)
    return buffer.getvalue()


def dumps(value: Any) -> tuple[bytes, list[ObjectRef]]:
    """Pickle ``value``; returns the bytes and the refs found inside it."""
    previous = getattr(_pickling, "refs", None)
    found: list[ObjectRef] = []
    _pickling.refs = found
    try:
        data = _cloudpickle(value)
    finally:
        _pickling.refs = previous
    return data, found


def loads(data: bytes) -> Any:
    return pickle.loads(data)


def dumps_function(function: Any, name: str) -> tuple[bytes, bytes]:
    """Pickle a task's function once; returns the bytes and their content hash."""
    try:
        data = _cloudpickle(function)
    except Exception as error:
        raise TypeError(
            f"Could not serialize the function {name} to run it remotely: "
            f"{unpicklable.explain(function, error, name)}. "
            "A remote function may not capture locks, sockets, open files or other "
            "process-local state; create such things inside the function instead."
        ) from None
    return data, hashlib.blake2b(data, digest_size=16).digest()


def serialize_args(
    name: str, args: Sequence[Any], kwargs: dict[str, Any]
) -> tuple[bytes, list[ObjectRef], list[ObjectRef]]:
    """Returns (pickled args, top-level refs to resolve, refs nested inside the args)."""
    if not args and not kwargs:
        return EMPTY_ARGS, [], []
    deps: list[ObjectRef] = []
    if any(type(arg) is ObjectRef for arg in args):
        replaced = []
        for arg in args:
            if type(arg) is ObjectRef:
                replaced.append(_Placeholder(len(deps)))
                deps.append(arg)
            else:
                replaced.append(arg)
        args = replaced
    if kwargs and any(type(value) is ObjectRef for value in kwargs.values()):
        replaced_kwargs = {}
        for key, value in kwargs.items():
            if type(value) is ObjectRef:
                replaced_kwargs[key] = _Placeholder(len(deps))
                deps.append(value)
            else:
                replaced_kwargs[key] = value
        kwargs = replaced_kwargs
    try:
        data, nested = dumps((tuple(args), kwargs))
    except Exception as error:
        raise TypeError(
            f"Could not serialize the arguments of {name}: {_explain_args(args, kwargs, error)}"
        ) from None
    return data, deps, nested


def _explain_args(args: Sequence[Any], kwargs: dict[str, Any], error: Exception) -> str:
    """The first argument that cannot be pickled, by position or name, and why."""
    named = [(f"args[{i}]", arg) for i, arg in enumerate(args)]
    named += [(f"kwargs[{key!r}]", value) for key, value in kwargs.items()]
    for root, value in named:
        culprit = unpicklable.pickling_error(value)
        if culprit is not None:
            return unpicklable.explain(value, culprit, root)
    return str(error)


def deserialize_args(data: bytes, values: Sequence[Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    args, kwargs = pickle.loads(data)
    if values:
        args = tuple(values[a.index] if type(a) is _Placeholder else a for a in args)
        if kwargs:
            kwargs = {
                k: values[v.index] if type(v) is _Placeholder else v for k, v in kwargs.items()
            }
    return args, kwargs
