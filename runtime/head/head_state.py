"""What the head writes down so that a restart loses nothing a user was promised.

Ray keeps this in its GCS, and loses it on a head restart unless an external Redis is set up.
ember keeps the little that must survive in a directory (a persistent volume in Kubernetes):
the detached actors, which users expect to outlive any driver, and the detached placement
groups they may run in (with the nodes their bundles are on), the job counter, so that a new
head never hands out a job id an agent has already seen finish, and the cluster token, which
the agents that stay up keep presenting. Everything else — nodes,
resources, drivers' jobs — is rebuilt by the agents re-registering, or ends with the head.

Each record is one small file replaced atomically (write, fsync, rename): a head killed in the
middle of a write leaves the previous version, never half of one.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from typing import TypeVar

from ember.runtime.wire import auth
from ember.runtime.wire.protocol import ember_pb2 as pb

log = logging.getLogger("ember.runtime.head.head")

Record = TypeVar("Record")


class HeadState:
    def __init__(self, directory: str) -> None:
        self.directory = directory
        self._actors = os.path.join(directory, "actors")
        self._groups = os.path.join(directory, "placement_groups")
        # It will hold the cluster's token too: nobody else on the machine may read it.
        os.makedirs(directory, mode=0o700, exist_ok=True)
        os.makedirs(self._actors, mode=0o700, exist_ok=True)
        os.makedirs(self._groups, mode=0o700, exist_ok=True)

    # ------------------------------------------------------------------ actors

    def save_actor(self, spec: pb.ActorSpec, info: pb.ActorInfo) -> None:
        record = pb.PersistedActor(spec=spec, info=info)
        self._write(os.path.join(self._actors, spec.actor_id.hex()), record.SerializeToString())

    def drop_actor(self, actor_id: bytes) -> None:
        try:
            os.unlink(os.path.join(self._actors, actor_id.hex()))
        except FileNotFoundError:
            pass

    def load_actors(self) -> list[pb.PersistedActor]:
        return self._read_all(self._actors, "actor", pb.PersistedActor.FromString)

    # ------------------------------------------------------------------ placement groups

    def save_group(self, info: pb.PlacementGroupInfo) -> None:
        self._write(os.path.join(self._groups, info.spec.placement_group_id.hex()), info.SerializeToString())

    def drop_group(self, group_id: bytes) -> None:
        try:
            os.unlink(os.path.join(self._groups, group_id.hex()))
        except FileNotFoundError:
            pass

    def load_groups(self) -> list[pb.PlacementGroupInfo]:
        return self._read_all(self._groups, "placement group", pb.PlacementGroupInfo.FromString)

    def _read_all(self, directory: str, what: str, parse: Callable[[bytes], Record]) -> list[Record]:
        found = []
        for name in sorted(os.listdir(directory)):
            if name.startswith("."):
                continue  # a write that never finished
            path = os.path.join(directory, name)
            try:
                with open(path, "rb") as f:
                    found.append(parse(f.read()))
            except Exception as error:  # noqa: BLE001 - one bad file must not stop the head
                log.error("state directory %s: cannot read %s record %s: %s", self.directory, what, path, error)
        return found

    # ------------------------------------------------------------------ the token

    def token(self) -> str:
        """The cluster token a previous head kept here ("" if none): agents that joined before
        a restart still hold it."""
        try:
            return auth.read_file(os.path.join(self.directory, "token"))
        except auth.TokenError:
            return ""

    def save_token(self, value: str) -> None:
        auth.write_file(os.path.join(self.directory, "token"), value)

    # ------------------------------------------------------------------ jobs

    def next_job_number(self) -> int:
        """The next job number, taken for good: a restart continues after it."""
        path = os.path.join(self.directory, "last_job")
        try:
            with open(path) as f:
                last = int(f.read().strip() or 0)
        except (FileNotFoundError, ValueError):
            last = 0
        number = last + 1
        self._write(path, str(number).encode())
        return number

    # ------------------------------------------------------------------ files

    def _write(self, path: str, data: bytes) -> None:
        write_atomically(path, data)


def write_atomically(path: str, data: bytes) -> None:
    """Replace ``path`` with ``data`` whole or not at all (write, fsync, rename): a head killed
    mid-write leaves the old record, never half of a new one. The job store's records too."""
    fd, temporary = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise
