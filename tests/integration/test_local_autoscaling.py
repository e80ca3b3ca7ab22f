"""``ember up``: a Cluster manifest on this machine, grown for pending work and shrunk when idle.

A group of 1-CPU nodes, min 0 and max 4, and a head with no CPU: eight tasks, each waiting
until four of them run, make the cluster grow to four workers, every task runs exactly once,
and after the idle timeout the workers go again. Run as a user would: ``ember up`` in the foreground, a driver with
``address="auto"``, ``ember down``.
"""

from __future__ import annotations

import glob
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from ember.runtime.node import node_resources
from tests.conftest import REPO, processes_of_session, run_driver

MANIFEST = """
apiVersion: ember.dev/v1alpha1
kind: Cluster
metadata:
  name: local-demo
spec:
  head:
    resources: {cpu: 0}
  workerGroups:
  - name: small
    minReplicas: 0
    maxReplicas: 4
    resources: {cpu: 1, memory: 1Gi}
  autoscaling:
    enabled: true
    idleTimeoutSeconds: 3
    intervalSeconds: 0.5
"""

DRIVER = textwrap.dedent(
    """
    import os, sys, time, ember
    ember.init(address="auto", logging_level="WARNING")
    runs = sys.argv[1]

    @ember.remote(num_cpus=1)
    def work(i):
        # Each task waits (60 s at most) until four have started: four nodes must run at once.
        with open(os.path.join(runs, f"{i}-{os.getpid()}"), "w"):
            pass
        deadline = time.monotonic() + 60
        while len(os.listdir(runs)) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        met = len(os.listdir(runs)) >= 4
        time.sleep(0.2)
        return ember.get_runtime_context().get_node_id(), met

    refs = [work.remote(i) for i in range(8)]
    peak = 0
    while len(ember.wait(refs, num_returns=8, timeout=0.2)[0]) < 8:
        peak = max(peak, len([n for n in ember.nodes() if n["Alive"]]))
    results = ember.get(refs)
    used = len({node for node, _ in results})
    together = all(met for _, met in results)
    deadline = time.monotonic() + 30
    alive = peak
    while time.monotonic() < deadline:
        alive = len([n for n in ember.nodes() if n["Alive"]])
        if alive == 1:
            break
        time.sleep(0.3)
    print(f"together={together} used={used} peak={peak} alive_after={alive}")
    """
)


