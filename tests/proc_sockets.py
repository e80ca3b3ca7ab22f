"""The TCP sockets a process holds, read from /proc: what tests check a process listens on or
talks to, without psutil."""

from __future__ import annotations

import os
from collections.abc import Iterator


def socket_rows(pid: int) -> Iterator[tuple[str, str, str, str]]:
    """(table, local, remote, state) of each TCP socket of ``pid``, as /proc/<pid>/net/{tcp,tcp6}
    writes them: hex addresses, hex state ("0A" is LISTEN); table is "tcp" or "tcp6"."""
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        return
    for table in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{table}") as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if fields[9] in inodes:
                yield table, fields[1], fields[2], fields[3]
