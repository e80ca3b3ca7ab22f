"""What tasks print: written to the worker's log file and forwarded to the job's driver.

``sys.stdout`` and ``sys.stderr`` of a worker are replaced by ``TaskOutput`` streams. Each
complete line is written to the worker's log file (fd 1 or 2, which point at files in the
session's log directory) and queued, tagged with the running task's name, for the driver. The
queue is flushed by the I/O thread, always before the results of the tasks that printed, so a
driver sees a task's output before its result.
"""

from __future__ import annotations

import io
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
