"""One log line per event: what a peer sent is logged escaped.

Log lines name what they concern (an owner's address, a driver's host, a requested file), and
some of those names come from whoever connected. A newline in one would let a caller write a
line of its own choosing into the log (``... refused a task channel from x\\n<a forged line>``).
So every handler of an ember process gets ``EscapeControlCharacters``: the arguments of a log
call are shown with their control characters escaped (``\\n``), the message template (ours) and
tracebacks as they are.
"""

from __future__ import annotations

import logging
from typing import Any


def escape(value: Any) -> Any:
    """``value``, or its text with control characters escaped when it has any."""
    if isinstance(value, int | float) or value is None:
        return value
    text = value if isinstance(value, str) else str(value)
    if text.isprintable():
        return value
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


class EscapeControlCharacters(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple):
            record.args = tuple(escape(arg) for arg in args)
        elif isinstance(args, dict):
            record.args = {key: escape(value) for key, value in args.items()}
        return True


def install() -> None:
    """Escape the arguments of every record that reaches the root logger's handlers."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, EscapeControlCharacters) for f in handler.filters):
            handler.addFilter(EscapeControlCharacters())
