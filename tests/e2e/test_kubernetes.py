"""ember on a real Kubernetes: the README's tour on kind, or any cluster, one scenario per test.

What a mock API cannot show is checked here: server-side validation by the CRD's schema and CEL
rules, the status subresource (status written apart from the spec, generation counted by the
server), garbage collection through owner references, real pods that start, die and get
replaced, a driver on this machine connected through ``kubectl port-forward``, and Prometheus
scrapes. The tests share one cluster (see conftest.py) and run in file order. The cluster needs
room for the larger of the two example clusters (manifests/examples/cluster.yaml, and
autoscaling.yaml at its maxReplicas); the first is deleted before the second is made.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from ember import quantity
from tests.e2e import install, kube

pytestmark = [
    pytest.mark.usefixtures("target"),
    # Longer than every wait of the suite, fixtures' included: a slow cluster ends in the
    # suite's own "timed out waiting for ...", not in pytest-timeout's stack dump.
    pytest.mark.timeout(kube.PYTEST_TIMEOUT),
]

SMALL = "small"
SCALING = "scaling"


@pytest.fixture(scope="module")
def small() -> Iterator[str]:
    """The small example cluster, Running, for the scenarios that use it."""
    kube.apply(kube.cluster_manifest("cluster.yaml", SMALL))
    kube.wait_for(lambda: kube.phase(SMALL) == "Running", f"cluster {SMALL} to be Running",
                  timeout=kube.CLUSTER_UP_TIMEOUT)
    yield SMALL
    kube.kubectl("delete", "cluster", SMALL, "-n", kube.NAMESPACE, "--ignore-not-found", "--wait=true",
                 f"--timeout={kube.DELETE_TIMEOUT}s", check=False, timeout=kube.DELETE_TIMEOUT + 60)


def port(service: dict[str, Any], name: str) -> int:
    return int(next(p["port"] for p in service["spec"]["ports"] if p["name"] == name))


def client_port(cluster: str) -> int:
    return port(kube.get("service", f"{cluster}-head"), "client")


def observed(cluster: str) -> bool:
    """Whether the operator has acted on the spec's latest generation (counted by the server,
    which bumps it for spec changes only: the status subresource keeps status writes apart)."""
    body = kube.get("cluster", cluster)
    return bool((body.get("status") or {}).get("observedGeneration") == body["metadata"]["generation"])


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
    uid = cluster["metadata"]["uid"]
    status = cluster["status"]
    assert status["phase"] == "Running"
    assert status["observedGeneration"] == cluster["metadata"]["generation"]
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions["HeadReady"] == "True" and conditions["WorkersReady"] == "True"
    head = kube.pods(small, "head")
    workers = kube.pods(small, "worker")
    assert len(head) == 1 and all(kube.ready(p) for p in head + workers)
    assert len(workers) == cluster["spec"]["workerGroups"][0]["replicas"]
    service = kube.get("service", f"{small}-head")
    secret = kube.get("secret", f"{small}-token")
    # The API server's garbage collector follows these references (by uid) when the Cluster goes.
    for child in [*head, *workers, service, secret]:
        owners = child["metadata"]["ownerReferences"]
        assert [(o["kind"], o["name"], o["uid"], o["controller"]) for o in owners] == [
            ("Cluster", small, uid, True)
        ], child["metadata"]["name"]
    assert {p["name"] for p in service["spec"]["ports"]} >= {"client", "dashboard", "metrics"}
    printed = kube.kubectl("get", "clusters.ember.dev", small, "-n", kube.NAMESPACE)
    assert "Running" in printed


def test_a_cluster_gets_its_network_policy_and_hardened_pods(small: str) -> None:
    """The NetworkPolicy the operator keeps: the cluster's pods, governed; its own pods let in
    everywhere; the operator's pods (of this release, in its namespace) to the client port;
    Prometheus anywhere to the metrics ports. The port-forwards of the scenarios below go on
    working under it (they enter through the kubelet). Pods: no service-account token, a
    read-only root filesystem."""
    policy = kube.get("networkpolicy", f"{small}-network")
    uid = kube.get("cluster", small)["metadata"]["uid"]
    assert [o["uid"] for o in policy["metadata"]["ownerReferences"]] == [uid]
    assert policy["spec"]["podSelector"] == {"matchLabels": {"ember.dev/cluster": small}}
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    own, operator, metrics = policy["spec"]["ingress"]
    assert own == {"from": [{"podSelector": {"matchLabels": {"ember.dev/cluster": small}}}]}
    (peer,) = operator["from"]
    assert peer["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": kube.OPERATOR_NAMESPACE}}
    operator_pods = kube.get("pods", namespace=kube.OPERATOR_NAMESPACE,
                             selector=",".join(f"{k}={v}" for k, v in peer["podSelector"]["matchLabels"].items()))
    assert len(operator_pods["items"]) >= 1, peer  # the selector finds the operator's pods
    service = kube.get("service", f"{small}-head")
    assert [p["port"] for p in operator["ports"]] == [port(service, "client")]
    assert metrics["from"] == [{"namespaceSelector": {}}]
    assert sorted(p["port"] for p in metrics["ports"]) == sorted([port(service, "metrics"), port(service, "node-metrics")])
    for pod in kube.pods(small):
        assert pod["spec"]["automountServiceAccountToken"] is False
        assert pod["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
        assert not any(m["mountPath"].startswith("/var/run/secrets/kubernetes.io")
                       for m in pod["spec"]["containers"][0]["volumeMounts"])


def test_a_cluster_with_a_host_path_is_refused_at_admission_naming_the_field() -> None:
    """The chart's ValidatingAdmissionPolicy (restricted templates, the default)."""
    document = yaml.safe_load(kube.cluster_manifest("cluster.yaml", "sly"))
    document["spec"]["workerGroups"][0]["template"] = {
        "volumes": [{"name": "host", "hostPath": {"path": "/var/run"}}],
        "volumeMounts": [{"name": "host", "mountPath": "/host"}],
    }
    refused = kube.kubectl("apply", "-n", kube.NAMESPACE, "-f", "-", check=False, input=yaml.safe_dump(document))
    assert "spec.workerGroups[cpu].template.volumes[host].hostPath: hostPath volumes are not allowed" in refused, refused
    assert "NotFound" in kube.kubectl("get", "cluster", "sly", "-n", kube.NAMESPACE, check=False)


