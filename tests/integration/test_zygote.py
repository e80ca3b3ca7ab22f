"""A dead zygote is replaced; one that keeps dying makes tasks fail with the reason, not hang."""

from __future__ import annotations

import os
import signal
import time

import pytest

import ember
from ember.exceptions import WorkerStartError
from tests.conftest import processes_of_session


def _zygote(session_dir: str) -> int:
    for pid in processes_of_session(session_dir):
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            if b"ember.runtime.node.zygote" in f.read():
                with open(f"/proc/{pid}/stat") as stat:
                    parent = int(stat.read().rsplit(")", 1)[1].split()[1])
                with open(f"/proc/{parent}/cmdline", "rb") as f2:
                    if b"agent_main" in f2.read():
                        return pid
    raise AssertionError("no zygote found")


@ember.remote
def where():
    return os.getpid()


def test_zygote_death_is_survived_then_reported():
    ctx = ember.init(num_cpus=2)
    try:
        assert ember.get(where.remote())
        first = _zygote(ctx.session_dir)
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if _zygote(ctx.session_dir) != first:
                    break
            except AssertionError:
                pass
            time.sleep(0.05)
        # A fresh zygote forks fresh workers: work goes on.
        assert ember.get([where.remote() for _ in range(4)], timeout=30)

        for _ in range(2):
            os.kill(_zygote(ctx.session_dir), signal.SIGKILL)
            time.sleep(0.5)
        with pytest.raises(WorkerStartError, match="cannot start worker processes.*zygote"):
            ember.get(where.options(num_cpus=2).remote(), timeout=30)
    finally:
        ember.shutdown()
