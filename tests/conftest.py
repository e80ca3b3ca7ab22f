"""Shared fixtures: real local clusters, and a look at the process table."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

REPO = Path(__file__).resolve().parent.parent

T = TypeVar("T")


def eventually(read: Callable[[], T], ok: Callable[[T], bool], timeout: float = 30.0) -> T:
    """``read()`` once ``ok`` holds for it (polled), or the last reading when time runs out:
    the test then asserts on what it got, so a failure shows the value, not a timeout."""
    deadline = time.monotonic() + timeout
    value = read()
    while not ok(value) and time.monotonic() < deadline:
        time.sleep(0.2)
        value = read()
    return value


def processes_of_session(session_dir: str) -> list[int]:
    """Pids of live processes started for a session (they carry EMBER_SESSION_DIR)."""
    marker = f"EMBER_SESSION_DIR={session_dir}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                environ = f.read().split(b"\0")
            with open(f"/proc/{entry}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in environ and state != "Z":
            found.append(int(entry))
    return found


def command_line(pid: int) -> bytes:
    """Process ``pid``'s command line (NUL-separated), or b"" once it has gone: processes of a
    session come and go while a test looks (workers retire, die with their zygote)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


def wait_until_gone(session_dir: str, timeout: float = 10.0) -> list[int]:
    """Wait for every process of the session to exit; returns those still alive."""
    deadline = time.monotonic() + timeout
    alive = processes_of_session(session_dir)
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = processes_of_session(session_dir)
    return alive


def pytest_report_header() -> str:
    """Say up front whether the e2e suite runs, where, and if not, why."""
    from tests.e2e import kube

    reason = kube.missing_tools()
    return f"e2e suite (tests/e2e): {'skipped: ' + reason if reason else 'runs on context ' + kube.CONTEXT}"


@pytest.fixture(scope="module")
def cluster() -> Iterator[object]:
    """A local cluster with 4 CPUs for a test module; checks nothing outlives it."""
    import ember

    ctx = ember.init(num_cpus=4, resources={"custom": 2})
    try:
        yield ctx
    finally:
        ember.shutdown()
    assert wait_until_gone(ctx.session_dir) == []


def run_driver(script: str, *args: str, timeout: float = 60.0, **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run a driver program in a fresh interpreter, as a user would."""
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=str(REPO),
        **kwargs,  # type: ignore[arg-type]
    )
