"""Looking inside a running job on a real local cluster: the timeline (``ember timeline``,
``ember.timeline()``) and the workers' stacks (``ember stack``).

Tests wait for what they look for up to a deadline, and never assert how long anything took:
order is read from the recorded stamps themselves.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time

import ember as ray
from ember.runtime.core import context
from ember.runtime.wire import auth
from tests.conftest import eventually


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "EMBER_TOKEN": auth.token()}
    return subprocess.run(
        [sys.executable, "-m", "ember.cli", *args, "--address", context.require_core().head_address],
        capture_output=True, text=True, timeout=timeout, env=env,
    )


@ray.remote
class Rendezvous:
    """Lets ``parties`` tasks through only together: they must run on as many workers."""

    def __init__(self, parties: int) -> None:
        self.parties = parties
        self.arrived = 0
        self.all_here = asyncio.Event()

    async def arrive(self) -> int:
        self.arrived += 1
        if self.arrived >= self.parties:
            self.all_here.set()
        await self.all_here.wait()
        return self.arrived


@ray.remote
def timeline_meet(rendezvous, i):
    ray.get(rendezvous.arrive.remote())
    return os.getpid()


@ray.remote
def timeline_step(i):
    return i * 2


@ray.remote
def timeline_fails():
    raise ValueError("timeline failure")


def _tasks(events, name):
    return [e for e in events if e["ph"] == "X" and e["name"] == name]


def test_the_timeline_has_one_ordered_event_per_task_on_its_workers_row(cluster):
    rendezvous = Rendezvous.remote(2)
    pids = set(ray.get([timeline_meet.remote(rendezvous, i) for i in range(2)]))
    assert len(pids) == 2  # they met, so they ran at once, on two workers
    ray.get([timeline_step.remote(i) for i in range(30)])

    events = ray.timeline()
    json.dumps(events)  # Chrome trace JSON: plain values only
    met, steps = _tasks(events, "timeline_meet"), _tasks(events, "timeline_step")
    assert len(met) == 2 and len(steps) == 30
    assert len({e["args"]["task_id"] for e in steps}) == 30
    for event in met + steps:
        args = event["args"]
        assert 0 < args["submitted"] <= args["scheduled"] <= args["started"] <= args["ended"], args
        assert event["ts"] == round(args["started"] * 1e6, 1)
        assert event["dur"] >= 0
        assert args["state"] == "FINISHED"
    # One row per worker: the thread id is the worker's pid, named by a metadata event, under
    # the node (a process) it ran on.
    assert {e["tid"] for e in met} == pids
    rows = {(e["pid"], e["tid"]): e["args"]["name"] for e in events if e["name"] == "thread_name"}
    for event in met + steps:
        assert rows[(event["pid"], event["tid"])] == f"worker {event['tid']}"
    nodes = {e["pid"]: e["args"]["name"] for e in events if e["name"] == "process_name"}
    assert all(name.startswith("node ") for name in nodes.values())
    assert {e["pid"] for e in met + steps} <= set(nodes)


def test_a_failed_task_and_an_actor_call_are_on_the_timeline(cluster):
    ref = timeline_fails.remote()
    try:
        ray.get(ref)
    except ray.exceptions.TaskError:
        pass
    rendezvous = Rendezvous.remote(1)
    ray.get(rendezvous.arrive.remote())
    events = ray.timeline()
    (failed,) = [e for e in _tasks(events, "timeline_fails") if e["args"]["task_id"] == ref.task_id().hex()]
    assert failed["args"]["state"] == "FAILED"
    calls = [e for e in events if e["ph"] == "X" and e["name"].endswith("arrive")]
    assert calls, sorted({e["name"] for e in events if e["ph"] == "X"})
    for call in calls:
        args = call["args"]
        assert args["submitted"] <= args["scheduled"] <= args["started"] <= args["ended"], args
        assert call["tid"] > 0


def test_ember_timeline_writes_one_jobs_trace(cluster, tmp_path):
    ray.get([timeline_step.remote(i) for i in range(5)])
    context.require_core().io.run(context.require_core().flush_metrics())
    job = ray.get_runtime_context().get_job_id()
    path = tmp_path / "trace.json"
    done = _cli("timeline", "--job", job, "-o", str(path))
    assert done.returncode == 0, done.stderr
    trace = json.loads(path.read_text())
    tasks = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    assert len(_tasks(tasks, "timeline_step")) >= 5
    assert {e["args"]["job_id"] for e in tasks} == {job}

    other = _cli("timeline", "--job", "ff" * len(bytes.fromhex(job)), "-o", "-")
    assert other.returncode == 0, other.stderr
    assert [e for e in json.loads(other.stdout)["traceEvents"] if e["ph"] == "X"] == []

    bad = _cli("timeline", "--job", "not-hex", "-o", str(path))
    assert bad.returncode == 1 and "not-hex" in bad.stderr


def stuck_in_a_known_function(seconds):
    time.sleep(seconds)


@ray.remote
def stack_hangs():
    stuck_in_a_known_function(600)


def test_ember_stack_shows_where_a_task_hangs(cluster):
    ref = stack_hangs.remote()
    try:
        done = eventually(lambda: _cli("stack"), lambda d: "stuck_in_a_known_function" in d.stdout, timeout=60.0)
        assert done.returncode == 0, done.stderr
        out = done.stdout
        assert "running stack_hangs" in out
        assert "in stuck_in_a_known_function" in out and "time.sleep(seconds)" in out
        # The worker's header names it; asked by pid, only it answers.
        (header,) = [line for line in out.splitlines() if "running stack_hangs" in line]
        pid = int(header.split("worker pid ", 1)[1].split()[0])
        alone = _cli("stack", "--pid", str(pid))
        assert alone.returncode == 0, alone.stderr
        headers = [line for line in alone.stdout.splitlines() if line.startswith("=== ")]
        assert len(headers) == 1 and f"pid {pid} " in headers[0]
        assert "stuck_in_a_known_function" in alone.stdout
        node = header.split(" on node ", 1)[1].split()[0]
        on_node = _cli("stack", "--node", node, "--pid", str(pid))
        assert "stuck_in_a_known_function" in on_node.stdout
    finally:
        ray.cancel(ref, force=True)


def test_ember_stack_names_what_it_cannot_find(cluster):
    unknown = _cli("stack", "--node", "zzzz")
    assert unknown.returncode == 1
    assert "no live node 'zzzz'" in unknown.stderr
    nobody = _cli("stack", "--pid", "1")
    assert nobody.returncode == 1 and "no worker matched" in nobody.stdout