SEEDS = ("fibonacci.py", "matrix_dag.py", "parameter_server.py")

# Tasks that each hold their share of a CPU for seconds, twice as many as the cluster has such
# shares: more than any one node can run at once, so the requests a full node cannot grant move
# to the nodes with room (queue_balance.py), and every node offering CPUs runs some. (Quick
# tasks would not show it: one node finishes them faster than the others could start.)
SPREAD = """
import json, time, ember, numpy as np
ember.init()
names = {n["NodeID"]: n["Labels"].get("ember.dev/pod", "head") for n in ember.nodes() if n["Alive"]}
offering = {n["NodeID"]: n["Resources"].get("CPU", 0.0) for n in ember.nodes() if n["Alive"]}
offering = {node: cpus for node, cpus in offering.items() if cpus > 0}
share = min(offering.values())
slots = sum(int(cpus / share + 1e-9) for cpus in offering.values())

@ember.remote(num_cpus=share)
def where(_):
    time.sleep(4)
    return ember.get_runtime_context().get_node_id()

ran_on = ember.get([where.remote(i) for i in range(2 * slots)], timeout=600)
big = ember.put(np.ones(50_000_000 // 8))

@ember.remote
def total(a):
    return float(a.sum())

print(json.dumps({
    "offering": sorted(names[n] for n in offering), "ran_on": sorted({names[n] for n in ran_on}),
    "tasks": len(ran_on), "slots": slots, "total": ember.get(total.remote(big)),
    "size": ember.get(big).nbytes,
}))
"""


def test_a_driver_outside_runs_the_seed_programs(small: str) -> None:
    secret = kube.token(small)
    with kube.port_forward(f"svc/{small}-head", client_port(small)) as local:
        for seed in SEEDS:
            program = (kube.REPO / "examples" / seed).read_text()
            result = kube.driver(program, str(local), secret)
            assert result.returncode == 0, f"{seed}:\n{result.stdout}\n{result.stderr}"
        spread = kube.driver(SPREAD, str(local), secret, timeout=900)
    assert spread.returncode == 0, spread.stderr
    seen = json.loads(spread.stdout.strip().splitlines()[-1])
    assert len(seen["offering"]) >= 2, f"the example cluster offers CPUs on one node only: {seen}"
    assert seen["tasks"] == 2 * seen["slots"]
    assert seen["ran_on"] == seen["offering"], seen
    assert seen["total"] == 50_000_000 // 8 and seen["size"] == 50_000_000


