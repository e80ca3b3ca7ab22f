"""What the autoscaler adds nodes for beyond plain shapes. A pending placement group is demand
as a gang: ``ember up`` with a group of 1-CPU nodes (min 0, max 4) and a head with no CPU grows
by three nodes for a STRICT_SPREAD group of three 1-CPU bundles (a node each), places the group
across them, and shrinks once it is removed. Work with a label selector gets a node of the
group whose labels it selects. Run as a user would: ``ember up`` in the foreground, a driver
with ``address="auto"``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

from tests.conftest import REPO, processes_of_session, run_driver

MANIFEST = """
apiVersion: ember.dev/v1alpha1
kind: Cluster
metadata:
  name: gang-demo
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
    import time, ember
    from ember.util import placement_group, placement_group_table, remove_placement_group
    from ember.util.scheduling_strategies import PlacementGroupSchedulingStrategy
    ember.init(address="auto", logging_level="WARNING")

    @ember.remote(num_cpus=1)
    def where():
        return ember.get_runtime_context().get_node_id()

    pg = placement_group([{"CPU": 1}] * 3, strategy="STRICT_SPREAD")
    ember.get(pg.ready(), timeout=120)
    bundles = list(placement_group_table(pg)["bundles_to_node_id"].values())
    ran = ember.get([
        where.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg, i)).remote()
        for i in range(3)
    ])
    workers = [n for n in ember.nodes() if n["Alive"] and n["Labels"].get("ember.dev/node-type") == "worker"]
    groups = {n["Labels"].get("ember.dev/group") for n in workers}
    remove_placement_group(pg)
    deadline = time.monotonic() + 60
    alive = len(workers)
    while time.monotonic() < deadline:
        alive = len([n for n in ember.nodes() if n["Alive"]])
        if alive == 1:
            break
        time.sleep(0.3)
    print(f"distinct={len(set(bundles))} ran_in_bundles={ran == bundles} workers={len(workers)} "
          f"groups={','.join(sorted(groups))} alive_after={alive}")
    """
)


def test_ember_up_adds_a_node_per_bundle_of_a_strict_spread_group(tmp_path: Path) -> None:
    output = _with_ember_up(tmp_path, MANIFEST, DRIVER, _check_gang)
    # Workers are named small-1, small-2, ... as they are added: three, never a fourth.
    assert "+1 small (small-3)" in output and "small-4" not in output and "-1 small" in output, output


def _check_gang(stdout: str) -> None:
    figures = dict(item.split("=") for item in stdout.split())
    # Three nodes, one per bundle, each of the group; the group's tasks ran in their bundles.
    assert figures["distinct"] == "3" and figures["ran_in_bundles"] == "True", stdout
    assert figures["workers"] == "3" and figures["groups"] == "small", stdout
    assert figures["alive_after"] == "1", stdout  # gone once the group was removed


TWO_GROUPS = """
apiVersion: ember.dev/v1alpha1
kind: Cluster
metadata:
  name: labels-demo
spec:
  head:
    resources: {cpu: 0}
  workerGroups:
  - {name: left, minReplicas: 0, maxReplicas: 2, resources: {cpu: 1, memory: 1Gi}}
  - {name: right, minReplicas: 0, maxReplicas: 2, resources: {cpu: 1, memory: 1Gi}}
  autoscaling:
    enabled: true
    idleTimeoutSeconds: 30
    intervalSeconds: 0.5
"""

SELECTING = textwrap.dedent(
    """
    import ember
    ember.init(address="auto", logging_level="WARNING")

    @ember.remote(num_cpus=1)
    def where():
        return ember.get_runtime_context().get_node_id()

    node = ember.get(where.options(label_selector={"ember.dev/group": "right"}).remote(), timeout=120)
    got = next(n["Labels"] for n in ember.nodes() if n["NodeID"] == node)
    workers = sorted(
        n["Labels"]["ember.dev/group"] for n in ember.nodes()
        if n["Alive"] and n["Labels"].get("ember.dev/node-type") == "worker"
    )
    try:
        ember.get(where.options(label_selector={"ember.dev/group": "middle"}).remote(), timeout=60)
        nowhere = "ran"
    except ember.exceptions.TaskUnschedulableError as error:
        nowhere = "refused" if "ember.dev/group: middle" in str(error) else repr(str(error))
    print(f"ran_on={got['ember.dev/group']} type={got['ember.dev/node-type']} "
          f"workers={','.join(workers)} nowhere={nowhere}")
    """
)


def test_ember_up_adds_a_node_of_the_group_a_label_selector_names(tmp_path: Path) -> None:
    def check(stdout: str) -> None:
        figures = dict(item.split("=") for item in stdout.split())
        assert figures == {"ran_on": "right", "type": "worker", "workers": "right", "nowhere": "refused"}, stdout

    output = _with_ember_up(tmp_path, TWO_GROUPS, SELECTING, check)
    assert "+1 right" in output and "+1 left" not in output, output


def _with_ember_up(tmp_path: Path, manifest_text: str, driver: str, check: Callable[[str], None]) -> str:
    """Run ``driver`` against ``ember up`` of the manifest, check its output, stop the
    cluster (nothing may outlive it); returns what ``ember up`` printed."""
    env = dict(os.environ, EMBER_TEMP_DIR=str(tmp_path / "ember"))
    env.pop("EMBER_TOKEN", None)
    manifest = tmp_path / "cluster.yaml"
    manifest.write_text(manifest_text)
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
        result = run_driver(driver, env=env, timeout=180)
        assert result.returncode == 0, result.stderr
        check(result.stdout)
    finally:
        down = subprocess.run(
            [sys.executable, "-m", "ember.cli", "down"], capture_output=True, text=True, env=env, timeout=60
        )
        up.wait(30)
    # ember down names the cluster it stopped (how many nodes is not fixed: a worker the head
    # no longer counts may still be stopping).
    assert down.stdout.startswith("Stopped cluster '"), down.stdout + down.stderr
    assert "(ember up): its head and " in down.stdout, down.stdout
    output = up.stdout.read() if up.stdout else ""
    deadline = time.monotonic() + 10
    while session_dir and processes_of_session(session_dir) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert session_dir and processes_of_session(session_dir) == []
    return output
