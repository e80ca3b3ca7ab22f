"""Session directories, the 'current cluster' file, and logging for daemon processes.

Every cluster started on a machine gets a session directory (``/tmp/ember/session_*``, or under
``EMBER_TEMP_DIR``) holding its logs. ``ember start`` also records the cluster's address in
``/tmp/ember/ember_current_cluster`` so ``init(address="auto")`` finds it.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable

from ember.runtime.wire import log_lines

ENV_TEMP_DIR = "EMBER_TEMP_DIR"


def temp_root() -> str:
    return os.environ.get(ENV_TEMP_DIR) or "/tmp/ember"


def new_session_dir() -> str:
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    path = os.path.join(temp_root(), f"session_{stamp}_{os.getpid()}_{os.urandom(3).hex()}")
    os.makedirs(os.path.join(path, "logs"), exist_ok=True)
    return path


def current_cluster_file() -> str:
    return os.path.join(temp_root(), "ember_current_cluster")


def started_dir() -> str:
    return os.path.join(temp_root(), "started")


def write_current_cluster(
    address: str, session_dir: str, pids: list[int], agent_address: str = ""
) -> None:
    """Remember a cluster ``ember start --head`` started: ``init("auto")`` finds it."""
    with open(current_cluster_file(), "w") as f:
        f.write(f"{address}\n{session_dir}\n")
    record_started(session_dir, pids, address, agent_address)


def record_started(
    session_dir: str, pids: list[int], address: str = "", agent_address: str = ""
) -> None:
    """Remember processes ``ember start`` left running, for ``ember stop`` (their pids) and
    ``ember health`` (the head's and node agent's addresses too)."""
    os.makedirs(started_dir(), exist_ok=True)
    record = {
        "address": address, "agent_address": agent_address, "session_dir": session_dir,
        "pids": pids,
    }
    with open(os.path.join(started_dir(), os.path.basename(session_dir) + ".json"), "w") as f:
        json.dump(record, f)


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
        with open(os.path.join(lines[1], "token")) as f:
            return f.read().strip()
    except OSError:
        return ""


def _current_cluster_lines() -> list[str]:
    try:
        with open(current_cluster_file()) as f:
            return [line.strip() for line in f if line.strip()]
    except OSError:
        return []


def setup_daemon_logging(session_dir: str, component: str) -> int:
    """Send this process's logs (and anything it prints) to a file in the session's logs.

    Returns a duplicate of the original stdout, on which ``announce_ready`` reports.
    """
    ready_fd = os.dup(1)
    logs = os.path.join(session_dir, "logs")
    os.makedirs(logs, exist_ok=True)
    path = os.path.join(logs, f"{component}.log")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
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
