"""Which member of a value cannot be pickled, and a message that names it.

``cannot pickle '_thread.lock' object`` says what, not where: the lock may sit three levels
down a dict of objects. When pickling fails, this walks the value — items of dicts, lists,
tuples and sets, attributes of objects, the variables a function uses — pickling each member,
and follows the first that fails until it reaches one whose members all pickle: that is the
culprit, named by its path (``value['jobs'][2].lock``). It runs only after a failure, and
bounds its walk (depth and members per level), since a value may be large or cyclic.
"""

from __future__ import annotations

import io
import reprlib
import types
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import cloudpickle

from ember.runtime.objects.type_names import a_type

MAX_DEPTH = 40
MAX_MEMBERS = 1000  # looked at per level; a culprit further in is reported at its container
_LEAVES = (str, bytes, bytearray, int, float, complex, bool, type(None), memoryview, range)
_keys = reprlib.Repr()
_keys.maxstring = 40
_keys.maxother = 40


def pickling_error(value: Any) -> Exception | None:
    """What pickling ``value`` raises, or None; large buffers (numpy arrays) are left out of
    band, so asking costs no copy of them."""
    try:
        cloudpickle.Pickler(io.BytesIO(), protocol=5, buffer_callback=lambda _buffer: None).dump(value)
    except Exception as error:  # noqa: BLE001 - any failure is the answer
        return error
    return None


@dataclass
class Culprit:
    path: str
    value: Any
    error: Exception


def find(value: Any, root: str) -> Culprit | None:
    """The innermost member of ``value`` that cannot be pickled, or None when it pickles."""
    error = pickling_error(value)
    if error is None:
        return None
    path, seen = root, {id(value)}
    for _ in range(MAX_DEPTH):
        for suffix, member in _members(value):
            if isinstance(member, _LEAVES) or id(member) in seen:
                continue
            member_error = pickling_error(member)
            if member_error is not None:
                path, value, error = path + suffix, member, member_error
                seen.add(id(member))
                break
        else:
            break
    return Culprit(path, value, error)


def explain(value: Any, error: Exception, root: str = "value") -> str:
    """``value['a'].lock, in a dict, is a _thread.lock, which cannot be pickled (cannot
    pickle '_thread.lock' object)``; ``value is a _thread.lock, ...`` when ``value`` itself is
    the culprit. ``root`` names the value in the path (``args[0]``, a function's name)."""
    culprit = find(value, root)
    if culprit is None:  # it pickles here: the failure came from elsewhere (a store, a hook)
        return f"{root} ({a_type(value)}) could not be pickled: {error}"
    where = "" if culprit.path == root else f", in {a_type(value)},"
    return (
        f"{culprit.path}{where} is {a_type(culprit.value)}, which cannot be pickled "
        f"({culprit.error})"
    )


def reason(value: Any, root: str = "value") -> str | None:
    """``explain``, when ``value`` cannot be pickled; None when it can (whatever failed while
    storing it was something else, to be raised as it is)."""
    error = pickling_error(value)
    return None if error is None else explain(value, error, root)


def _members(value: Any) -> Iterator[tuple[str, Any]]:
    """(path suffix, member) for what pickling ``value`` pickles in turn, as far as known."""
    count = 0
    for suffix, member in _all_members(value):
        count += 1
        if count > MAX_MEMBERS:
            return
        yield suffix, member


def _all_members(value: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield f" (the key {_keys.repr(key)})", key
            yield f"[{_keys.repr(key)}]", item
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield f"[{index}]", item
    elif isinstance(value, set | frozenset):
        for item in value:
            yield f" (its element {_keys.repr(item)})", item
    elif isinstance(value, types.FunctionType):
        code = value.__code__
        for name, cell in zip(code.co_freevars, value.__closure__ or (), strict=False):
            try:
                yield f" (the variable {name!r} it uses)", cell.cell_contents
            except ValueError:  # an empty cell
                continue
        for name in code.co_names:
            if name in value.__globals__ and not isinstance(value.__globals__[name], types.ModuleType):
                yield f" (the global {name!r} it uses)", value.__globals__[name]
    elif isinstance(value, types.MethodType):
        yield ".__self__", value.__self__
        yield ".__func__", value.__func__
    else:
        state = getattr(value, "__dict__", None)
        if isinstance(state, dict):
            for name, item in state.items():
                yield f".{name}", item
        for cls in type(value).__mro__:
            for name in getattr(cls, "__slots__", ()):
                if isinstance(name, str) and hasattr(value, name) and name != "__dict__":
                    yield f".{name}", getattr(value, name)
