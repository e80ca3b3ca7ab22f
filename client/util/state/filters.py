"""Filtering, limiting and trimming rows the way Ray's state API does.

A filter is ``(column, "=" | "!=", value)``; several filters must all hold. Strings compare
without regard to case (``("state", "=", "running")`` matches RUNNING); a value given as a
string for a number or boolean column is read as one, so the CLI's ``--filter pid=42`` works.
A column that cannot be filtered on, or a predicate other than ``=`` and ``!=``, is refused
with an error naming it and what is allowed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from ember.util.state.schema import StateSchema

Filter = tuple[str, str, Any]
Row = TypeVar("Row", bound=StateSchema)

PREDICATES = ("=", "!=")
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


def check(schema: type[StateSchema], filters: Iterable[Sequence[Any]] | None) -> list[Filter]:
    """The filters, validated and with their values read as the columns' types."""
    checked: list[Filter] = []
    filterable = schema.filterable_columns()
    types = schema.column_types()
    for entry in filters or ():
        if isinstance(entry, str | bytes) or len(entry) != 3:
            raise ValueError(
                f"a filter is a (column, predicate, value) tuple, e.g. (\"state\", \"=\", \"RUNNING\"); "
                f"got {entry!r}"
            )
        key, predicate, value = entry
        key = str(key).lower()
        if key not in filterable:
            raise ValueError(
                f"{key!r} is not a column of {schema.resource} that can be filtered on; "
                f"filterable columns: {', '.join(filterable)}"
            )
        if predicate not in PREDICATES:
            raise ValueError(
                f"unsupported filter predicate {predicate!r} in the filter on {key!r}; "
                f"available predicates: {', '.join(PREDICATES)}"
            )
        checked.append((key, predicate, _typed(key, value, types[key])))
    return checked


def _typed(key: str, value: Any, kind: str) -> Any:
    if not isinstance(value, str):
        return value
    base = kind.split("|")[0].strip()
    if base == "int":
        try:
            return int(value)
        except ValueError:
            raise ValueError(f"the filter on {key!r} needs an integer, got {value!r}") from None
    if base == "bool":
        lowered = value.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ValueError(f"the filter on {key!r} needs true or false, got {value!r}")
    return value


def _matches(row: StateSchema, key: str, predicate: str, value: Any) -> bool:
    actual = getattr(row, key)
    if isinstance(actual, str) and isinstance(value, str):
        equal = actual.lower() == value.lower()
    else:
        equal = actual == value
    return equal if predicate == "=" else not equal


def apply(rows: Iterable[Row], filters: list[Filter]) -> list[Row]:
    return [row for row in rows if all(_matches(row, *f) for f in filters)]


def trim(rows: list[Row], detail: bool) -> list[Row]:
    """Without ``detail``, the detail-only columns are None, as in Ray's plain listing."""
    if detail or not rows:
        return rows
    schema = type(rows[0])
    hidden = set(schema.columns(detail=True)) - set(schema.columns(detail=False))
    for row in rows:
        for name in hidden:
            setattr(row, name, None)
    return rows
