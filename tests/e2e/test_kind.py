"""ember on a real Kubernetes: the README's "try it on kind", one scenario per test.

What a mock API cannot show is checked here: server-side validation by the CRD's schema and CEL
rules, garbage collection through owner references, real pods that start, die and get replaced,
a driver on this machine connected through ``kubectl port-forward``, and Prometheus scrapes.
The tests share one kind cluster (see conftest.py) and run in file order.
"""

from __future__ import annotations

import json
import textwrap
import time
import urllib.request
from collections.abc import Iterator

import pytest
import yaml

from tests.e2e import kube

pytestmark = pytest.mark.usefixtures("kind")

SMALL = "small"
SCALING = "scaling"


@pytest.fixture(scope="module")
def small() -> Iterator[str]:
    """The small example cluster, Running, for the scenarios that use it."""
    kube.apply(kube.cluster_manifest("cluster.yaml", SMALL))
    kube.wait_for(lambda: kube.phase(SMALL) == "Running", f"cluster {SMALL} to be Running", timeout=600)
    yield SMALL
    kube.kubectl("delete", "cluster", SMALL, "-n", kube.NAMESPACE, "--wait=true", check=False)


def test_an_invalid_cluster_is_refused_naming_the_field() -> None:
    document = yaml.safe_load(kube.cluster_manifest("cluster.yaml", "bad"))
    group = document["spec"]["workerGroups"][0]
    group.update(minReplicas=5, maxReplicas=1, replicas=1)
    refused = kube.kubectl("apply", "-n", kube.NAMESPACE, "-f", "-", check=False, input=yaml.safe_dump(document))
    assert "minReplicas" in refused and "maxReplicas" in refused, refused
    group.update(minReplicas=0, maxReplicas=2, name="Not_A_Label")
    refused = kube.kubectl("apply", "-n", kube.NAMESPACE, "-f", "-", check=False, input=yaml.safe_dump(document))
    assert "workerGroups[0].name" in refused, refused
    assert "NotFound" in kube.kubectl("get", "cluster", "bad", "-n", kube.NAMESPACE, check=False)


def test_a_cluster_comes_up_with_its_children(small: str) -> None:
    cluster = kube.get("cluster", small)
    status = cluster["status"]
    assert status["phase"] == "Running"
    assert status["observedGeneration"] == cluster["metadata"]["generation"]
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions["HeadReady"] == "True" and conditions["WorkersReady"] == "True"
    head = kube.pods(small, "head")
    workers = kube.pods(small, "worker")
    assert len(head) == 1 and all(kube.ready(p) for p in head + workers)
    assert len(workers) == cluster["spec"]["workerGroups"][0]["replicas"]
    for pod in head + workers:
        owner = pod["metadata"]["ownerReferences"][0]
        assert owner["kind"] == "Cluster" and owner["name"] == small and owner["controller"]
    service = kube.get("service", f"{small}-head")
    assert {p["name"] for p in service["spec"]["ports"]} >= {"client", "dashboard", "metrics"}
    printed = kube.kubectl("get", "clusters.ember.dev", small, "-n", kube.NAMESPACE)
    assert "Running" in printed


SEEDS = ("fibonacci.py", "matrix_dag.py", "parameter_server.py")


def test_a_driver_outside_runs_the_seed_programs(small: str) -> None:
    secret = kube.token(small)
    with kube.port_forward(f"svc/{small}-head", 10001) as port:
        for seed in SEEDS:
            program = (kube.REPO / "examples" / seed).read_text()
            result = kube.driver(program, str(port), secret)
            assert result.returncode == 0, f"{seed}:\n{result.stdout}\n{result.stderr}"
        spread = kube.driver(textwrap.dedent("""
            import ember, socket, numpy as np
            ember.init()
            @ember.remote
            def where(_): return socket.gethostname()
            hosts = set(ember.get([where.remote(i) for i in range(40)]))
            big = ember.put(np.ones(50_000_000 // 8))
            @ember.remote
            def total(a): return float(a.sum())
            print(len(hosts), ember.get(total.remote(big)), ember.get(big).nbytes)
        """), str(port), secret)
    assert spread.returncode == 0, spread.stderr
    hosts, total, size = spread.stdout.split()
    assert int(hosts) >= 2 and float(total) == 50_000_000 // 8 and int(size) == 50_000_000


def test_a_wrong_token_is_refused(small: str) -> None:
    with kube.port_forward(f"svc/{small}-head", 10001) as port:
        result = kube.driver("import ember; ember.init()", str(port), "not-the-token")
    assert result.returncode != 0 and "token" in result.stderr.lower(), result.stderr


def test_metrics_are_scraped_from_head_and_workers(small: str) -> None:
    with kube.port_forward(f"svc/{small}-head", 8080) as port:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    assert "ember_nodes" in text or "ember_" in text, text[:500]
    worker = kube.pods(small, "worker")[0]["metadata"]["name"]
    with kube.port_forward(f"pod/{worker}", 8081) as port:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    assert "ember_" in text, text[:500]


