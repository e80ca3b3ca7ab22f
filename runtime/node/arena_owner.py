"""Who owns a node's arena directory in ``/dev/shm``, and sweeping those whose owner is gone.

The arena lives in memory (``/dev/shm``), not on disk: a node agent that is SIGKILLed leaves it
behind, gigabytes the machine gets back only at reboot (a test run left five). So each agent
claims its arena directory with a lock file next to it (``<dir>.lock``), created and locked
before the directory exists and held for the agent's life, and the next agent to start on the
machine deletes every arena of this user whose lock it can take: their agents are gone. An
arena without a lock file (made by an older ember) is left alone: nothing says whether its
agent lives.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import stat

log = logging.getLogger("ember.runtime.node.arena_owner")

SHM = "/dev/shm"
PREFIX = "ember-"
SUFFIX = ".lock"


def claim(directory: str) -> int:
    """Lock ``directory``'s lock file (made if missing), then make the directory (mode 0700);
    returns the lock's descriptor, to keep open for as long as the arena is in use."""
    lock = directory + SUFFIX
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        # Blocking: the name is this agent's own, so only a sweeper can hold it, for a moment;
        # if it did, it deleted the file, and the lock taken is on a file no longer there.
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if os.stat(lock).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    os.chmod(directory, 0o700)
    return fd


def release(directory: str, fd: int) -> None:
    """The agent is done with its arena (it deleted the directory): its lock file goes too."""
    try:
        os.unlink(directory + SUFFIX)
    except FileNotFoundError:
        pass
    os.close(fd)


def sweep(where: str = SHM) -> list[str]:
    """Delete this user's arenas in ``where`` whose owner is gone; returns their directories."""
    removed = []
    uid = os.getuid()
    try:
        names = os.listdir(where)
    except OSError:
        return []
    for name in names:
        if not (name.startswith(PREFIX) and name.endswith(SUFFIX)):
            continue
        lock = os.path.join(where, name)
        try:
            info = os.lstat(lock)
        except OSError:
            continue
        if not stat.S_ISREG(info.st_mode) or info.st_uid != uid:
            continue
        try:
            fd = os.open(lock, os.O_RDWR | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)  # its agent lives
            continue
        directory = lock[: -len(SUFFIX)]
        shutil.rmtree(directory, ignore_errors=True)
        release(directory, fd)
        removed.append(directory)
    if removed:
        log.warning(
            "removed %d arena(s) of node agents that were killed: %s", len(removed), ", ".join(removed)
        )
    return removed
