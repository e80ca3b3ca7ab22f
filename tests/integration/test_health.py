"""``ember health``, a container's health check: 0 while what ``ember start`` runs here answers,
1 (saying which) when a node is wedged, gone or was never started."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ember.runtime import auth
from tests.conftest import wait_until_gone


def ember_cli(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ember.cli", *args],
        capture_output=True, text=True, env=env, timeout=timeout,
    )


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A private temp root (records of what ember start started) and a cluster token; whatever
    the test started is stopped after it."""
    env = dict(os.environ, EMBER_TEMP_DIR=str(tmp_path / "ember"), EMBER_TOKEN=auth.generate())
    try:
        yield env
    finally:
        ember_cli("stop", "--grace-period", "2", env=env)


def records(env: dict[str, str]) -> list[dict[str, object]]:
    started = Path(env["EMBER_TEMP_DIR"]) / "started"
    return [json.loads(path.read_text()) for path in sorted(started.glob("*.json"))]


def test_health_follows_the_head_and_node_agents_started_here(env: dict[str, str]) -> None:
    nothing = ember_cli("health", env=env)
    assert nothing.returncode == 1 and "nothing to check" in nothing.stderr

    head = ember_cli("start", "--head", "--port", "0", "--num-cpus", "1", "--dashboard-port", "-1",
                     env=env)
    assert head.returncode == 0, head.stderr
    address = records(env)[0]["address"]
    assert isinstance(address, str) and address.startswith("ember://127.0.0.1:")
    worker = ember_cli("start", "--address", address, "--num-cpus", "1", env=env)
    assert worker.returncode == 0, worker.stderr

    healthy = ember_cli("health", env=env)
    assert healthy.returncode == 0, healthy.stderr
    assert "answers (2 nodes alive)" in healthy.stdout
    assert healthy.stdout.count("node agent") == 2

    # A node agent stopped in its tracks still holds its port: only an RPC notices.
    worker_record = next(r for r in records(env) if not r["address"])
    agent_pid = int(worker_record["pids"][0])  # type: ignore[index]
    os.kill(agent_pid, signal.SIGSTOP)
    try:
        wedged = ember_cli("health", "--timeout", "1", env=env)
    finally:
        os.kill(agent_pid, signal.SIGCONT)
    assert wedged.returncode == 1
    assert f"node agent {worker_record['agent_address']} does not answer: no answer within 1s" in wedged.stderr

    # Asked directly, and with the wrong token.
    assert ember_cli("health", "--agent", str(worker_record["agent_address"]), env=env).returncode == 0
    refused = ember_cli("health", "--address", address, env=dict(env, EMBER_TOKEN="not-it"))
    assert refused.returncode == 1 and "the token was refused" in refused.stderr

    # A node agent that died.
    session_dir = str(worker_record["session_dir"])
    os.kill(agent_pid, signal.SIGKILL)
    assert wait_until_gone(session_dir) == []
    gone = ember_cli("health", env=env)
    assert gone.returncode == 1
    assert f"process {agent_pid}" in gone.stderr and "is gone" in gone.stderr

    head_session = str(next(r for r in records(env) if r["address"])["session_dir"])
    assert ember_cli("stop", env=env).returncode == 0
    assert records(env) == []
    assert ember_cli("health", env=env).returncode == 1
    assert wait_until_gone(head_session) == []
