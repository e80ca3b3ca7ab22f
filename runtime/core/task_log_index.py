"""Where each task's lines are in its worker's log files (the dashboard's task detail).

A worker's stdout and stderr are files (fd 1 and 2, opened for appending), so where a task's
output begins and ends is the files' offsets when it starts and when it ends: four ``lseek``
calls a task, no marker written into the log, nothing added to what a task prints. The index
keeps the latest ``KEEP`` tasks' offsets; reading a task's lines reads those byte ranges back.

Calls of a threaded or async actor overlap, so their ranges hold each other's lines too; the
actor's detail shows its worker's log instead.
"""

from __future__ import annotations

import os
from collections import OrderedDict

from ember.runtime.wire.protocol import ember_pb2 as pb

KEEP = 10000  # tasks whose offsets are kept (the latest)
MAX_READ = 256 << 10  # bytes of each file one answer carries (the end, when longer)
RUNNING = -1


class TaskLogIndex:
    def __init__(self, out_path: str, err_path: str, out_fd: int = 1, err_fd: int = 2) -> None:
        self.paths = (out_path, err_path)
        self.fds = (out_fd, err_fd)
        # task id -> [stdout start, stderr start, stdout end, stderr end]
        self.spans: OrderedDict[bytes, list[int]] = OrderedDict()

    def _offsets(self) -> tuple[int, int]:
        try:
            return os.lseek(self.fds[0], 0, os.SEEK_CUR), os.lseek(self.fds[1], 0, os.SEEK_CUR)
        except OSError:  # not a file (a terminal, a pipe): nothing to index
            return RUNNING, RUNNING

    def started(self, task_id: bytes) -> None:
        out, err = self._offsets()
        spans = self.spans
        spans[task_id] = [out, err, RUNNING, RUNNING]
        if len(spans) > KEEP:
            spans.popitem(last=False)

    def ended(self, task_id: bytes) -> None:
        span = self.spans.get(task_id)
        if span is not None:
            span[2], span[3] = self._offsets()

    def read(self, task_id: bytes) -> pb.TaskLog:
        span = self.spans.get(task_id)
        if span is None:
            return pb.TaskLog(found=False)
        reply = pb.TaskLog(found=True)
        texts = []
        for path, start, end in ((self.paths[0], span[0], span[2]), (self.paths[1], span[1], span[3])):
            if start == RUNNING:
                texts.append("")
                continue
            try:
                with open(path, "rb") as f:
                    stop = end if end != RUNNING else f.seek(0, os.SEEK_END)
                    begin = max(start, stop - MAX_READ)
                    reply.truncated |= begin > start
                    f.seek(begin)
                    texts.append(f.read(max(0, stop - begin)).decode(errors="replace"))
            except OSError as error:
                reply.error = f"cannot read {path}: {error.strerror}"
                texts.append("")
        reply.out, reply.err = texts
        return reply
