"""Naming a value's type in an error message, with the right article ("an int", "a dict").

Messages that say what a value is ("it holds an int", "value.lock is a _thread.lock") are
generated; an article written into the format string is wrong for half the types.
"""

from __future__ import annotations

from typing import Any

VOWELS = frozenset("aeiouAEIOU")


def with_article(noun: str) -> str:
    """``noun`` after "a" or "an", chosen by its first letter (a leading ``_`` is not read)."""
    first = noun.lstrip("_")[:1]
    return f"{'an' if first in VOWELS else 'a'} {noun}"


def type_name(value: Any) -> str:
    """The type of ``value`` as users know it: ``int``, ``Holder``, ``_thread.lock``."""
    kind = type(value)
    if kind.__module__ in ("builtins", "__main__"):
        return kind.__qualname__
    return f"{kind.__module__}.{kind.__qualname__}"


def a_type(value: Any) -> str:
    """``an int``, ``a dict``, ``a _thread.lock``: the type of ``value`` with its article."""
    return with_article(type_name(value))
