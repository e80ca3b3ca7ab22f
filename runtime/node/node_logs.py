"""A node's log files, listed and read for ``ember logs`` and the dashboard.

Every process of a node writes into the session's ``logs`` directory: the agent, the head on
the head node, and each worker's stdout and stderr. Reading goes through the node agent, so
that the files of a node in another pod can be read from anywhere the head can be reached.
Only plain names from that directory are served, and only regular files: no path leads out of
it, nor does a symbolic link in it (``x.log -> ../token`` would hand out the cluster's token).
"""

from __future__ import annotations

import os
import stat

from ember.runtime.wire.protocol import ember_pb2 as pb

MAX_READ = 1 << 20  # bytes one TailLog answer carries at most


class LogNotFound(Exception):
    pass


class NodeLogs:
    def __init__(self, session_dir: str) -> None:
        self.directory = os.path.join(session_dir, "logs")

    def list(self) -> pb.LogList:
        files = []
        try:
            entries = sorted(os.scandir(self.directory), key=lambda e: e.name)
        except FileNotFoundError:
            entries = []
        for entry in entries:
            if entry.is_file(follow_symlinks=False) and not entry.name.startswith("."):
                stat = entry.stat()
                files.append(pb.LogFile(name=entry.name, size=stat.st_size, modified=stat.st_mtime))
        return pb.LogList(files=files)

    def tail(self, request: pb.TailRequest) -> pb.TailReply:
        name = request.name
        if not name or os.path.basename(name) != name or name.startswith("."):
            raise LogNotFound(f"{name!r} is not a log file name (ember logs lists them)")
        path = os.path.join(self.directory, name)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            raise LogNotFound(f"no log file {name!r} in {self.directory}") from None
        except OSError as error:  # ELOOP: a symbolic link
            raise LogNotFound(f"{name!r} in {self.directory} is not a log file: {error.strerror}") from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise LogNotFound(f"{name!r} in {self.directory} is not a regular file")
            f = os.fdopen(fd, "rb")
        except BaseException:
            os.close(fd)
            raise
        with f:
            size = f.seek(0, os.SEEK_END)
            if request.offset:
                start = min(request.offset, size)
            else:
                start = self._start_of_last_lines(f, size, request.lines or 100)
            start = max(start, size - MAX_READ) if not request.offset else start
            f.seek(start)
            data = f.read(min(size - start, MAX_READ))
        return pb.TailReply(text=data.decode(errors="replace"), end=start + len(data))

    @staticmethod
    def _start_of_last_lines(f: object, size: int, lines: int) -> int:
        """The offset where the last ``lines`` lines begin, reading backwards in blocks."""
        import io

        assert isinstance(f, io.BufferedReader)
        position, found, block = size, 0, 8192
        while position > 0:
            step = min(block, position)
            position -= step
            f.seek(position)
            chunk = f.read(step)
            # A final newline ends the last line rather than starting an empty one.
            end = len(chunk) - 1 if position + step == size and chunk.endswith(b"\n") else len(chunk)
            index = end
            while True:
                index = chunk.rfind(b"\n", 0, index)
                if index < 0:
                    break
                found += 1
                if found == lines:
                    return position + index + 1
        return 0
