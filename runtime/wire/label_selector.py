"""Label selectors: which nodes a task or actor may run on, by the nodes' labels (Ray's syntax).

A selector maps a label key to a condition on the node's value for it:

- ``"a"``: the node has the label with value ``a``;
- ``"!a"``: the node does not have it with value ``a`` (a node without the label matches);
- ``"in(a, b)"``: the node has it with one of the values;
- ``"!in(a, b)"``: the node has none of them (or not the label).

Keys and values follow Kubernetes' label syntax, as Ray's do. The owner checks a selector when
it is written (so a typo fails at ``.options()``), and node agents and the head match it
against a node's labels.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_NAME = r"[a-zA-Z0-9](?:[a-zA-Z0-9_.-]{0,61}[a-zA-Z0-9])?"
_PREFIX = re.compile(rf"^(?:{_NAME})(?:\.(?:{_NAME}))*$")
_KEY_NAME = re.compile(rf"^{_NAME}$")
_CONDITION = re.compile(
    rf"^(?P<not>!)?(?:(?P<in>in)\((?P<values>{_NAME}(?:, ?{_NAME})*)\)|(?P<value>{_NAME}))$"
)


class LabelSelectorError(ValueError):
    """A selector that does not follow the syntax, said with the key at fault."""


def check(selector: object, what: str = "label_selector") -> dict[str, str]:
    """The selector as a plain dict, or ``LabelSelectorError`` naming what is wrong."""
    if not isinstance(selector, Mapping):
        raise LabelSelectorError(
            f"{what} must be a dict of label keys to conditions, got {type(selector).__name__}"
        )
    checked = {}
    for key, condition in selector.items():
        if not isinstance(key, str) or not isinstance(condition, str):
            raise LabelSelectorError(
                f"{what}: keys and conditions must be strings, got {key!r}: {condition!r}"
            )
        problem = _key_problem(key)
        if problem:
            raise LabelSelectorError(f"{what}: {problem}")
        if condition and not _CONDITION.match(condition):
            raise LabelSelectorError(
                f"{what}: invalid condition {condition!r} for label {key!r}; write a value, "
                f"'!value', 'in(a, b)' or '!in(a, b)' (values of at most 63 letters, digits, "
                f"'-', '_' or '.', starting and ending with a letter or digit)"
            )
        checked[key] = condition
    return checked


def _key_problem(key: str) -> str:
    prefix, _, name = key.rpartition("/")
    if "/" in key and (len(prefix) > 253 or not _PREFIX.match(prefix)):
        return f"invalid label key {key!r}: its prefix must be DNS labels separated by dots"
    if len(name) > 63 or not _KEY_NAME.match(name):
        return (
            f"invalid label key {key!r}: its name must be at most 63 letters, digits, '-', '_' "
            f"or '.', starting and ending with a letter or digit"
        )
    return ""


def matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """Whether a node with ``labels`` satisfies every condition of ``selector``."""
    for key, condition in selector.items():
        negated = condition.startswith("!")
        body = condition[1:] if negated else condition
        if body.startswith("in(") and body.endswith(")"):
            allowed = {value.strip() for value in body[3:-1].split(",")}
        else:
            allowed = {body}
        present = key in labels and labels[key] in allowed
        if present == negated:
            return False
    return True


def describe(selector: Mapping[str, str]) -> str:
    return "{" + ", ".join(f"{key}: {condition}" for key, condition in sorted(selector.items())) + "}"
