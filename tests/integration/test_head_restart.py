"""The head restarts (a pod restart): node agents re-register without being restarted, and with
a state directory the detached actors carry on, state and all, in the workers they ran in."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ember import status_report
from ember.runtime import launcher, session
from ember.runtime.wire import auth
from tests.conftest import REPO, processes_of_session, run_driver, wait_until_gone

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


GROUP_CREATE = textwrap.dedent(
    """
    import os, sys
    import ember
    from ember.util import placement_group, placement_group_table
    from ember.util.scheduling_strategies import PlacementGroupSchedulingStrategy
    ember.init(address=sys.argv[1], namespace="restart")

    @ember.remote(num_cpus=1)
    class Server:
        def pid(self):
            return os.getpid()

    pg = placement_group([{"CPU": 1, "b": 1}], name="kept", lifetime="detached")
    ember.get(pg.ready(), timeout=30)
    server = Server.options(
        name="server", lifetime="detached",
        scheduling_strategy=PlacementGroupSchedulingStrategy(pg, 0),
    ).remote()
    print(ember.get(server.pid.remote()), placement_group_table(pg)["bundles_to_node_id"][0])
    """
)

GROUP_FIND = textwrap.dedent(
    """
    import sys, time
    import ember
    from ember.util import get_placement_group, placement_group_table, remove_placement_group
    from ember.util.scheduling_strategies import PlacementGroupSchedulingStrategy
    ember.init(address=sys.argv[1], namespace="restart")

    @ember.remote(num_cpus=0)
    def where():
        return ember.get_runtime_context().get_node_id()

    pg = get_placement_group("kept")
    entry = placement_group_table(pg)
    server = ember.get_actor("server")
    pid = ember.get(server.pid.remote(), timeout=30)
    ran = ember.get(where.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg, 0)).remote(), timeout=30)
    free = ember.available_resources().get("b", 0.0)
    remove_placement_group(pg)
    after = "alive"
    deadline = time.monotonic() + 30  # a removal is carried out in the background, as Ray's
    while after == "alive" and time.monotonic() < deadline:
        try:
            ember.get(server.pid.remote(), timeout=30)
            time.sleep(0.1)
        except ember.exceptions.ActorDiedError as error:
            after = "died" if "was removed" in str(error) else repr(str(error))
    print(entry["state"], entry["bundles_to_node_id"][0], pid, ran, free, after)
    """
)


def test_a_detached_group_and_its_actor_survive_a_head_restart_with_a_state_dir(
    make_cluster, tmp_path: Path
) -> None:
    """The bundle stays reserved on its node, the actor in it keeps running there, and the
    restarted head knows both: work runs in the group, and removing it kills the actor."""
    cluster = make_cluster(str(tmp_path / "state"))
    created = run_driver(GROUP_CREATE, cluster.address, env=cluster.env())
    assert created.returncode == 0, created.stderr
    pid, node = created.stdout.split()

    cluster.restart_head()
    cluster.wait_nodes(2)
    found = run_driver(GROUP_FIND, cluster.address, env=cluster.env())
    assert found.returncode == 0, found.stderr
    state, node_after, pid_after, ran, free_b, after = found.stdout.split()
    assert (state, node_after, pid_after, ran) == ("CREATED", node, pid, node), found.stdout
    assert float(free_b) == 1.0  # of the node's two, the bundle still holds one
    assert after == "died", found.stdout


FREE_B = textwrap.dedent(
    """
    import sys, time
    import ember
    ember.init(address=sys.argv[1], namespace="restart")
    deadline = time.monotonic() + 30
    while ember.available_resources().get("b", 0.0) < 2.0 and time.monotonic() < deadline:
        time.sleep(0.1)
    print(ember.available_resources().get("b", 0.0))
    """
)


def test_a_restarted_head_that_does_not_know_a_group_releases_its_bundles(
    make_cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a state directory the new head knows no group: the node lists the bundle it
    still holds, and the head has it released, so nothing stays reserved for nobody."""
    monkeypatch.setenv("EMBER_HEAD_RESTART_GRACE_S", "2")
    cluster = make_cluster(None)
    created = run_driver(GROUP_CREATE, cluster.address, env=cluster.env())
    assert created.returncode == 0, created.stderr
    cluster.restart_head()
    cluster.wait_nodes(2)
    free = run_driver(FREE_B, cluster.address, env=cluster.env())
    assert free.returncode == 0, free.stderr
    assert float(free.stdout.split()[-1]) == 2.0, free.stdout


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False



