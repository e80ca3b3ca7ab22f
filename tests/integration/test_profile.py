"""``ember profile`` on a real local cluster: a worker running a CPU-bound task is sampled for a
few seconds, and the function it spins in is in the speedscope file and the SVG flame graph,
while a task of that worker finishes during the profile.

No assertion is about how long anything took: the test lets the task end once it sees the
worker's profiler thread (``ember stack``), and checks that the task's own end stamp lies
inside the profile's (both read from the one machine's clock).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from pathlib import Path

import jsonschema
import pytest

import ember as ray
from ember import profile_command, stack_command
from ember.runtime.core import context
from ember.runtime.node import worker_profiles
from ember.runtime.wire import auth
from ember.runtime.wire.protocol import ember_pb2 as pb
from tests.conftest import eventually

# The parts of https://www.speedscope.app/file-format-schema.json a sampled profile must have
# (its "required" lists): the file, its frames, and each sampled profile.
SPEEDSCOPE_REQUIRED = {
    "type": "object",
    "required": ["$schema", "shared", "profiles"],
    "properties": {
        "$schema": {"const": "https://www.speedscope.app/file-format-schema.json"},
        "shared": {
            "type": "object",
            "required": ["frames"],
            "properties": {
                "frames": {
                    "type": "array",
                    "items": {
                        "type": "object", "required": ["name"],
                        "properties": {"name": {"type": "string"}, "file": {"type": "string"}, "line": {"type": "number"}},
                    },
                },
            },
        },
        "profiles": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["type", "name", "unit", "startValue", "endValue", "samples", "weights"],
                "properties": {
                    "type": {"const": "sampled"},
                    "unit": {"enum": ["none", "nanoseconds", "microseconds", "milliseconds", "seconds", "bytes"]},
                    "samples": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
                    "weights": {"type": "array", "items": {"type": "number"}},
                },
            },
        },
    },
}


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ember.cli", *args, "--address", context.require_core().head_address],
        capture_output=True, text=True, timeout=timeout, env={**os.environ, "EMBER_TOKEN": auth.token()},
    )


def spin_here(stop_file: str) -> int:
    """Burns CPU in Python until ``stop_file`` exists."""
    turns = 0
    while True:
        for _ in range(20000):
            turns += 1
        if os.path.exists(stop_file):
            return turns


@ray.remote
def spinning_task(stop_file: str) -> tuple[int, float]:
    spin_here(stop_file)
    return os.getpid(), time.time()


# cluster-wide answers here may take a while on a busy machine
_eventually = partial(eventually, timeout=60.0)


def _spinning_worker(stop_file: Path) -> tuple[ray.ObjectRef, int]:
    ref = spinning_task.remote(str(stop_file))
    dump = _eventually(
        lambda: stack_command.stacks(),
        lambda reply: any(p.task_name == "spinning_task" for p in reply.processes),
    )
    (process,) = [p for p in dump.processes if p.task_name == "spinning_task"]
    # Past unpickling the function (which imports this module, slowly on a busy machine): a
    # sampler started now sees the spinning frame at once.
    _eventually(lambda: str(stack_command.stacks(pid=process.pid)), lambda text: "spin_here" in text)
    return ref, process.pid


def _profiler_running(pid: int) -> bool:
    reply = stack_command.stacks(pid=pid)
    return any(t.name == "ember-profiler" for p in reply.processes for t in p.threads)


def _sampling_or_done(profiling: Future[pb.ClusterProfiles], pid: int) -> bool:
    return profiling.done() or _profiler_running(pid)


def _profile_while_a_task_ends(tmp_path: Path) -> tuple[pb.ProcessProfile, int, float]:
    """A spinning task's worker profiled by its own sampler; the task is told to end once the
    sampler's thread shows in ``ember stack``. Returns the profile, the task's pid and the
    moment it ended. Each try takes a task of its own: on a busy machine the sampler may have
    finished before a stack dump saw it, or the task's end may fall after the profile's."""
    address = context.require_core().head_address
    tries: list[str] = []
    with ThreadPoolExecutor(1) as pool:
        for attempt in range(3):
            stop = tmp_path / f"stop-{attempt}"
            ref, pid = _spinning_worker(stop)
            profiling = pool.submit(profile_command.profile, pid, "", 6.0, sampler="self", address=address)
            try:
                _eventually(partial(_sampling_or_done, profiling, pid), bool)
                seen = not profiling.done()
            finally:
                stop.touch()  # the task ends now, while (if seen) the worker is being profiled
            task_pid, ended = ray.get(ref, timeout=60)
            reply = profiling.result(timeout=120)
            assert not reply.errors, reply.errors
            (process,) = reply.processes
            assert not process.error, process.error
            assert task_pid == pid
            if seen and process.started <= ended <= process.started + process.duration:
                return process, pid, ended
            tries.append(f"seen sampling: {seen}; task ended {ended - process.started:+.2f}s after the "
                         f"profile started, which lasted {process.duration:.2f}s")
    raise AssertionError(f"no try saw the task end while its worker was profiled: {tries}")


def test_a_cpu_bound_task_shows_in_the_speedscope_profile_and_finishes_meanwhile(cluster, tmp_path):
    process, pid, _ = _profile_while_a_task_ends(tmp_path)
    title = profile_command.title(process)
    assert "sampled by self" in title, title
    assert f"worker pid {pid} on node " in title, title
    document = json.loads(profile_command.render(process, "speedscope"))
    jsonschema.validate(document, SPEEDSCOPE_REQUIRED)
    frames = document["shared"]["frames"]
    names = [frame["name"] for frame in frames]
    assert any(name.endswith("spin_here") for name in names), names
    (spin,) = [frame for frame in frames if frame["name"].endswith("spin_here")]
    assert spin["file"] == __file__ and spin["line"] > 0
    for profile in document["profiles"]:
        assert len(profile["samples"]) == len(profile["weights"])
        assert all(0 <= i < len(frames) for sample in profile["samples"] for i in sample)
        assert profile["endValue"] == sum(profile["weights"]) > 0


def test_the_svg_flame_graph_names_the_function(cluster, tmp_path):
    stop = tmp_path / "stop"
    ref, pid = _spinning_worker(stop)
    out = tmp_path / "flame.svg"
    try:
        done = _cli("profile", "--pid", str(pid), "--duration", "2", "--format", "svg", "-o", str(out))
    finally:
        stop.touch()
    ray.get(ref, timeout=60)
    assert done.returncode == 0, done.stderr
    # Whichever sampler could: py-spy where it may attach, else the worker, saying why.
    assert "sampled by py-spy" in done.stdout or "the worker sampled itself" in done.stdout, done.stdout
    text = out.read_text()
    root = ElementTree.fromstring(text)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert "<script" not in text and "href" not in text  # self-contained: nothing runs or is fetched
    titles = [t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}title")]
    assert any("spin_here" in title for title in titles), titles[:20]


def test_py_spy_profiles_the_worker_where_it_can_attach(cluster, tmp_path):
    if worker_profiles.py_spy_program() is None:
        pytest.skip("py-spy is not installed here (pip install py-spy): the worker's own sampler was tested")
    stop = tmp_path / "stop"
    ref, pid = _spinning_worker(stop)
    out = tmp_path / "py-spy.txt"
    try:
        done = _cli(
            "profile", "--pid", str(pid), "--duration", "2", "--sampler", "py-spy", "--format", "collapsed",
            "-o", str(out),
        )
    finally:
        stop.touch()
    ray.get(ref, timeout=60)
    if done.returncode == 1 and "py-spy could not profile" in done.stderr:
        pytest.skip(f"py-spy may not attach here (ptrace): {done.stderr.strip()[-300:]}")
    assert done.returncode == 0, done.stderr
    assert "sampled by py-spy" in done.stdout
    lines = out.read_text().splitlines()
    assert any("spin_here" in line for line in lines), lines[:10]
    assert all(line.rpartition(" ")[2].isdigit() for line in lines)


def test_ember_profile_names_bad_requests(cluster):
    too_long = _cli("profile", "--pid", str(os.getpid()), "--duration", "61")
    assert too_long.returncode == 1 and "at most 60 seconds" in too_long.stderr
    nobody = _cli("profile", "--pid", "1", "--duration", "0.5")
    assert nobody.returncode == 1 and "no worker or driver with pid 1" in nobody.stderr
    unknown = _cli("profile", "--node", "zzzz", "--pid", "5")
    assert unknown.returncode == 1 and "no live node 'zzzz'" in unknown.stderr


def test_ember_stack_py_spy_finds_py_spy_where_ember_profile_does(cluster, tmp_path):
    """``ember stack --py-spy`` looks for py-spy where ``ember profile`` does (the PATH, or
    beside the agent's interpreter), and its dump shows the spinning frame."""
    if worker_profiles.py_spy_program() is None:
        pytest.skip("py-spy is not installed here (pip install py-spy)")
    stop = tmp_path / "stop"
    ref, pid = _spinning_worker(stop)
    try:
        reply = stack_command.stacks(pid=pid, py_spy=True)
    finally:
        stop.touch()
    ray.get(ref, timeout=60)
    (process,) = [p for p in reply.processes if p.pid == pid]
    if "py-spy" in process.error and not process.py_spy:
        assert "not installed" not in process.error, process.error  # found, as ember profile finds it
        pytest.skip(f"py-spy may not attach here (ptrace): {process.error[-300:]}")
    assert "spin_here" in process.py_spy, process.py_spy[-2000:]
