"""Session directories, the 'current cluster' file, and logging for daemon processes.

Every cluster started on a machine gets a session directory (``session_*`` under the user's
private root, ``/tmp/ember-<uid>`` or ``EMBER_TEMP_DIR``: see ``temp_root``) holding its logs,
its token and what its nodes spill. ``ember start`` also records the cluster's address in
``<root>/ember_current_cluster`` so ``init(address="auto")`` finds it.

A session is alive while some process holds a shared lock on its ``.lock`` file: the process
that made it and the head and node agents started in it. When a new session is made, ended ones
beyond the newest ``KEEP_ENDED`` are deleted (their logs with them): a day of tests used to leave
a hundred behind.
"""

from __future__ import annotations

import fcntl
import glob
import json
import logging
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from ember.runtime import temp_root
from ember.runtime.wire import log_lines

ENV_TEMP_DIR = temp_root.ENV_TEMP_DIR
LOCK = ".lock"
KEEP_ENDED = 5  # ended sessions kept (their logs tell what happened), the newest ones

log = logging.getLogger("ember.runtime.session")

# Locks this process holds on the sessions it made or serves, for as long as it lives.
_held: dict[str, int] = {}


def new_session_dir() -> str:
    """A new session directory (mode 0700), held by this process; ended ones are swept first."""
    root = temp_root.ensure()
    sweep_ended(root)
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    path = os.path.join(root, f"session_{stamp}_{os.getpid()}_{os.urandom(3).hex()}")
    os.mkdir(path, 0o700)
    os.mkdir(os.path.join(path, "logs"), 0o700)
    hold(path)
    return path