def test_ember_up_grows_for_work_and_shrinks_when_idle(tmp_path: Path) -> None:
    env = dict(os.environ, EMBER_TEMP_DIR=str(tmp_path / "ember"))
    env.pop("EMBER_TOKEN", None)
    manifest = tmp_path / "cluster.yaml"
    manifest.write_text(MANIFEST)
    runs = tmp_path / "runs"
    runs.mkdir()
    up = subprocess.Popen(
        [sys.executable, "-m", "ember.cli", "up", str(manifest), "--port", "0", "--dashboard-port", "-1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=str(REPO),
    )
    session_dir = ""
    try:
        assert up.stdout is not None
        first = up.stdout.readline()
        assert "up on this machine" in first, first + up.stdout.read()
        session_dir = first.split("(logs: ")[1].rstrip(").\n").removesuffix("/logs")
        result = run_driver(DRIVER, str(runs), env=env, timeout=90)
        assert result.returncode == 0, result.stderr
        figures = dict(item.split("=") for item in result.stdout.split())
        assert figures["used"] == "4" and figures["peak"] == "5", result.stdout  # head + 4 workers
        assert figures["together"] == "True", result.stdout  # in parallel, not one after another
        assert figures["alive_after"] == "1", result.stdout  # the workers went once idle
        # Every task ran exactly once: no retry from a scale-up or a scale-down.
        assert sorted(int(name.split("-")[0]) for name in os.listdir(runs)) == list(range(8))
        print(result.stdout)
    finally:
        down = subprocess.run(
            [sys.executable, "-m", "ember.cli", "down"], capture_output=True, text=True, env=env, timeout=60
        )
        up.wait(30)
    # (A worker the head no longer counts may still be stopping: how many nodes is not fixed.)
    assert down.stdout.startswith("Stopped cluster 'local-demo' at ember://"), down.stdout + down.stderr
    assert "(ember up): its head and " in down.stdout, down.stdout
    output = up.stdout.read() if up.stdout else ""
    assert "+1 small" in output and "-1 small" in output, output
    deadline = time.monotonic() + 10
    while session_dir and processes_of_session(session_dir) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert session_dir and processes_of_session(session_dir) == []


FIXED = """
apiVersion: ember.dev/v1alpha1
kind: Cluster
metadata:
  name: fixed
spec:
  head:
    resources: {cpu: 0}
  workerGroups:
  - {name: small, minReplicas: 2, maxReplicas: 2, resources: {cpu: 1, memory: 1Gi}}
  autoscaling: {enabled: true, idleTimeoutSeconds: 60, intervalSeconds: 0.5}
"""


def test_ember_down_names_the_cluster_and_counts_its_nodes(tmp_path: Path) -> None:
    env = dict(os.environ, EMBER_TEMP_DIR=str(tmp_path / "ember"))
    env.pop("EMBER_TOKEN", None)
    manifest = tmp_path / "cluster.yaml"
    manifest.write_text(FIXED)
    up = subprocess.Popen(
        [sys.executable, "-m", "ember.cli", "up", str(manifest), "--port", "0", "--dashboard-port", "-1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=str(REPO),
    )
    try:
        assert up.stdout is not None
        first = up.stdout.readline()
        assert "up on this machine" in first, first + up.stdout.read()
        address = first.split(" at ")[1].split(" ")[0]
        session_dir = first.split("(logs: ")[1].rstrip(").\n").removesuffix("/logs")
        waited = run_driver(textwrap.dedent(
            """
            import time, ember
            ember.init(address="auto", logging_level="WARNING")
            deadline = time.monotonic() + 60
            while len([n for n in ember.nodes() if n["Alive"]]) < 3 and time.monotonic() < deadline:
                time.sleep(0.2)
            print(len([n for n in ember.nodes() if n["Alive"]]))
            """
        ), env=env, timeout=90)
        assert waited.stdout.strip() == "3", waited.stdout + waited.stderr
        time.sleep(2)  # autoscaling rounds (0.5 s apart) in which nothing changes
    finally:
        down = subprocess.run(
            [sys.executable, "-m", "ember.cli", "down"], capture_output=True, text=True, env=env, timeout=60
        )
        up.wait(30)
    # Not a terminal: a progress line only when something changed, not one per round.
    progress = [
        re.sub(r" \(\d+s ago\)$", "", line)
        for line in (up.stdout.read() if up.stdout else "").splitlines()
        if line.startswith("nodes ")
    ]
    assert progress.count("nodes 3 | pending none | last: +1 small (small-2)") == 1, progress
    assert all(a != b for a, b in zip(progress, progress[1:], strict=False)), progress
    # The head, its own node and both workers, by name: not "1 ember process" (ember up's).
    assert down.stdout.startswith(
        f"Stopped cluster 'fixed' at {address} (ember up): its head and 3 nodes (127.0.0.1:"
    ), down.stdout + down.stderr
    assert down.stdout.endswith(", small-1, small-2).\n"), down.stdout
    deadline = time.monotonic() + 10
    while processes_of_session(session_dir) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_of_session(session_dir) == []
    again = subprocess.run(
        [sys.executable, "-m", "ember.cli", "down"], capture_output=True, text=True, env=env, timeout=60
    )
    assert again.stdout.startswith("Nothing to stop"), again.stdout


BEYOND = """
apiVersion: ember.dev/v1alpha1
kind: Cluster
metadata:
  name: beyond
spec:
  head:
    resources: {cpu: 0}
  workerGroups:
  - {name: big, replicas: 2, minReplicas: 0, maxReplicas: 3,
     resources: {cpu: 64, gpu: 4, memory: 4Ti}}
"""


def test_ember_up_shares_this_machine_and_warns_when_the_manifest_asks_for_more(tmp_path: Path) -> None:
    """Nodes of ember up all run here: their object stores split this machine's budget (the
    arenas' total stays within /dev/shm), and asking for more CPUs, GPUs or memory than the
    machine has is said, resource by resource."""
    env = dict(os.environ, EMBER_TEMP_DIR=str(tmp_path / "ember"))
    env.pop("EMBER_TOKEN", None)
    manifest = tmp_path / "cluster.yaml"
    manifest.write_text(BEYOND)
    up = subprocess.Popen(
        [sys.executable, "-m", "ember.cli", "up", str(manifest), "--port", "0", "--dashboard-port", "-1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=str(REPO),
    )
    try:
        assert up.stdout is not None and up.stderr is not None
        first = up.stdout.readline()
        assert "up on this machine" in first, first + up.stderr.read()
        session = first.split("(logs: ")[1].rstrip(").\n").removesuffix("/logs")
        opening = [up.stdout.readline() for _ in range(3)]
        assert opening[2].startswith("  object store: "), opening
        # Autoscaling is off: the two replicas and the head's node run at once, not the three
        # maxReplicas allows.
        assert opening[2].rstrip().endswith(" shared by up to 3 nodes)"), opening
        warning = [up.stderr.readline().rstrip() for _ in range(4)]
        assert warning[0].startswith("ember up: warning: the manifest asks for more than this machine has"), warning
        assert warning[1].startswith("  CPU: up to 128 (big 2 x 64), on "), warning
        assert warning[2].startswith("  GPU: up to 8 (big 2 x 4), and this machine has "), warning
        assert warning[3].startswith("  memory: up to 8192.0 GiB (big 2 x 4096.0 GiB), on "), warning
        # Three arenas (the head's node and two workers) within /dev/shm, however large.
        prefix = f"/dev/shm/ember-{os.path.basename(session)}-"
        deadline = time.monotonic() + 60
        arenas = glob.glob(prefix + "*/arena")
        while len(arenas) < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
            arenas = glob.glob(prefix + "*/arena")
        assert len(arenas) == 3, arenas
        shm = os.statvfs("/dev/shm")
        total = sum(os.stat(path).st_size for path in arenas)
        assert total <= shm.f_blocks * shm.f_frsize, (total, shm.f_blocks * shm.f_frsize)
        sizes = {os.stat(path).st_size for path in arenas}
        # An equal share each: a third of what one node alone would take.
        alone = min(int(node_resources.memory_bytes() * node_resources.OBJECT_STORE_FRACTION),
                    node_resources.shm_bytes())
        assert len(sizes) == 1 and sizes.pop() <= alone // 3, (sizes, alone)
        waited = run_driver(textwrap.dedent(
            """
            import time, ember
            ember.init(address="auto", logging_level="WARNING")
            deadline = time.monotonic() + 60
            while ember.cluster_resources().get("GPU") != 8 and time.monotonic() < deadline:
                time.sleep(0.2)
            print(ember.cluster_resources().get("GPU"))
            """
        ), env=env, timeout=90)
        assert waited.stdout.split() == ["8.0"], waited.stdout + waited.stderr  # as asked, warned
    finally:
        subprocess.run(
            [sys.executable, "-m", "ember.cli", "down"], capture_output=True, text=True, env=env, timeout=60
        )
        up.wait(30)
