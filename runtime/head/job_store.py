"""Where the head keeps submitted jobs: one record and one output file per job.

The directory is ``jobs/`` in the head's state directory when it has one (a persistent volume
in Kubernetes), so a restarted head still lists finished jobs with their output and takes back
the running ones; else it is in the session directory and lasts as long as the head.

A record is the job's ``JobInfo``, rewritten whole and atomically (write, fsync, rename) on
every change of state: a head killed mid-write leaves the previous version. Output is appended
as the job's supervisor sends it; the supervisor sends from the offset the head says it holds,
so after a restart the file continues where it stopped, with nothing twice.
"""

from __future__ import annotations

import logging
import os
import re

from ember.runtime.head.head_state import write_atomically
from ember.runtime.wire.protocol import ember_pb2 as pb

log = logging.getLogger("ember.runtime.head.jobs")

# A submission id names files: letters, digits, '_', '.', '-', not starting with '.' or '-'.
SUBMISSION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class JobStore:
    def __init__(self, directory: str) -> None:
        self.directory = directory
        os.makedirs(directory, mode=0o700, exist_ok=True)

    def _record_path(self, submission_id: str) -> str:
        return os.path.join(self.directory, f"{submission_id}.job")

    def log_path(self, submission_id: str) -> str:
        return os.path.join(self.directory, f"{submission_id}.log")

    # ------------------------------------------------------------------ records

    def save(self, info: pb.JobInfo) -> None:
        write_atomically(self._record_path(info.submission_id), info.SerializeToString())

    def load(self) -> list[pb.JobInfo]:
        found = []
        for name in sorted(os.listdir(self.directory)):
            if name.startswith(".") or not name.endswith(".job"):
                continue
            path = os.path.join(self.directory, name)
            try:
                with open(path, "rb") as f:
                    found.append(pb.JobInfo.FromString(f.read()))
            except Exception as error:  # noqa: BLE001 - one bad file must not stop the head
                log.error("jobs in %s: cannot read the record %s: %s", self.directory, path, error)
        return found

    def delete(self, submission_id: str) -> None:
        for path in (self._record_path(submission_id), self.log_path(submission_id)):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    # ------------------------------------------------------------------ output

    def log_size(self, submission_id: str) -> int:
        try:
            return os.stat(self.log_path(submission_id)).st_size
        except FileNotFoundError:
            return 0

    def append(self, submission_id: str, offset: int, data: bytes) -> int:
        """Add output that starts at ``offset``; what the file holds already is skipped (a
        supervisor resending after a restart). Returns the file's size after."""
        size = self.log_size(submission_id)
        if offset > size:
            raise ValueError(
                f"job {submission_id}: output at offset {offset}, but the head holds {size} bytes"
            )
        data = data[size - offset:]
        if data:
            with open(self.log_path(submission_id), "ab") as f:
                f.write(data)
            size += len(data)
        return size

    def read(self, submission_id: str, offset: int, limit: int) -> bytes:
        try:
            with open(self.log_path(submission_id), "rb") as f:
                f.seek(offset)
                return f.read(limit)
        except FileNotFoundError:
            return b""