def hold(session_dir: str) -> None:
    """Mark the session alive while this process lives (a shared lock on its ``.lock``)."""
    if session_dir in _held:
        return
    try:
        fd = os.open(os.path.join(session_dir, LOCK), os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as error:
        log.warning("session %s: cannot hold it (%s): it may be swept as ended", session_dir, error)
        return
    fcntl.flock(fd, fcntl.LOCK_SH)
    _held[session_dir] = fd


def release(session_dir: str) -> None:
    """This process no longer keeps the session alive (its cluster was stopped)."""
    fd = _held.pop(session_dir, None)
    if fd is not None:
        os.close(fd)


def sweep_ended(root: str) -> list[str]:
    """Delete the ended sessions of ``root`` beyond the newest ``KEEP_ENDED``; returns them.

    Only sessions with a lock file are judged (a session made by an older ember has none: it is
    left alone), and one is ended only when its lock can be taken exclusively, which no live
    process of it allows. The lock is held while the session is deleted.
    """
    ended: list[tuple[float, str, int]] = []
    try:
        names = os.listdir(root)
    except OSError:
        return []
    for name in names:
        path = os.path.join(root, name)
        if not name.startswith("session_") or path in _held:
            continue
        try:
            fd = os.open(os.path.join(path, LOCK), os.O_RDWR | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            ended.append((os.stat(path).st_mtime, path, fd))
        except OSError:
            os.close(fd)  # alive
    ended.sort(reverse=True)
    removed = []
    for index, (_, path, fd) in enumerate(ended):
        if index >= KEEP_ENDED:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
        os.close(fd)
    if removed:
        log.info("removed %d ended session(s) from %s (the newest %d are kept)", len(removed), root, KEEP_ENDED)
    return removed


def current_cluster_file() -> str:
    return os.path.join(temp_root.ensure(), "ember_current_cluster")


def started_dir() -> str:
    return os.path.join(temp_root.ensure(), "started")


def write_current_cluster(
    address: str,
    session_dir: str,
    pids: list[int],
    agent_address: str = "",
    what: dict[str, object] | None = None,
) -> None:
    """Remember a cluster ``ember start --head`` started: ``init("auto")`` finds it."""
    _write_private(current_cluster_file(), f"{address}\n{session_dir}\n")
    record_started(session_dir, pids, address, agent_address, what)


def record_started(
    session_dir: str,
    pids: list[int],
    address: str = "",
    agent_address: str = "",
    what: dict[str, object] | None = None,
) -> None:
    """Remember processes ``ember start`` left running, for ``ember stop`` (their pids) and
    ``ember health`` (the head's and node agent's addresses too).

    ``what`` says what they are, for ``ember stop`` to name: ``kind`` (``head``, ``agent`` or
    ``up``), the cluster's ``name``, ``head_pids`` and ``nodes`` (each a ``name`` and ``pids``).
    """
    os.makedirs(started_dir(), mode=0o700, exist_ok=True)
    record: dict[str, object] = {
        "address": address, "agent_address": agent_address, "session_dir": session_dir,
        "pids": pids, **(what or {}),
    }
    _write_record(_record_path(session_dir), record)


def update_started(session_dir: str, **fields: object) -> None:
    """Change fields of a session's record (``ember up``'s nodes, as they come and go)."""
    path = _record_path(session_dir)
    try:
        with open(path) as f:
            record = json.load(f)
    except (OSError, ValueError):
        return
    record.update(fields)
    _write_record(path, record)


def forget_started(session_dir: str) -> None:
    """The session's processes are stopped: nothing is left for ``ember stop``."""
    try:
        os.unlink(_record_path(session_dir))
    except FileNotFoundError:
        pass


def started_records() -> list[tuple[str, dict[str, Any]]]:
    """Every record of processes left running here (path and contents), oldest first; a record
    that cannot be read is skipped."""
    found = []
    for path in sorted(glob.glob(os.path.join(started_dir(), "*.json"))):
        try:
            with open(path) as f:
                found.append((path, json.load(f)))
        except (OSError, ValueError):
            continue
    return found


def _record_path(session_dir: str) -> str:
    return os.path.join(started_dir(), os.path.basename(session_dir) + ".json")


def _write_record(path: str, record: dict[str, Any]) -> None:
    """Whole or not at all: ``ember stop`` may read it while ``ember up`` rewrites it."""
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    partial = f"{path}.{os.getpid()}.{threading.get_ident()}.partial"
    _write_private(partial, json.dumps(record))
    os.replace(partial, path)


def _write_private(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def read_current_cluster() -> str | None:
    """The address of the cluster ``ember start --head`` last started here."""
    lines = _current_cluster_lines()
    return lines[0] if lines else None


def token_of_current_cluster(head_address: str) -> str:
    """That cluster's token, if ``head_address`` is its head ("" otherwise)."""
    lines = _current_cluster_lines()
    if len(lines) < 2 or lines[0].removeprefix("ember://") != head_address.removeprefix("ember://"):
        return ""
    try:
        return temp_root.read_own(os.path.join(lines[1], "token")).strip()
    except OSError:
        return ""


def _current_cluster_lines() -> list[str]:
    """The pointer's lines; none without a root. A root or pointer that is not this user's
    raises ``temp_root.RootError``: what it says decides where the token is sent."""
    root = temp_root.existing()
    if root is None:
        return []
    try:
        text = temp_root.read_own(os.path.join(root, "ember_current_cluster"))
    except FileNotFoundError:
        return []
    return [line.strip() for line in text.splitlines() if line.strip()]


def setup_daemon_logging(session_dir: str, component: str) -> int:
    """Send this process's logs (and anything it prints) to a file in the session's logs, and
    hold the session while this process lives.

    Returns a duplicate of the original stdout, on which ``announce_ready`` reports.
    """
    hold(session_dir)
    ready_fd = os.dup(1)
    logs = os.path.join(session_dir, "logs")
    os.makedirs(logs, mode=0o700, exist_ok=True)
    path = os.path.join(logs, f"{component}.log")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    logging.basicConfig(
        level=os.environ.get("EMBER_LOG_LEVEL", "INFO"),
        format=f"%(asctime)s %(levelname)s {component} pid={os.getpid()} %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    log_lines.install()
    return ready_fd


def announce_ready(ready_fd: int, address: str) -> None:
    """Tell the launcher (reading our original stdout) where we listen."""
    os.write(ready_fd, f"EMBER_READY {address}\n".encode())
    os.close(ready_fd)


def watch_lifeline(on_eof: Callable[[], None]) -> None:
    """Call ``on_eof`` when stdin closes: the process that started us is gone."""

    def watch() -> None:
        try:
            while os.read(0, 4096):
                pass
        except OSError:
            pass
        on_eof()

    threading.Thread(target=watch, name="ember-lifeline", daemon=True).start()
