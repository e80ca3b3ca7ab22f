"""The project image as a cluster on Docker, with a driver on this machine.

Opt-in (``make e2e-docker``): it builds images and starts containers. Without a base image to
pull, one is made from Debian packages (``build_base_image.sh``); then the project image is built
on it. A head and two workers run as containers on a user-defined network the way the operator
runs them as pods (read-only root filesystem, uid 1000, no capabilities, the token from the
environment, each node advertising its own address); the driver connects with the token through
the head's published port; tasks and actors run across the workers, the metrics endpoints are
scraped, and a worker container is killed mid-job. Every container and the network are removed
at the end, whatever failed. Timings (image size, build time, start to first task) are printed.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ember import status_report
from ember.runtime.wire import auth
from tests.docker import base_image, docker_engine
from tests.docker.docker_engine import Run, docker

REPO = Path(__file__).resolve().parents[2]
IMAGE = os.environ.get("EMBER_E2E_IMAGE", "ember:0.1.0")
# Where a registry is reachable, e.g. python:3.11-slim-bookworm; else one is built here.
BASE_IMAGE = os.environ.get("EMBER_E2E_BASE_IMAGE", "")

pytestmark = pytest.mark.skipif(
    os.environ.get("EMBER_E2E_DOCKER") != "1",
    reason="opt-in: builds images and runs containers; run it with make e2e-docker",
)

TIMINGS: dict[str, str] = {}


def default_interface_address() -> str | None:
    """This machine's address on its default route (no packet is sent): where a container
    reaches the driver, and the driver reaches the head's published port."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("198.51.100.1", 9))  # TEST-NET-2: routed, never reached
            address = str(probe.getsockname()[0])
    except OSError:
        return None
    return None if address.startswith("127.") else address


@pytest.fixture(scope="module")
def image() -> str:
    why = docker_engine.unavailable()
    if why:
        pytest.skip(why)
    base = BASE_IMAGE or base_image.LOCAL
    if base == base_image.LOCAL and not base_image.present(base):
        why = base_image.why_not_buildable()
        if why:
            pytest.skip(why)
    started = time.monotonic()
    done = base_image.ensure(base)
    if done != "present":
        TIMINGS[f"base image ({done})"] = f"{time.monotonic() - started:.0f} s"
    revision = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True,
                              text=True).stdout.strip()
    started = time.monotonic()
    built = docker("build", "--build-arg", f"BASE_IMAGE={base}", "--build-arg",
                   f"REVISION={revision}", "-t", IMAGE, str(REPO), check=False, timeout=1800)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    TIMINGS["project image build"] = f"{time.monotonic() - started:.0f} s"
    size = int(docker("image", "inspect", "--format", "{{.Size}}", IMAGE).stdout)
    TIMINGS["image size"] = f"{size / 1e6:.0f} MB (base {base})"
    return IMAGE


@dataclass
class Cluster:
    run: Run
    host: str  # this machine's address: the driver's, and where the head's ports are published
    token: str
    head: str
    workers: dict[str, str] = field(default_factory=dict)  # container -> its address
    client_port: int = 0
    metrics_port: int = 0
    started: float = 0.0

    @property
    def address(self) -> str:
        return f"ember://{self.host}:{self.client_port}"

    def diagnostics(self) -> str:
        return "\n".join(f"--- {c}\n{self.run.logs(c)}" for c in [self.head, *self.workers])


def hardened(token: str) -> list[str]:
    """How the operator's pods run: read-only root, writable /tmp and /dev/shm, uid 1000 (the
    image's), no capabilities; the token from the environment. Health checked every 2 s."""
    return [
        "--read-only", "--tmpfs", "/tmp:rw,nosuid,size=512m", "--shm-size", "256m",
        "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
        "-e", f"EMBER_TOKEN={token}",
        "--health-interval", "2s", "--health-timeout", "10s", "--health-start-period", "60s",
    ]