def test_a_worker_pod_deleted_mid_job_is_replaced_and_the_job_completes(small: str) -> None:
    secret = kube.token(small)
    victim = kube.pods(small, "worker")[0]["metadata"]["name"]
    with kube.port_forward(f"svc/{small}-head", 10001) as port:
        job = kube.driver(textwrap.dedent("""
            import sys, time, subprocess, ember
            ember.init()
            @ember.remote(max_retries=3)
            def step(i):
                time.sleep(2)
                return i
            refs = [step.remote(i) for i in range(20)]
            time.sleep(3)
            subprocess.run(sys.argv[1:], check=True)   # kubectl delete pod, mid-job
            print(sum(ember.get(refs, timeout=240)))
        """), str(port), secret, kube.tool("kubectl") or "kubectl", "--context",
            f"kind-{kube.KIND_CLUSTER}", "-n", kube.NAMESPACE, "delete", "pod", victim, "--wait=false")
    assert job.returncode == 0, job.stderr
    assert int(job.stdout.split()[-1]) == sum(range(20))
    kube.wait_for(
        lambda: victim not in [p["metadata"]["name"] for p in kube.pods(small, "worker")]
        and kube.phase(small) == "Running",
        "the deleted worker to be replaced",
    )


def test_suspend_removes_the_pods_and_resume_brings_them_back(small: str) -> None:
    kube.kubectl("patch", "cluster", small, "-n", kube.NAMESPACE, "--type=merge", "-p",
                 json.dumps({"spec": {"suspend": True}}))
    kube.wait_for(lambda: kube.phase(small) == "Suspended" and not kube.pods(small), "the pods to go")
    assert kube.get("secret", f"{small}-token")  # the token outlives a suspension
    kube.kubectl("patch", "cluster", small, "-n", kube.NAMESPACE, "--type=merge", "-p",
                 json.dumps({"spec": {"suspend": False}}))
    kube.wait_for(lambda: kube.phase(small) == "Running", "the cluster to come back", timeout=600)


def test_an_image_change_rolls_every_pod(small: str) -> None:
    engine = kube.tool("docker") or kube.tool("podman") or "docker"
    kube.run(engine, "tag", kube.IMAGE, "ember:e2e-next")
    kube.run("kind", "load", "docker-image", "ember:e2e-next", "--name", kube.KIND_CLUSTER)
    before = {p["metadata"]["uid"] for p in kube.pods(small)}
    kube.kubectl("patch", "cluster", small, "-n", kube.NAMESPACE, "--type=merge", "-p",
                 json.dumps({"spec": {"image": "ember:e2e-next"}}))

    def rolled() -> bool:
        now = kube.pods(small)
        return (
            bool(now)
            and all(p["spec"]["containers"][0]["image"] == "ember:e2e-next" and kube.ready(p) for p in now)
            and not before & {p["metadata"]["uid"] for p in now}
            and kube.phase(small) == "Running"
        )

    kube.wait_for(rolled, "every pod to run the new image", timeout=900)
    events = kube.kubectl("get", "events", "-n", kube.NAMESPACE,
                          "--field-selector", f"involvedObject.name={small}")
    assert "Roll" in events or "roll" in events, events


def test_autoscaling_grows_for_pending_work_and_shrinks_when_idle() -> None:
    kube.apply(kube.cluster_manifest("autoscaling.yaml", SCALING))
    kube.wait_for(lambda: kube.phase(SCALING) == "Running", f"cluster {SCALING} to be Running", timeout=600)
    spec = kube.get("cluster", SCALING)["spec"]
    group = spec["workerGroups"][0]
    idle_timeout = spec["autoscaling"]["idleTimeoutSeconds"]
    secret = kube.token(SCALING)
    count = group["maxReplicas"] * 2
    peak = 0
    with kube.port_forward(f"svc/{SCALING}-head", 10001) as port:
        job = kube.start_driver(textwrap.dedent(f"""
            import time, ember
            ember.init()
            @ember.remote(num_cpus=1)
            def work(i):
                time.sleep(20)
                return i
            refs = [work.remote(i) for i in range({count})]
            print(sorted(ember.get(refs, timeout=600)) == list(range({count})))
        """), str(port), secret)
        while job.poll() is None:
            peak = max(peak, sum(kube.ready(p) for p in kube.pods(SCALING, "worker")))
            time.sleep(2)
        out, err = job.communicate()
    assert job.returncode == 0 and out.split()[-1] == "True", err
    assert peak == group["maxReplicas"]
    events = kube.kubectl("get", "events", "-n", kube.NAMESPACE, "--field-selector", f"involvedObject.name={SCALING}")
    assert "Scaled" in events, events
    # Grown at some point to its maximum, now shrinking back to its minimum once idle.
    kube.wait_for(
        lambda: len(kube.pods(SCALING, "worker")) == group["minReplicas"],
        "the idle workers to be removed",
        timeout=idle_timeout + 300,
    )
    assert group["minReplicas"] < group["maxReplicas"]


def test_deleting_a_cluster_leaves_nothing_behind() -> None:
    kube.kubectl("delete", "cluster", SCALING, "-n", kube.NAMESPACE, "--wait=true", check=False)
    kube.kubectl("delete", "cluster", SMALL, "-n", kube.NAMESPACE, "--wait=true", check=False)

    def gone() -> bool:
        left = [
            item["metadata"]["name"]
            for kind in ("pods", "services", "secrets", "persistentvolumeclaims")
            for item in kube.get(kind, selector="app.kubernetes.io/managed-by=ember-operator")["items"]
        ]
        return not left

    kube.wait_for(gone, "every child of the deleted clusters to be collected", timeout=300)
    time.sleep(1)
    assert not kube.get("clusters")["items"]
