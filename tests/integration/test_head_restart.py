"""The head restarts (a pod restart): node agents re-register without being restarted, and with
a state directory the detached actors carry on, state and all, in the workers they ran in."""

from __future__ import annotations

import os
import signal
import socket
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ember import status_report
from ember.runtime import auth, launcher, session
from tests.conftest import processes_of_session, run_driver, wait_until_gone

CREATE = textwrap.dedent(
    """
    import os, sys
    import ember
    ember.init(address=sys.argv[1], namespace="restart")

    @ember.remote(resources={"b": 1})
    class Counter:
        def __init__(self):
            self.n = 0
        def add(self):
            self.n += 1
            return self.n, os.getpid()

    counter = Counter.options(name="counter", lifetime="detached").remote()
    for _ in range(3):
        n, pid = ember.get(counter.add.remote())
    print(n, pid)
    """
)

FIND = textwrap.dedent(
    """
    import sys
    import ember
    ember.init(address=sys.argv[1], namespace="restart")
    try:
        counter = ember.get_actor("counter")
    except ValueError as error:
        print("missing:", error)
    else:
        n, pid = ember.get(counter.add.remote(), timeout=30)
        print(n, pid)
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    def __init__(self, state_dir: str | None) -> None:
        self.session_dir = session.new_session_dir()
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.state_dir = state_dir
        self.started: list[launcher.LocalProcesses] = []
        first = launcher.start(
            self.session_dir, head_port=self.port, num_cpus=1, state_dir=state_dir
        )
        self.head = first.processes[0]
        self.token = first.token
        self.started.append(first)
        self.started.append(
            launcher.start_agent(
                self.session_dir, self.address, num_cpus=2, resources={"b": 2}, token=self.token
            )
        )
        self.wait_nodes(2)

    def restart_head(self) -> None:
        self.head.send_signal(signal.SIGKILL)
        self.head.wait()
        # With a state directory the head finds the token there; without, it is given again
        # (on Kubernetes both come from the cluster's Secret).
        restarted = launcher.start_head(
            self.session_dir, port=self.port, state_dir=self.state_dir,
            token="" if self.state_dir else self.token,
        )
        self.head = restarted.processes[0]
        self.started.append(restarted)

    def wait_nodes(self, count: int, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        alive = 0
        while time.monotonic() < deadline:
            try:
                auth.set_token(self.token)
                alive = len([n for n in status_report.fetch(self.address, 2.0).nodes if n.alive])
            except Exception:  # noqa: BLE001 - the head may not listen yet
                alive = 0
            if alive == count:
                return
            time.sleep(0.1)
        raise AssertionError(f"{alive} of {count} nodes registered with the head")

    def env(self) -> dict[str, str]:
        return dict(os.environ, EMBER_TOKEN=self.token)

    def stop(self) -> None:
        for processes in reversed(self.started):
            processes.stop()


@pytest.fixture
def make_cluster() -> Iterator[type[Cluster]]:
    made: list[Cluster] = []

    def make(state_dir: str | None) -> Cluster:
        cluster = Cluster(state_dir)
        made.append(cluster)
        return cluster

    yield make  # type: ignore[misc]
    for cluster in made:
        cluster.stop()
        assert wait_until_gone(cluster.session_dir) == []


def test_detached_actor_survives_a_head_restart_with_a_state_dir(make_cluster, tmp_path: Path) -> None:
    cluster = make_cluster(str(tmp_path / "state"))
    created = run_driver(CREATE, cluster.address, env=cluster.env())
    assert created.returncode == 0, created.stderr
    n, pid = created.stdout.split()
    assert n == "3"
    agents = [p.pid for p in cluster.started[0].processes[1:] + cluster.started[1].processes]

    cluster.restart_head()
    # The same agent processes register again: nothing restarted them.
    cluster.wait_nodes(2)
    assert all(_running(agent) for agent in agents)

    found = run_driver(FIND, cluster.address, env=cluster.env())
    assert found.returncode == 0, found.stderr
    # The same worker process, with its state: the fourth call returns 4.
    assert found.stdout.split() == ["4", pid], found.stdout

    # A second restart, and the job counter and actor both carry on.
    cluster.restart_head()
    cluster.wait_nodes(2)
    again = run_driver(FIND, cluster.address, env=cluster.env())
    assert again.stdout.split() == ["5", pid], again.stdout + again.stderr


def test_without_a_state_dir_nodes_rejoin_and_the_actor_is_let_go(
    make_cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMBER_HEAD_RESTART_GRACE_S", "2")
    cluster = make_cluster(None)
    created = run_driver(CREATE, cluster.address, env=cluster.env())
    assert created.returncode == 0, created.stderr
    actor_pid = int(created.stdout.split()[1])

    cluster.restart_head()
    cluster.wait_nodes(2)
    found = run_driver(FIND, cluster.address, env=cluster.env())
    assert found.stdout.startswith("missing: Failed to look up actor with name 'counter' in namespace 'restart'"), (
        found.stdout + found.stderr
    )
    # Nobody took the actor back: its worker is stopped once the grace period is over.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _running(actor_pid):
        time.sleep(0.1)
    assert not _running(actor_pid)
    assert actor_pid not in processes_of_session(cluster.session_dir)


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False