@pytest.fixture(scope="module")
def cluster(image: str) -> Iterator[Cluster]:
    host = default_interface_address()
    if host is None:
        pytest.skip("this machine has no non-loopback address for containers to reach it by")
    run = Run()
    token = auth.generate()
    try:
        run.create_network()
        head_ip = run.address(0)
        started = time.monotonic()
        head = run.run(
            "head", image,
            "start", "--head", "--block", "--host", head_ip, "--port", "10001",
            "--dashboard-host", "0.0.0.0", "--dashboard-port", "8265",
            "--head-metrics-port", "8080", "--metrics-port", "8081",
            "--state-dir", "/var/lib/ember", "--num-cpus", "0",
            options=hardened(token) + [
                "--ip", head_ip, "-p", "10001", "-p", "8080", "-v", "/var/lib/ember",
                "-e", "EMBER_NODE_TIMEOUT_S=5",
            ],
        )
        cluster = Cluster(run, host, token, head, started=started)
        for index, name in enumerate(["worker-1", "worker-2"], start=1):
            ip = run.address(index)
            labels = json.dumps({"ember.dev/pod": name, "ember.dev/group": "cpu"})
            container = run.run(
                name, image,
                "start", "--block", "--address", f"{head_ip}:10001", "--host", ip,
                "--metrics-port", "8081", "--num-cpus", "2", "--labels", labels,
                options=hardened(token) + ["--ip", ip],
            )
            cluster.workers[container] = ip
        cluster.client_port = run.published_port(head, 10001)
        cluster.metrics_port = run.published_port(head, 8080)
        auth.set_token(token)
        deadline = time.monotonic() + 120
        alive = 0
        while alive < 3:
            try:
                view = status_report.fetch(f"{host}:{cluster.client_port}", timeout=5)
                alive = sum(1 for node in view.nodes if node.alive)
            except Exception:  # noqa: BLE001 - the head is still starting
                alive = 0
            if alive < 3 and time.monotonic() > deadline:
                raise AssertionError(f"{alive} of 3 nodes joined in 120 s\n{cluster.diagnostics()}")
            time.sleep(0.5)
        TIMINGS["containers started to 3 nodes alive"] = f"{time.monotonic() - started:.1f} s"
        yield cluster
    finally:
        auth.set_token("")
        left = run.remove_all()
        print("\nember e2e-docker timings:")
        for what, figure in TIMINGS.items():
            print(f"  {what}: {figure}")
        assert left == [], f"left behind: {left}"