TRAFFIC = textwrap.dedent(
    """
    import gc, sys
    import numpy as np
    import ember
    ember.init(address=sys.argv[1])

    @ember.remote
    def double(a):
        return a * 2

    @ember.remote(resources={"b": 1})
    def plus_one(a):
        return a + 1

    print("running", flush=True)
    while True:
        try:
            # Large enough for the object store: outside the cluster, a put streams its bytes.
            x = ember.put(np.ones(1 << 20))
            ember.get([double.remote(x), plus_one.remote(double.remote(x))], timeout=30)
        except ConnectionError as error:
            # Outside, a put may fail first: its way to the node ran through the head.
            if "lost the head" in str(error):
                print("ended:", error, flush=True)
                break
    # What was left behind is collected now, not by chance at exit: noise shows here.
    gc.collect()
    """
)

NOISE = ("Task was destroyed", "aclose()", "Traceback", "never retrieved", " ERROR ")


def _agent_lines(cluster: Cluster) -> dict[int, list[str]]:
    """Each agent's log lines (agents may share a log file: a record names its pid, and the
    lines after it without one, a traceback say, are its too)."""
    lines: dict[int, list[str]] = {}
    for path in Path(cluster.session_dir, "logs").glob("node-agent*.log"):
        pid = 0
        for line in path.read_text().splitlines():
            if " pid=" in line:
                pid = int(line.split(" pid=", 1)[1].split()[0])
            lines.setdefault(pid, []).append(line)
    return lines


def _wait_for_lines(cluster: Cluster, agents: list[int], text: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = _agent_lines(cluster)
        if all(any(text in line for line in lines.get(pid, [])) for pid in agents):
            return
        time.sleep(0.1)
    raise AssertionError(f"not every agent of {agents} logged {text!r}: {_agent_lines(cluster)}")


def test_losing_the_head_is_said_once_and_the_rejoin_too_without_asyncio_noise(
    make_cluster, tmp_path: Path
) -> None:
    cluster = make_cluster(str(tmp_path / "state"))
    agents = [p.pid for p in cluster.started[0].processes[1:] + cluster.started[1].processes]
    drivers = {}
    # One driver inside the cluster and one outside it (through the head, as through a
    # port-forward), both busy with tasks and puts when the head goes away.
    for where, via_head in (("inside", "0"), ("outside", "1")):
        drivers[where] = subprocess.Popen(
            [sys.executable, "-c", TRAFFIC, cluster.address],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(REPO),
            env=dict(cluster.env(), EMBER_VIA_HEAD=via_head),
        )
    try:
        for driver in drivers.values():
            assert driver.stdout is not None
            assert driver.stdout.readline().strip() == "running"
        head = cluster.address
        cluster.head.send_signal(signal.SIGKILL)
        cluster.head.wait()
        lost = f"lost the head at {head} ("
        _wait_for_lines(cluster, agents, lost)
        outputs = {where: driver.communicate(timeout=60) for where, driver in drivers.items()}
        # Retries fail while the head is away; none of them is said again.
        time.sleep(1.0)
        cluster.restart_head()
        cluster.wait_nodes(2)
        _wait_for_lines(cluster, agents, f"re-joined the head at {head}")
    finally:
        for driver in drivers.values():
            if driver.poll() is None:
                driver.kill()
                driver.communicate()

    for where, (out, err) in outputs.items():
        assert out.startswith(f"ended: lost the head at {head}"), (where, out, err)
        said = [line for line in err.splitlines() if lost in line]
        assert len(said) == 1 and " WARNING " in said[0], (where, err)
        assert "driver pid" in said[0] and "job " in said[0], said
        assert not [word for word in NOISE if word in err], (where, err)
    lines = _agent_lines(cluster)
    for pid in agents:
        said = [line for line in lines[pid] if lost in line]
        assert len(said) == 1 and " WARNING " in said[0] and "; retrying" in said[0], lines[pid]
        assert said[0].split(": ", 1)[1].startswith("node "), said  # it names the node
        back = [line for line in lines[pid] if "re-joined the head" in line]
        assert len(back) == 1 and " INFO " in back[0], lines[pid]
        assert not [line for line in lines[pid] if any(word in line for word in NOISE)], lines[pid]
