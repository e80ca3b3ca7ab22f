"""What tasks print and log: written to the worker's log file and forwarded to the job's driver.

``sys.stdout`` and ``sys.stderr`` of a worker are replaced by ``TaskOutput`` streams. Each
complete line is written to the worker's log file (fd 1 or 2, which point at files in the
session's log directory) and queued, tagged with the running task's name, for the driver. The
queue is flushed by the I/O thread, always before the results of the tasks that printed, so a
driver sees a task's output before its result.

Records of Python's ``logging`` take the same way (``TaskLogHandler``), as Ray forwards them:
the worker's own handler writes each to the log file once, and this one queues it for the
driver with its level and logger (``WARNING my.module: disk almost full``), on the stderr side.
"""

from __future__ import annotations

import io
import logging
import os
from collections import deque
from collections.abc import Callable

from ember.runtime.wire.protocol import ember_pb2 as pb


class OutputForwarder:
    def __init__(self, wakeup: Callable[[], None]) -> None:
        self.records: deque[pb.LogRecord] = deque()
        # Records queued or on their way to the driver; results wait while this is non-zero.
        self.unsent = 0
        self.task_name = ""
        self._wakeup = wakeup
        self._scheduled = False

    def add(self, text: str, is_stderr: bool) -> None:
        self.unsent += 1
        self.records.append(pb.LogRecord(task_name=self.task_name, text=text, is_stderr=is_stderr))
        if not self._scheduled:
            self._scheduled = True
            self._wakeup()

    def take(self) -> list[pb.LogRecord]:
        self._scheduled = False
        records = []
        while self.records:
            records.append(self.records.popleft())
        return records

    def sent(self, count: int) -> None:
        self.unsent -= count


class TaskOutput(io.TextIOBase):
    """A line-buffered text stream that writes to ``fd`` and forwards whole lines."""

    def __init__(self, fd: int, forwarder: OutputForwarder, is_stderr: bool) -> None:
        super().__init__()
        self._fd = fd
        self._forwarder = forwarder
        self._is_stderr = is_stderr
        self._partial = ""

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        if not text:
            return 0
        os.write(self._fd, text.encode("utf-8", "replace"))
        if "\n" not in text:
            self._partial += text
            return len(text)
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        for line in lines:
            self._forwarder.add(line, self._is_stderr)
        return len(text)

    def flush(self) -> None:
        if self._partial:
            self._forwarder.add(self._partial, self._is_stderr)
            self._partial = ""


class TaskLogHandler(logging.Handler):
    """Forwards the records of tasks' and actors' loggers to the driver, as their prints are.

    Not forwarded: the runtime's plumbing, which the worker's log file keeps — ember's and
    gRPC's records, anything logged on the worker's I/O thread, and asyncio's (its "Task was
    destroyed" notices come from whichever thread collects the garbage, so they cannot be told
    from the user's by thread) — and a record that one of the user's own handlers already
    writes to the task's ``sys.stdout``/``sys.stderr`` (those streams forward it: it would
    reach the driver twice)."""

    PLUMBING = ("ember", "grpc", "asyncio", "concurrent.futures")

    FORMAT = "%(levelname)s %(name)s: %(message)s"

    def __init__(self, forwarder: OutputForwarder, io_thread: int | None) -> None:
        super().__init__()
        self._forwarder = forwarder
        self._io_thread = io_thread
        self.setFormatter(logging.Formatter(self.FORMAT))

    def emit(self, record: logging.LogRecord) -> None:
        if any(record.name == root or record.name.startswith(root + ".") for root in self.PLUMBING):
            return
        if record.thread == self._io_thread or _written_to_task_output(record):
            return
        try:
            text = self.format(record)
        except Exception:  # noqa: BLE001 - as logging.Handler does: report, never raise
            self.handleError(record)
            return
        for line in text.split("\n"):
            self._forwarder.add(line, True)


def _written_to_task_output(record: logging.LogRecord) -> bool:
    """Whether a handler on the record's way up the loggers writes it to a ``TaskOutput``."""
    logger: logging.Logger | None = logging.getLogger(record.name)
    while logger is not None:
        for handler in logger.handlers:
            stream = getattr(handler, "stream", None)
            if isinstance(stream, TaskOutput) and record.levelno >= handler.level:
                return True
        logger = logger.parent if logger.propagate else None
    return False