def drive(cluster: Cluster, script: str, timeout: float = 180, address: str = "",
          **env: str) -> Any:
    """Run a driver program on this machine against the cluster; returns what it printed after
    'RESULT '. Functions travel by value (they are defined in __main__)."""
    program = textwrap.dedent(script)
    result = subprocess.run(
        [sys.executable, "-c", program, address or cluster.address],
        capture_output=True, text=True, timeout=timeout, cwd=str(REPO),
        env=dict(os.environ, EMBER_TOKEN=cluster.token, **env),
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert result.returncode == 0 and lines, (
        f"driver failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}\n"
        + cluster.diagnostics()
    )
    return json.loads(lines[-1].removeprefix("RESULT "))


FIRST_TASK = """
import json, sys, ember
ember.init(sys.argv[1])
@ember.remote
def hello():
    return "hello from " + ember.get_runtime_context().get_node_id()
print("RESULT " + json.dumps(ember.get(hello.remote())))
"""


def test_first_task_through_the_published_port(cluster: Cluster) -> None:
    answer = drive(cluster, FIRST_TASK)
    TIMINGS["head container started to first task result (a new driver)"] = (
        f"{time.monotonic() - cluster.started:.1f} s"
    )
    assert answer.startswith("hello from ")


def test_image_runs_as_ember_and_says_what_it_is(cluster: Cluster, image: str) -> None:
    who = docker("run", "--rm", "--entrypoint", "id", image).stdout.strip()
    assert who.startswith("uid=1000(ember) gid=1000(ember)")
    labels = json.loads(docker("image", "inspect", "--format", "{{json .Config.Labels}}", image).stdout)
    assert labels["org.opencontainers.image.version"] == "0.1.0"
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert len(labels["org.opencontainers.image.revision"]) == 40
    # The image's HEALTHCHECK (ember health) passes in each node's container.
    for container in [cluster.head, *cluster.workers]:
        assert cluster.run.wait_healthy(container, timeout=90) == "healthy", cluster.diagnostics()


SPREAD = """
import json, sys, time, ember
ember.init(sys.argv[1])
names = {n["NodeID"]: n["Labels"].get("ember.dev/pod", "head") for n in ember.nodes() if n["Alive"]}

@ember.remote(scheduling_strategy="SPREAD")
def where(i):
    time.sleep(0.5)
    return i * i, ember.get_runtime_context().get_node_id()

@ember.remote
class Tally:
    def __init__(self):
        self.n = 0
    def add(self, k):
        self.n += k
        return self.n, ember.get_runtime_context().get_node_id()

tasks = ember.get([where.remote(i) for i in range(8)])
# One actor on each worker, placed by the node's own resource (node:<its address>).
hosts = {n["Labels"]["ember.dev/pod"]: n["NodeManagerAddress"] for n in ember.nodes()
         if n["Alive"] and "ember.dev/pod" in n["Labels"]}
tallies = {pod: Tally.options(resources={f"node:{host}": 0.01}).remote() for pod, host in hosts.items()}
calls = {pod: ember.get([t.add.remote(1), t.add.remote(2)]) for pod, t in tallies.items()}
print("RESULT " + json.dumps({
    "names": sorted(names.values()),
    "tasks": [[value, names[node]] for value, node in tasks],
    "actors": {pod: [[n, names[node]] for n, node in results] for pod, results in calls.items()},
}))
"""


def test_tasks_and_actors_spread_across_the_workers(cluster: Cluster) -> None:
    result = drive(cluster, SPREAD)
    assert result["names"] == ["head", "worker-1", "worker-2"]
    assert [value for value, _ in result["tasks"]] == [i * i for i in range(8)]
    # The head has no CPUs (as with startParams num-cpus: "0"): the workers ran everything.
    assert {node for _, node in result["tasks"]} == {"worker-1", "worker-2"}
    # Each actor lives on the worker it was placed on, keeps its state and its caller's order.
    assert result["actors"] == {pod: [[1, pod], [3, pod]] for pod in ("worker-1", "worker-2")}


THROUGH_THE_HEAD = """
import json, sys, ember, numpy as np
ember.init(sys.argv[1])
names = {n["NodeID"]: n["Labels"].get("ember.dev/pod", "head") for n in ember.nodes() if n["Alive"]}

@ember.remote(scheduling_strategy="SPREAD")
def total(array):
    return float(array.sum()), ember.get_runtime_context().get_node_id()

big = ember.put(np.ones(5_000_000))  # 40 MB: stored on a worker, streamed through the head
sums = ember.get([total.remote(big) for _ in range(4)])
back = ember.get(ember.put(np.arange(3_000_000)))
print("RESULT " + json.dumps({
    "sums": [[value, names[node]] for value, node in sums], "back": int(back.sum()),
}))
"""


def test_a_driver_outside_reaches_everything_through_localhost(cluster: Cluster) -> None:
    """As a laptop through kubectl port-forward: only the head's port, on 127.0.0.1 (Docker
    delivers it on the head container's interface, not on the address the head advertises)."""
    result = drive(
        cluster, THROUGH_THE_HEAD, address=f"ember://127.0.0.1:{cluster.client_port}",
        EMBER_VIA_HEAD="1",
    )
    assert [value for value, _ in result["sums"]] == [5_000_000.0] * 4
    assert {node for _, node in result["sums"]} <= {"worker-1", "worker-2"}
    assert result["back"] == sum(range(3_000_000))


def scrape(address: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_endpoints(cluster: Cluster) -> None:
    head = scrape(f"{cluster.host}:{cluster.metrics_port}")  # through the published port
    assert head[("ember_nodes", (("state", "alive"),))] == 3
    assert any(name == "ember_node_resources" for name, _ in head)
    for ip in cluster.workers.values():  # as a Prometheus on the network scrapes them
        node = scrape(f"{ip}:8081")
        assert node[("ember_object_store_capacity_bytes", ())] > 0
        assert sum(v for (name, _), v in node.items() if name == "ember_worker_processes") >= 1


KILLED_MID_JOB = """
import json, sys, time, ember
from ember import connection
ember.init(sys.argv[1])
names = {n["NodeID"]: n["Labels"].get("ember.dev/pod", "head") for n in ember.nodes() if n["Alive"]}

@ember.remote(scheduling_strategy="SPREAD", max_retries=3)
def slow(i):
    time.sleep(8)
    return i, ember.get_runtime_context().get_node_id()

def busy(pod):
    for node in connection._view().nodes:
        if node.alive and node.info.labels.get("ember.dev/pod") == pod:
            quantities = node.info.total.quantities
            return node.available.quantities.get("CPU", 0) < quantities.get("CPU", 0)
    return False

refs = [slow.remote(i) for i in range(4)]
deadline = time.time() + 60
while not busy("worker-1") and time.time() < deadline:
    time.sleep(0.2)
print("RUNNING" if busy("worker-1") else "IDLE", flush=True)
sys.stdin.readline()  # the test kills worker-1's container now
results = ember.get(refs, timeout=150)
dead = [n["DeathReasonMessage"] for n in ember.nodes() if not n["Alive"]]
print("RESULT " + json.dumps({
    "results": [[i, names[node]] for i, node in results], "dead": dead,
}))
"""


def test_a_worker_container_killed_mid_job(cluster: Cluster) -> None:
    driver = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(KILLED_MID_JOB), cluster.address],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=str(REPO), env=dict(os.environ, EMBER_TOKEN=cluster.token),
    )
    try:
        assert driver.stdout is not None and driver.stdin is not None
        line = driver.stdout.readline()
        while line and not line.startswith("RUNNING"):
            line = driver.stdout.readline()
        assert line.strip() == "RUNNING", line + cluster.diagnostics()  # tasks on worker-1
        victim = next(c for c in cluster.workers if c.endswith("worker-1"))
        docker("kill", victim)
        driver.stdin.write("go\n")
        driver.stdin.flush()
        out, err = driver.communicate(timeout=200)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.communicate()
    lines = [line for line in out.splitlines() if line.startswith("RESULT ")]
    assert driver.returncode == 0 and lines, out[-3000:] + err[-3000:] + cluster.diagnostics()
    result = json.loads(lines[-1].removeprefix("RESULT "))
    # Every task takes 8 s and worker-1 died within about a second of running its first: those
    # on it ran again on worker-2 (retries), so every result comes from there.
    assert result["results"] == [[i, "worker-2"] for i in range(4)]
    assert len(result["dead"]) == 1 and result["dead"][0]
