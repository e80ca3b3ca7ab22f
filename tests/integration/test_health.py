"""``ember health``, a container's health check: 0 while what ``ember start`` runs here answers,
1 (saying which) when a node is wedged, gone, was never started, or its object store broke."""

from __future__ import annotations

import glob
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from ember.runtime.wire import auth
from tests.conftest import run_driver, wait_until_gone


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
    refused = ember_cli("health", "--address", address, env=dict(env, EMBER_TOKEN="not-the-token-of-this-cluster"))
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


def _metric(url: str, name: str) -> dict[str, float]:
    """The samples of one metric at a Prometheus endpoint, by their label text."""
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    found = {}
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            labels, _, value = line[len(name):].rpartition(" ")
            found[labels.strip()] = float(value)
    return found


def _healthz(metrics_url: str) -> tuple[int, str]:
    url = metrics_url.rsplit("/", 1)[0] + "/healthz"
    try:
        with urllib.request.urlopen(url, timeout=10) as reply:
            return reply.status, reply.read().decode().strip()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode().strip()


def test_a_node_whose_object_store_broke_is_unhealthy_and_says_why(env: dict[str, str]) -> None:
    """The arena file of a node's store deleted under it (new workers could no longer map it):
    the agent's own check notices; ``ember health`` fails naming the node and why, ``ember
    status`` lists it as unhealthy, both metrics endpoints say so, and the store refuses new
    objects with that reason instead of failing obscurely."""
    head = ember_cli("start", "--head", "--port", "0", "--num-cpus", "1", "--dashboard-port", "-1",
                     env=env)
    assert head.returncode == 0, head.stderr
    address = str(records(env)[0]["address"])
    worker = ember_cli("start", "--address", address, "--num-cpus", "1", env=env)
    assert worker.returncode == 0, worker.stderr
    assert ember_cli("health", env=env).returncode == 0
    before = ember_cli("status", "--address", address.removeprefix("ember://"), env=env).stdout
    metrics_urls = re.findall(r"^ node_[0-9a-f]+ +(http://\S+)$", before, re.MULTILINE)
    assert len(metrics_urls) == 2, before
    assert {_healthz(url) for url in metrics_urls} == {(200, "ok")}

    worker_record = next(r for r in records(env) if not r["address"])
    agent = str(worker_record["agent_address"])
    session = os.path.basename(str(worker_record["session_dir"]))
    arenas = glob.glob(f"/dev/shm/ember-{session}-*/arena")
    assert len(arenas) == 1, arenas
    os.unlink(arenas[0])

    for _ in range(60):  # the agent checks its store every second or so
        health = ember_cli("health", env=env)
        if health.returncode:
            break
        time.sleep(0.5)
    assert health.returncode == 1, health.stdout
    unhealthy = [line for line in health.stderr.splitlines() if line.startswith("unhealthy:")]
    assert len(unhealthy) == 1, health.stderr
    assert re.fullmatch(
        rf"unhealthy: node [0-9a-f]+ \(node agent {re.escape(agent)}\): its object store is broken "
        rf"and takes no new objects: the arena file {re.escape(arenas[0])} was deleted: new "
        rf"processes cannot map it",
        unhealthy[0],
    ), unhealthy[0]
    node = unhealthy[0].split()[2]
    assert "answers (2 nodes alive)" in health.stdout  # the head, and the other node, are fine

    for _ in range(60):  # the agent's next report carries it to the head
        status = ember_cli("status", "--address", address.removeprefix("ember://"), env=env)
        if "Unhealthy:" in status.stdout:
            break
        time.sleep(0.5)
    assert status.returncode == 0, status.stderr
    text = status.stdout
    healthy_part, _, rest = text.partition("Unhealthy:")
    assert f"node_{node}" not in healthy_part and f"node_{node} {agent}  object store broken" in rest
    assert "was deleted: new processes cannot map it" in rest.partition("Dead:")[0]
    assert re.search(rf"node {node} \({re.escape(agent)}\): its object store is broken", text)

    urls = dict(re.findall(r"^ (head|node_[0-9a-f]+) +(http://\S+)$", text, re.MULTILINE))
    assert _metric(urls[f"node_{node}"], "ember_object_store_broken") == {"": 1.0}
    # The worker pod's readiness probe: the broken node is no longer Ready, the other one is;
    # the reason is not given to a caller without the token.
    assert _healthz(urls[f"node_{node}"]) == (503, "unhealthy")
    others = [url for name, url in urls.items() if name.startswith("node_") and name != f"node_{node}"]
    assert [_healthz(url) for url in others] == [(200, "ok")]
    on_head = _metric(urls["head"], "ember_node_object_store_broken")
    assert on_head[f'{{node="{node}"}}'] == 1.0 and sorted(on_head.values()) == [0.0, 1.0]

    # Asked for room, the broken store says why, naming the node.
    reply = run_driver(
        "import asyncio, os, sys\n"
        "from ember.runtime.wire import auth, rpc\n"
        "from ember.runtime.wire.protocol import ember_pb2 as pb\n"
        "auth.set_token(os.environ['EMBER_TOKEN'])\n"
        "async def ask():\n"
        "    channels = rpc.Channels()\n"
        "    try:\n"
        "        return await channels.node_agent(sys.argv[1]).CreateObject(pb.CreateObjectRequest(\n"
        "            object_id=b'x' * 20, size=1 << 20, owner_address='o', creator='c'), timeout=10)\n"
        "    finally:\n"
        "        await channels.close()\n"
        "print(asyncio.run(ask()).error)\n",
        agent, env=env,
    )
    assert reply.returncode == 0, reply.stderr
    assert reply.stdout.startswith(f"node {node} ({agent}): the object store is broken (the arena file")
    assert reply.stdout.rstrip().endswith("it takes no new objects; restart the node")