def test_a_wrong_token_is_refused(small: str) -> None:
    with kube.port_forward(f"svc/{small}-head", client_port(small)) as local:
        result = kube.driver("import ember; ember.init()", str(local), "not-the-token")
    assert result.returncode != 0 and "token" in result.stderr.lower(), result.stderr


def test_an_invalid_emberjob_is_refused_naming_the_field() -> None:
    document = yaml.safe_load(kube.job_manifest("job.yaml", "bad-job"))
    document["spec"]["clusterSelector"] = {"name": SMALL}
    refused = kube.kubectl("apply", "-n", kube.NAMESPACE, "-f", "-", check=False, input=yaml.safe_dump(document))
    assert "spec.clusterSpec and spec.clusterSelector" in refused, refused
    del document["spec"]["clusterSelector"]
    document["spec"]["clusterSpec"]["workerGroups"][0].update(minReplicas=5, maxReplicas=1)
    refused = kube.kubectl("apply", "-n", kube.NAMESPACE, "-f", "-", check=False, input=yaml.safe_dump(document))
    assert "clusterSpec.workerGroups[0].minReplicas" in refused, refused
    assert "NotFound" in kube.kubectl("get", "emberjob", "bad-job", "-n", kube.NAMESPACE, check=False)


def test_an_emberjob_whose_cluster_the_admission_policy_refuses_fails_saying_why() -> None:
    """The template policy applies to the Clusters the operator makes for jobs too: the chart's
    ValidatingAdmissionPolicy refuses such a Cluster (Kubernetes 1.30+), or the operator refuses
    its pods; either way the job fails with the policy's words instead of trying again."""
    document = yaml.safe_load(kube.job_manifest("job.yaml", "hostile"))
    document["spec"]["clusterSpec"]["head"]["template"] = {
        "volumes": [{"name": "host", "hostPath": {"path": "/"}}],
        "volumeMounts": [{"name": "host", "mountPath": "/host"}],
    }
    kube.apply(yaml.safe_dump(document))
    kube.wait_for(lambda: kube.job_status("hostile").get("jobDeploymentStatus") == "Failed",
                  "EmberJob hostile to fail", timeout=kube.CLUSTER_UP_TIMEOUT)
    message = kube.job_status("hostile")["message"]
    assert "hostPath" in message, message
    kube.kubectl("delete", "emberjob", "hostile", "-n", kube.NAMESPACE, "--wait=true",
                 f"--timeout={kube.DELETE_TIMEOUT}s", timeout=kube.DELETE_TIMEOUT + 60)


def test_an_emberjob_runs_on_an_existing_cluster_with_its_code_from_a_config_map(small: str) -> None:
    """manifests/examples/job-on-small.yaml: the operator uploads the ConfigMap and submits the
    job to the head itself; the Cluster stays."""
    kube.apply(kube.job_manifest("job-on-small.yaml", "count-words", clusterSelector={"name": small}))
    kube.wait_for(lambda: kube.job_status("count-words").get("jobDeploymentStatus") in ("Complete", "Failed"),
                  "EmberJob count-words to end", timeout=kube.CLUSTER_UP_TIMEOUT)
    status = kube.job_status("count-words")
    assert (status["jobDeploymentStatus"], status["jobStatus"]) == ("Complete", "SUCCEEDED"), status
    assert status["clusterName"] == small and kube.phase(small) == "Running"
    printed = kube.kubectl("get", "ej", "count-words", "-n", kube.NAMESPACE)
    assert "SUCCEEDED" in printed and "Complete" in printed
    secret = kube.token(small)
    with kube.port_forward(f"svc/{small}-head", client_port(small)) as local:
        logs = ember_job(local, secret, "logs", status["submissionId"])
    assert logs.returncode == 0 and "words: 900" in logs.stdout, logs.stderr
    kube.kubectl("delete", "emberjob", "count-words", "-n", kube.NAMESPACE, "--wait=true",
                 f"--timeout={kube.DELETE_TIMEOUT}s", timeout=kube.DELETE_TIMEOUT + 60)
    assert kube.phase(small) == "Running"  # a selected Cluster is not the job's


