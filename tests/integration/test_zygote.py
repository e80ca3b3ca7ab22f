"""A dead zygote is replaced; one that keeps dying makes tasks fail with the reason, not hang."""

from __future__ import annotations

import os
import signal

import pytest

import ember
from ember.exceptions import WorkerStartError
from tests.conftest import command_line, eventually, processes_of_session


def _zygote(session_dir: str) -> int | None:
    """The node agent's live zygote, if one runs now. Processes come and go while this reads
    (a killed zygote's workers die with it): one gone meanwhile is simply not it."""
    for pid in processes_of_session(session_dir):
        if b"ember.runtime.node.zygote" not in command_line(pid):
            continue
        try:
            with open(f"/proc/{pid}/stat") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        if b"agent_main" in command_line(parent):
            return pid
    return None


def _kill_zygote(session_dir: str, before: int | None = None) -> int:
    """Kill the zygote running now, once it is not ``before`` (the one killed last, which the
    agent replaces); returns the pid killed."""
    pid = eventually(lambda: _zygote(session_dir), lambda found: found not in (None, before), timeout=60)
    assert pid is not None and pid != before, f"the agent started no zygote after {before}"
    os.kill(pid, signal.SIGKILL)
    return pid


@ember.remote
def where():
    return os.getpid()


def test_zygote_death_is_survived_then_reported():
    ctx = ember.init(num_cpus=2)
    try:
        assert ember.get(where.remote())
        first = _kill_zygote(ctx.session_dir)
        # A fresh zygote forks fresh workers: work goes on.
        assert ember.get([where.remote() for _ in range(4)], timeout=60)
        # Two more deaths within the agent's window (three in all): it gives up and says so.
        second = _kill_zygote(ctx.session_dir, before=first)
        _kill_zygote(ctx.session_dir, before=second)
        with pytest.raises(WorkerStartError, match="cannot start worker processes.*zygote"):
            ember.get(where.options(num_cpus=2).remote(), timeout=60)
    finally:
        ember.shutdown()
