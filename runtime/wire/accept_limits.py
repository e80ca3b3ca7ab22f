"""What every accept loop of ember's plain-socket servers needs so that a flood cannot stop it.

Anyone who reaches a port can open connections, token or not: a connection costs the server a
descriptor (and, for the threaded servers, a thread) before the first byte is read. So each
server caps the connections it holds (a share of the process's descriptors), drops those that
do not authenticate within seconds, and survives ``accept()`` failing for lack of descriptors or
memory (EMFILE, ENFILE, ENOBUFS, ENOMEM): it stops accepting for a moment, longer each time,
instead of dying (the task channel) or giving up for good (the bulk transfer server). The
kernel's backlog holds what arrives meanwhile.

Log lines about dropped connections are tallied: a flood of thousands makes one line every few
seconds, not thousands.
"""

from __future__ import annotations

import errno
import logging
import resource
import time

# accept() failed because this process or the machine is short of something; retrying at once
# fails again (and spins), waiting lets connections close.
SHORTAGE = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
FIRST_PAUSE = 0.05
LONGEST_PAUSE = 1.0
LOG_EVERY = 10.0  # seconds between two lines of a tally


def descriptor_budget(share: float = 0.5, least: int = 16, most: int = 65536) -> int:
    """How many connections a server may hold: ``share`` of the descriptors this process may
    open, so the rest (gRPC, files, the user's code) still has room."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return most
    return max(least, min(most, int(soft * share)))


class AcceptBackoff:
    """How long an accept loop pauses after a failed ``accept()``."""

    def __init__(self, who: str, log: logging.Logger) -> None:
        self.who = who
        self.log = log
        self._pause = 0.0
        self._logged = float("-inf")
        self._failures = 0

    def failed(self, error: OSError) -> float | None:
        """The pause before accepting again, for a shortage; None for an error that concerns
        only the connection being accepted (it was reset meanwhile): go on at once."""
        if error.errno not in SHORTAGE:
            return None
        self._pause = min(LONGEST_PAUSE, max(FIRST_PAUSE, self._pause * 2))
        self._failures += 1
        now = time.monotonic()
        if now - self._logged >= LOG_EVERY:
            self.log.warning(
                "%s: cannot accept connections (%s; %d time(s) since the last report): pausing "
                "%.2fs; the connections it holds are capped, and idle ones dropped",
                self.who, error.strerror or error, self._failures, self._pause,
            )
            self._logged = now
            self._failures = 0
        return self._pause

    def succeeded(self) -> None:
        self._pause = 0.0


class DropTally:
    """Counts connections dropped for one reason and says so at most every ``LOG_EVERY``
    seconds, naming the last peer."""

    def __init__(self, who: str, why: str, log: logging.Logger, level: int = logging.WARNING) -> None:
        self.who = who
        self.why = why
        self.log = log
        self.level = level
        self._count = 0
        self._logged = float("-inf")

    def add(self, peer: str) -> None:
        self._count += 1
        now = time.monotonic()
        if now - self._logged >= LOG_EVERY:
            self.log.log(
                self.level, "%s: dropped %d connection(s) (the last from %s): %s",
                self.who, self._count, peer, self.why,
            )
            self._logged = now
            self._count = 0