def test_ember_job_submit_through_port_forward(small: str, tmp_path: Path) -> None:
    """The README's promise: a multi-module project on a laptop, run with
    ``ember job submit --working-dir . -- python -m myproject.train`` through one forwarded port."""
    package = tmp_path / "myproject"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "helper.py").write_text("def scale(x):\n    return 10 * x\n")
    (package / "train.py").write_text(textwrap.dedent("""
        import ember
        from myproject.helper import scale
        ember.init()
        @ember.remote
        def square(x):
            return x * x
        print("trained:", scale(sum(ember.get([square.remote(i) for i in range(4)]))))
    """))
    secret = kube.token(small)
    with kube.port_forward(f"svc/{small}-head", client_port(small)) as local:
        done = ember_job(local, secret, "submit", "--working-dir", ".", "--", "python", "-m", "myproject.train",
                         cwd=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "trained: 140" in done.stdout and "SUCCEEDED" in done.stdout
        long = ember_job(local, secret, "submit", "--no-wait", "--submission-id", "e2e-long", "--",
                         "echo started; sleep 600")
        assert long.returncode == 0, long.stderr
        kube.wait_for(lambda: "started" in ember_job(local, secret, "logs", "e2e-long").stdout, "its output")
        stopped = ember_job(local, secret, "stop", "e2e-long")
        assert "STOPPED" in stopped.stdout, stopped.stdout + stopped.stderr
        listed = ember_job(local, secret, "list").stdout
    assert "e2e-long" in listed and "SUCCEEDED" in listed


def ember_job(local: int, secret: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, EMBER_ADDRESS=f"ember://127.0.0.1:{local}", EMBER_TOKEN=secret)
    env.pop("EMBER_TOKEN_FILE", None)
    return subprocess.run([sys.executable, "-m", "ember.cli", "job", *args], capture_output=True, text=True,
                          env=env, cwd=str(cwd or kube.REPO), timeout=600)


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


def test_metrics_are_scraped_from_head_and_workers(small: str) -> None:
    service = kube.get("service", f"{small}-head")
    with kube.port_forward(f"svc/{small}-head", port(service, "metrics")) as local:
        text = urllib.request.urlopen(f"http://127.0.0.1:{local}/metrics", timeout=10).read().decode()
    nodes = samples(text, "ember_nodes")
    # The head pod runs a node agent too: every pod of the cluster is one live node.
    assert nodes[(("state", "alive"),)] == len(kube.pods(small)), nodes
    worker = kube.pods(small, "worker")[0]
    metrics_port = next(p["containerPort"] for p in worker["spec"]["containers"][0]["ports"]
                        if p["name"] == "node-metrics")
    with kube.port_forward(f"pod/{worker['metadata']['name']}", metrics_port) as local:
        text = urllib.request.urlopen(f"http://127.0.0.1:{local}/metrics", timeout=10).read().decode()
    capacity = samples(text, "ember_object_store_capacity_bytes")
    assert capacity and all(value > 0 for value in capacity.values()), text[:500]


def test_a_worker_pod_deleted_mid_job_is_replaced_and_the_job_completes(small: str) -> None:
    secret = kube.token(small)
    replicas = kube.get("cluster", small)["spec"]["workerGroups"][0]["replicas"]
    victim = kube.pods(small, "worker")[0]["metadata"]
    with kube.port_forward(f"svc/{small}-head", client_port(small)) as local:
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
        """), str(local), secret, kube.tool("kubectl") or "kubectl", "--context", kube.CONTEXT,
            "-n", kube.NAMESPACE, "delete", "pod", victim["name"], "--wait=false")
    assert job.returncode == 0, job.stderr
    assert int(job.stdout.split()[-1]) == sum(range(20))

    # The replacement may take the same name (the lowest free index): told apart by uid.
    def replaced() -> bool:
        workers = kube.pods(small, "worker")
        return (
            len(workers) == replicas
            and victim["uid"] not in {p["metadata"]["uid"] for p in workers}
            and all(kube.ready(p) for p in workers)
            and kube.phase(small) == "Running"
        )

    kube.wait_for(replaced, f"worker pod {victim['name']} to be replaced")


def test_suspend_removes_the_pods_and_resume_brings_them_back(small: str) -> None:
    kube.kubectl("patch", "cluster", small, "-n", kube.NAMESPACE, "--type=merge", "-p",
                 json.dumps({"spec": {"suspend": True}}))
    kube.wait_for(lambda: kube.phase(small) == "Suspended" and not kube.pods(small) and observed(small),
                  "the pods to go")
    assert kube.get("secret", f"{small}-token")  # the token outlives a suspension
    kube.kubectl("patch", "cluster", small, "-n", kube.NAMESPACE, "--type=merge", "-p",
                 json.dumps({"spec": {"suspend": False}}))
    kube.wait_for(lambda: kube.phase(small) == "Running" and observed(small),
                  "the cluster to come back", timeout=kube.CLUSTER_UP_TIMEOUT)


def another_name_of_the_image(small: str) -> str:
    """The image under a second name, available to the nodes: a new tag, loaded as the first
    was; or, where the suite loads nothing, the digest the nodes pulled (a registry serves it)."""
    if kube.LOADS:
        repository, tag = kube.split_image(kube.IMAGE)
        renamed = f"{repository}:{tag}-next"
        kube.run(kube.engine() or "docker", "tag", kube.IMAGE, renamed)
        install.load_image(renamed)
        return renamed
    image_id = kube.pods(small, "head")[0]["status"]["containerStatuses"][0]["imageID"]
    digest = image_id.removeprefix("docker-pullable://")
    if "@" not in digest or digest.startswith("sha256:"):
        pytest.skip(f"EMBER_E2E_LOAD=none, and the nodes' copy of {kube.IMAGE} has no registry "
                    f"digest ({image_id}) to roll to: give EMBER_E2E_LOAD a command instead")
    return digest


def test_an_image_change_rolls_every_pod(small: str) -> None:
    renamed = another_name_of_the_image(small)
    before = {p["metadata"]["uid"] for p in kube.pods(small)}
    kube.kubectl("patch", "cluster", small, "-n", kube.NAMESPACE, "--type=merge", "-p",
                 json.dumps({"spec": {"image": renamed}}))

    def rolled() -> bool:
        now = kube.pods(small)
        return (
            bool(now)
            and all(p["spec"]["containers"][0]["image"] == renamed and kube.ready(p) for p in now)
            and not before & {p["metadata"]["uid"] for p in now}
            and kube.phase(small) == "Running"
        )

    kube.wait_for(rolled, "every pod to run the new image", timeout=kube.ROLL_TIMEOUT)
    events = kube.get("events")["items"]
    reasons = {e["reason"] for e in events
               if e["involvedObject"].get("kind") == "Cluster" and e["involvedObject"].get("name") == small}
    assert {"RollingHead", "RollingWorker"} <= reasons, reasons


def delete_and_check_collected(name: str) -> None:
    """Delete a Cluster as a user does; every object it made must go with it, by the garbage
    collector following owner references (the operator is not asked)."""
    uid = kube.get("cluster", name)["metadata"]["uid"]

    def children() -> list[str]:
        return [
            f"{kind}/{item['metadata']['name']}"
            for kind in ("pods", "services", "secrets", "persistentvolumeclaims", "configmaps", "networkpolicies")
            for item in kube.get(kind, selector=f"ember.dev/cluster={name}")["items"]
        ]

    made = children()
    assert any(child.startswith("pods/") for child in made), made
    kube.kubectl("delete", "cluster", name, "-n", kube.NAMESPACE, "--wait=true",
                 f"--timeout={kube.DELETE_TIMEOUT}s", timeout=kube.DELETE_TIMEOUT + 60)
    kube.wait_for(lambda: not children(), f"every child of the deleted cluster {name} to be collected",
                  timeout=kube.DELETE_TIMEOUT)
    assert "NotFound" in kube.kubectl("get", "cluster", name, "-n", kube.NAMESPACE, check=False)
    assert uid not in json.dumps(kube.get("clusters")["items"])


def test_deleting_a_cluster_leaves_nothing_behind(small: str) -> None:
    delete_and_check_collected(small)


def test_an_emberjob_on_its_own_cluster_runs_then_its_cluster_goes() -> None:
    """manifests/examples/job.yaml (one worker, a short TTL): the operator makes Cluster
    pi-1, a submitter Job runs `ember job submit` there and shows the output, and the Cluster
    is deleted after the job, its pods with it. Run once `small` is gone: a 2-CPU kind node
    holds one example cluster at a time."""
    manifest = yaml.safe_load(kube.job_manifest("job.yaml", "pi", ttlSecondsAfterFinished=5))
    manifest["spec"]["clusterSpec"]["workerGroups"][0]["replicas"] = 1
    kube.apply(yaml.safe_dump(manifest))
    kube.wait_for(lambda: kube.job_status("pi").get("jobDeploymentStatus") in ("Complete", "Failed"),
                  "EmberJob pi to end", timeout=kube.CLUSTER_UP_TIMEOUT)
    status = kube.job_status("pi")
    assert (status["jobDeploymentStatus"], status["jobStatus"], status["clusterName"]) == (
        "Complete", "SUCCEEDED", "pi-1"), status
    logs = kube.kubectl("logs", "job/pi-1-submit", "-n", kube.NAMESPACE)
    assert "pi is about 3.1" in logs, logs
    kube.wait_for(lambda: not kube.get("clusters")["items"], "the job's Cluster deleted after the TTL")
    kube.wait_for(lambda: not kube.get("pods", selector="ember.dev/cluster=pi-1")["items"],
                  "the job's Cluster's pods collected", timeout=kube.DELETE_TIMEOUT)
    events = {e["reason"] for e in kube.get("events")["items"]
              if e["involvedObject"].get("kind") == "EmberJob" and e["involvedObject"].get("name") == "pi"}
    assert {"CreatedCluster", "CreatedSubmitter", "Running", "Complete", "DeletedCluster"} <= events, events
    kube.kubectl("delete", "emberjob", "pi", "-n", kube.NAMESPACE, "--wait=true",
                 f"--timeout={kube.DELETE_TIMEOUT}s", timeout=kube.DELETE_TIMEOUT + 60)
    assert not kube.get("jobs", selector="ember.dev/job=pi")["items"]  # the submitter went with it


def test_autoscaling_grows_for_pending_work_and_shrinks_when_idle() -> None:
    kube.apply(kube.cluster_manifest("autoscaling.yaml", SCALING))
    kube.wait_for(lambda: kube.phase(SCALING) == "Running", f"cluster {SCALING} to be Running",
                  timeout=kube.CLUSTER_UP_TIMEOUT)
    spec = kube.get("cluster", SCALING)["spec"]
    group = spec["workerGroups"][0]
    assert group["minReplicas"] < group["maxReplicas"]
    idle_timeout = spec["autoscaling"]["idleTimeoutSeconds"]
    cpus = float(quantity.parse(group["resources"]["cpu"]))  # one task fills one worker
    secret = kube.token(SCALING)
    count = group["maxReplicas"] * 2
    peak = 0
    with kube.port_forward(f"svc/{SCALING}-head", client_port(SCALING)) as local:
        job = kube.start_driver(textwrap.dedent(f"""
            import time, ember
            ember.init()
            @ember.remote(num_cpus={cpus})
            def work(i):
                time.sleep(20)
                return i
            refs = [work.remote(i) for i in range({count})]
            print(sorted(ember.get(refs, timeout={kube.SCALE_JOB_TIMEOUT})) == list(range({count})))
        """), str(local), secret)
        try:
            while job.poll() is None:
                peak = max(peak, sum(kube.ready(p) for p in kube.pods(SCALING, "worker")))
                time.sleep(2)
        finally:
            if job.poll() is None:
                job.kill()
            out, err = job.communicate()
    assert job.returncode == 0 and out.split()[-1] == "True", err
    assert peak == group["maxReplicas"]
    events = kube.get("events")["items"]
    assert any(e["reason"] == "Scaled" and e["involvedObject"].get("name") == SCALING for e in events)
    # Grown at some point to its maximum, now shrinking back to its minimum once idle.
    kube.wait_for(
        lambda: len(kube.pods(SCALING, "worker")) == group["minReplicas"],
        "the idle workers to be removed",
        timeout=idle_timeout + 300,
    )
    delete_and_check_collected(SCALING)
