"""The pure reconcile (``ember.operator.render.plan``) driven through a cluster's life.

A small in-memory world stands in for the API server: it applies a plan's creates, deletes,
status and spec patch, and lets a test make pods Ready, fail or linger while terminating.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.utils.quantity import parse_quantity

from ember.operator import cluster_spec
from ember.operator.cluster_policy import Policy
from ember.operator.render import Observed, Plan, plan

T0 = datetime(2025, 1, 1, tzinfo=UTC)
LABELS = {
    "ember.dev/cluster": "c",
    "app.kubernetes.io/name": "ember",
    "app.kubernetes.io/instance": "c",
    "app.kubernetes.io/managed-by": "ember-operator",
}


class World:
    """A namespace holding one Cluster and what the operator made for it."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.cluster: dict[str, Any] = {
            "apiVersion": "ember.dev/v1alpha1", "kind": "Cluster",
            "metadata": {"name": "c", "namespace": "ns", "uid": "uid-1", "generation": 1},
            "spec": spec,
        }
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.drained: set[str] = set()
        self.now = T0
        self.tick = 0
        self.policy = Policy()

    def observed(self) -> Observed:
        of = lambda kind: tuple(o for (k, _), o in sorted(self.objects.items()) if k == kind)  # noqa: E731
        secrets = of("Secret")
        return Observed(secret=secrets[0] if secrets else None, services=of("Service"), pods=of("Pod"),
                        drained=frozenset(self.drained), fresh_token="fresh", now=self.now,
                        claims=of("PersistentVolumeClaim"), network_policies=of("NetworkPolicy"))

    def plan(self) -> Plan:
        return plan(copy.deepcopy(self.cluster), self.observed(), self.policy)

    def step(self, *, finish_deletes: bool = True) -> Plan:
        """Plan and apply, as the handler would; deleted pods vanish unless told to linger."""
        result = self.plan()
        for obj in result.creates:
            key = (obj["kind"], obj["metadata"]["name"])
            assert key not in self.objects, f"create of an existing {key}"
            obj = copy.deepcopy(dict(obj))
            self.tick += 1
            obj["metadata"]["creationTimestamp"] = (T0 + timedelta(seconds=self.tick)).strftime("%Y-%m-%dT%H:%M:%SZ")
            if obj["kind"] == "Pod":
                obj["status"] = {"phase": "Pending"}
            self.objects[key] = obj
        for obj in result.patches:  # a merge patch: maps merge, lists are replaced whole
            key = (obj["kind"], obj["metadata"]["name"])
            self.objects[key] = merge(self.objects[key], copy.deepcopy(dict(obj)))
        for kind, name in result.deletes:
            if finish_deletes:
                self.objects.pop((kind, name))
                self.drained.discard(name)  # the head forgets a node that is gone
            else:
                self.objects[(kind, name)]["metadata"]["deletionTimestamp"] = "2025-01-01T01:00:00Z"
        self.cluster["status"] = copy.deepcopy(dict(result.status))
        if result.spec_patch:
            self.cluster["spec"].update(copy.deepcopy(dict(result.spec_patch)))
        self.now += timedelta(seconds=10)
        return result

    def pod(self, name: str) -> dict[str, Any]:
        return self.objects[("Pod", name)]

    def pods(self) -> list[str]:
        return sorted(n for (k, n) in self.objects if k == "Pod")

    def ready(self, *names: str) -> None:
        for name in names or self.pods():
            self.pod(name)["status"] = {"phase": "Running", "podIP": f"10.0.0.{len(name)}",
                                        "conditions": [{"type": "Ready", "status": "True"}]}

    def converge(self) -> None:
        """Reconcile and make every pod Ready until there is nothing left to do."""
        for _ in range(50):
            self.ready()
            result = self.step()
            self.drained |= set(result.drains)
            if not (result.creates or result.patches or result.deletes or result.drains):
                return
        raise AssertionError("no convergence in 50 passes")


def merge(base: Any, patch: Any) -> Any:
    """A JSON merge patch (RFC 7386) of ``patch`` over ``base``."""
    if not isinstance(patch, dict):
        return patch
    out = dict(base) if isinstance(base, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge(out.get(key), value)
    return out


def idle(result: Plan) -> bool:
    return not (result.creates or result.patches or result.deletes or result.drains or result.events
                or result.spec_patch)


def names(objects: Any) -> list[str]:
    return [f"{o['kind']}/{o['metadata']['name']}" for o in objects]


def conditions(result: Plan) -> dict[str, str]:
    return {c["type"]: c["status"] for c in result.status["conditions"]}


def small() -> dict[str, Any]:
    return {"workerGroups": [{"name": "cpu", "replicas": 2, "resources": {"cpu": "1", "memory": "2Gi"}}]}


def test_create_from_nothing() -> None:
    world = World(small())
    first = world.step()
    assert names(first.creates) == ["Secret/c-token", "Service/c-head", "NetworkPolicy/c-network", "Pod/c-head"]
    assert first.status["phase"] == "Pending"
    assert conditions(first)["Provisioned"] == "False"
    # Workers wait for a Ready head (they would only fail against an empty Service).
    assert world.step().creates == ()
    world.ready("c-head")
    second = world.step()
    assert names(second.creates) == ["Pod/c-cpu-0", "Pod/c-cpu-1"]
    assert ("Normal", "CreatedWorkers", "created worker pods c-cpu-0, c-cpu-1 of group cpu (2 desired)") in second.events
    assert second.status["phase"] == "Scaling"
    world.ready()
    done = world.step()
    assert idle(done)
    assert done.status["phase"] == "Running"
    assert conditions(done) == {"HeadReady": "True", "WorkersReady": "True", "Provisioned": "True",
                                "ReplicaFailure": "False", "Suspended": "False", "TemplateAllowed": "True"}
    assert done.status["head"] == {"podName": "c-head", "podIP": "10.0.0.6", "serviceName": "c-head",
                                   "clientAddress": "c-head.ns.svc:10001"}
    assert done.status["endpoints"] == {"client": "ember://c-head.ns.svc:10001",
                                        "dashboard": "http://c-head.ns.svc:8265",
                                        "metrics": "http://c-head.ns.svc:8080/metrics"}
    worker = world.pod("c-cpu-0")
    assert worker["spec"]["containers"][0]["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "node-metrics"}
    assert "ember.dev/tls" not in worker["metadata"]["labels"]
    assert (done.status["desiredWorkers"], done.status["readyWorkers"]) == (2, 2)
    assert done.status["workerGroups"] == [{"name": "cpu", "desiredReplicas": 2, "readyReplicas": 2, "failedReplicas": 0}]
    assert done.status["observedGeneration"] == 1


def test_idempotent_plan_of_its_own_result() -> None:
    world = World(small())
    world.converge()
    status = world.cluster["status"]
    again = world.step()
    assert idle(again)
    # The status written again is the same, transition times included.
    assert again.status["conditions"] == status["conditions"]


def test_owner_references_and_labels_on_every_child() -> None:
    world = World({**small(), "head": {"stateVolume": {"size": "5Gi"}}})
    world.converge()
    assert sorted(world.objects) == [
        ("NetworkPolicy", "c-network"), ("PersistentVolumeClaim", "c-head-state"), ("Pod", "c-cpu-0"), ("Pod", "c-cpu-1"), ("Pod", "c-head"),
        ("Secret", "c-token"), ("Service", "c-head")]
    for obj in world.objects.values():
        meta = obj["metadata"]
        assert meta["namespace"] == "ns"
        assert meta["ownerReferences"] == [{"apiVersion": "ember.dev/v1alpha1", "kind": "Cluster", "name": "c",
                                            "uid": "uid-1", "controller": True, "blockOwnerDeletion": True}]
        assert LABELS.items() <= meta["labels"].items()
    assert world.pod("c-head")["metadata"]["labels"]["ember.dev/node-type"] == "head"
    worker = world.pod("c-cpu-1")["metadata"]
    assert (worker["labels"]["ember.dev/node-type"], worker["labels"]["ember.dev/group"]) == ("worker", "cpu")
    assert len(worker["annotations"]["ember.dev/pod-spec-hash"]) == 16
    assert world.objects[("PersistentVolumeClaim", "c-head-state")]["spec"]["resources"] == {"requests": {"storage": "5Gi"}}
    claim = [v for v in world.pod("c-head")["spec"]["volumes"] if v["name"] == "state"]
    assert claim == [{"name": "state", "persistentVolumeClaim": {"claimName": "c-head-state"}}]


def test_the_pods_as_the_contract_describes_them() -> None:
    world = World({"tls": {"secretName": "tls"}, "head": {"startParams": {"num-cpus": "0"}},
                   "workerGroups": [{"name": "gpu", "replicas": 1, "resources": {
                       "cpu": "500m", "memory": "1Gi", "gpu": 1, "custom": {"disk": 2}},
                       "template": {"env": [{"name": "A", "value": "1"}], "labels": {"team": "x"},
                                    "nodeSelector": {"gpu": "yes"}}}]})
    world.converge()
    head = world.pod("c-head")
    (container,) = head["spec"]["containers"]
    assert container["command"] == ["ember"]
    assert container["args"] == [
        "start", "--head", "--block", "--host", "$(POD_IP)", "--port", "10001", "--dashboard-host", "0.0.0.0",
        "--dashboard-port", "8265", "--head-metrics-port", "8080", "--metrics-port", "8081",
        "--state-dir", "/var/lib/ember",
        "--labels", '{"ember.dev/pod":"c-head","ember.dev/node-type":"head"}', "--num-cpus", "0"]
    assert container["readinessProbe"]["tcpSocket"] == {"port": "client"}
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {
        "client": 10001, "dashboard": 8265, "metrics": 8080, "node-metrics": 8081}
    assert container["resources"] == {"requests": {"cpu": "1", "memory": str(2 * 2**30)},
                                      "limits": {"memory": str(2 * 2**30)}}
    assert container["securityContext"] == {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                                            "readOnlyRootFilesystem": True, "runAsNonRoot": True}
    assert head["spec"]["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert head["spec"]["securityContext"]["runAsUser"] == 1000
    assert head["spec"]["restartPolicy"] == "Always"
    env = {e["name"]: e for e in container["env"]}
    assert env["EMBER_TOKEN"]["valueFrom"] == {"secretKeyRef": {"name": "c-token", "key": "token"}}
    assert env["POD_IP"]["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert env["EMBER_TLS_CA"]["value"] == "/etc/ember/tls/ca.crt"
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts == {"dshm": "/dev/shm", "tmp": "/tmp", "state": "/var/lib/ember", "tls": "/etc/ember/tls"}
    assert {"name": "dshm", "emptyDir": {"medium": "Memory"}} in head["spec"]["volumes"]

    worker = world.pod("c-gpu-0")
    (container,) = worker["spec"]["containers"]
    assert container["args"] == [
        "start", "--block", "--address", "c-head.ns.svc:10001", "--host", "$(POD_IP)", "--metrics-port", "8081",
        "--num-cpus", "0.5", "--num-gpus", "1", "--resources", '{"disk":2.0}',
        "--labels", '{"ember.dev/pod":"c-gpu-0","ember.dev/group":"gpu","ember.dev/node-type":"worker"}']
    assert container["resources"]["limits"] == {"memory": str(2**30), "nvidia.com/gpu": "1"}
    assert container["resources"]["requests"] == {"memory": str(2**30), "cpu": "0.5"}
    assert worker["spec"]["restartPolicy"] == "Never"
    # Ready only while the agent's store is sound (it answers 503 once broken); never restarted.
    # With TLS the endpoint speaks HTTPS, and the pods say so to the chart's PodMonitor.
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "node-metrics", "scheme": "HTTPS"}
    assert worker["metadata"]["labels"]["ember.dev/tls"] == head["metadata"]["labels"]["ember.dev/tls"] == "true"
    assert world.cluster["status"]["endpoints"]["dashboard"] == "https://c-head.ns.svc:8265"
    assert "livenessProbe" not in container
    assert worker["spec"]["nodeSelector"] == {"gpu": "yes"}
    assert worker["metadata"]["labels"]["team"] == "x"
    assert [e["name"] for e in container["env"]][-1] == "A"
    secret = world.objects[("Secret", "c-token")]
    assert secret["data"] == {"token": "ZnJlc2g="}  # base64 of the fresh token
    service = world.objects[("Service", "c-head")]["spec"]
    assert {p["name"]: p["port"] for p in service["ports"]} == {
        "client": 10001, "dashboard": 8265, "metrics": 8080, "node-metrics": 8081}
    assert service["selector"] == {"ember.dev/cluster": "c", "ember.dev/node-type": "head"}


def test_node_labels_from_start_params_keep_the_pods_own() -> None:
    """Labels a group's startParams give are the node's too, beside the pod's name, group and
    node type (which tasks select by, and which the drain finds the pod by: they win)."""
    world = World({"workerGroups": [{"name": "cpu", "replicas": 1, "resources": {"cpu": "1"},
                                     "startParams": {"labels": '{"zone":"a","ember.dev/pod":"spoof"}'}}]})
    world.converge()
    args = world.pod("c-cpu-0")["spec"]["containers"][0]["args"]
    labels = json.loads(args[args.index("--labels") + 1])
    assert labels == {"zone": "a", "ember.dev/pod": "c-cpu-0", "ember.dev/group": "cpu", "ember.dev/node-type": "worker"}
    assert args.count("--labels") == 1


def test_pods_mount_no_account_token_and_write_only_to_their_volumes() -> None:
    """No service-account token unless the template asks; a read-only root filesystem, with
    every place the image says ember writes (EMBER_TEMP_DIR, /dev/shm, the head's state) on a
    volume of its own."""
    dockerfile = (Path(__file__).resolve().parents[2] / "Dockerfile").read_text()
    (temp_dir,) = [w.split("=", 1)[1] for w in dockerfile.split() if w.startswith("EMBER_TEMP_DIR=")]
    world = World({"workerGroups": [
        {"name": "cpu", "replicas": 1},
        {"name": "api", "replicas": 1, "template": {"automountServiceAccountToken": True}},
    ]})
    world.converge()
    for name, writes in (("c-head", [temp_dir, "/dev/shm", "/var/lib/ember"]),
                         ("c-cpu-0", [temp_dir, "/dev/shm"])):
        pod = world.pod(name)["spec"]
        assert pod["automountServiceAccountToken"] is False, name
        (container,) = pod["containers"]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        volumes = {v["name"]: v for v in pod["volumes"]}
        for path in writes:
            mount = max((m for m in container["volumeMounts"]
                         if path == m["mountPath"] or path.startswith(m["mountPath"].rstrip("/") + "/")),
                        key=lambda m: len(m["mountPath"]), default=None)
            assert mount is not None and not mount.get("readOnly"), f"{name}: nothing writable at {path}"
            assert {"emptyDir", "persistentVolumeClaim"} & set(volumes[mount["name"]]), (name, path)
    assert world.pod("c-api-0")["spec"]["automountServiceAccountToken"] is True


def test_scale_up_creates_the_lowest_free_names() -> None:
    world = World(small())
    world.converge()
    world.cluster["spec"]["workerGroups"][0]["replicas"] = 4
    result = world.step()
    assert names(result.creates) == ["Pod/c-cpu-2", "Pod/c-cpu-3"]
    assert result.deletes == () and result.drains == ()
    planned_at = world.now - timedelta(seconds=10)
    assert result.status["lastScaleTime"] == planned_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert world.step().status["lastScaleTime"] == result.status["lastScaleTime"]
    assert result.status["phase"] == "Scaling"


def test_scale_down_drains_then_deletes_exactly_the_listed_pods_then_clears_the_list() -> None:
    world = World({"workerGroups": [{"name": "cpu", "replicas": 3}]})
    world.converge()
    group = world.cluster["spec"]["workerGroups"][0]
    group["replicas"] = 2
    group["scaleStrategy"] = {"workersToDelete": ["c-cpu-0"]}
    first = world.step()
    assert first.drains == ("c-cpu-0",) and first.deletes == () and first.creates == ()
    assert first.spec_patch is None
    assert first.status["phase"] == "Scaling"
    assert world.step().drains == ("c-cpu-0",)  # still draining: asked again, nothing deleted
    world.drained.add("c-cpu-0")
    second = world.step()
    assert second.deletes == (("Pod", "c-cpu-0"),) and second.drains == () and second.creates == ()
    assert second.spec_patch is None  # the pod still existed when this plan was made
    third = world.step()
    assert third.spec_patch == {"workerGroups": [{"name": "cpu", "replicas": 2, "scaleStrategy": {"workersToDelete": []}}]}
    assert third.creates == () and third.deletes == ()
    assert world.pods() == ["c-cpu-1", "c-cpu-2", "c-head"]
    assert idle(world.step())


def test_lowering_replicas_without_a_list_removes_the_newest_after_a_drain() -> None:
    world = World({"workerGroups": [{"name": "cpu", "replicas": 3}]})
    world.converge()
    world.cluster["spec"]["workerGroups"][0]["replicas"] = 1
    first = world.step()
    assert sorted(first.drains) == ["c-cpu-1", "c-cpu-2"] and first.deletes == ()
    world.drained |= {"c-cpu-2"}
    second = world.step()
    assert second.deletes == (("Pod", "c-cpu-2"),) and second.drains == ("c-cpu-1",)
    world.drained |= {"c-cpu-1"}
    world.converge()
    assert world.pods() == ["c-cpu-0", "c-head"]


def test_spec_changes_roll_a_quarter_at_a_time_and_the_head_last() -> None:
    world = World({"workerGroups": [{"name": "cpu", "replicas": 8}]})
    world.converge()
    old = set(world.pods()) - {"c-head"}
    world.cluster["spec"]["image"] = "ember:0.2.0"
    world.cluster["metadata"]["generation"] = 2
    first = world.step()
    assert first.drains == ("c-cpu-0", "c-cpu-1") and first.deletes == () and first.creates == ()
    assert first.status["phase"] == "Scaling"
    most_in_flight = 0
    head_rolled_at = None
    for number in range(60):
        result = world.step(finish_deletes=False)
        world.drained |= set(result.drains)
        # Pods deleted this pass linger one pass as terminating, then go.
        gone = [k for k, o in world.objects.items() if o["metadata"].get("deletionTimestamp")
                and (k[0], k[1]) not in {("Pod", n) for _, n in result.deletes}]
        for key in gone:
            world.objects.pop(key)
            world.drained.discard(key[1])
        if ("Pod", "c-head") in result.deletes:
            head_rolled_at = number
            stale = [n for n in world.pods() if n != "c-head"
                     and world.pod(n)["spec"]["containers"][0]["image"] == "ember:0.1.0"
                     and not world.pod(n)["metadata"].get("deletionTimestamp")]
            assert stale == []  # every worker was current before the head went
        workers = [world.pod(n) for n in world.pods() if n != "c-head"]
        serving = sum(1 for p in workers if not p["metadata"].get("deletionTimestamp")
                      and p["metadata"]["name"] not in world.drained and p["status"].get("phase") == "Running")
        most_in_flight = max(most_in_flight, 8 - serving)
        world.ready()
        if idle(result) and result.status["phase"] == "Running":
            break
    assert head_rolled_at is not None
    assert 0 < most_in_flight <= 2  # a quarter of 8
    assert old  # (names are reused once free: the images tell old from new)
    hashes = {world.pod(n)["metadata"]["annotations"]["ember.dev/pod-spec-hash"] for n in world.pods() if n != "c-head"}
    assert len(hashes) == 1
    assert all(world.pod(n)["spec"]["containers"][0]["image"] == "ember:0.2.0" for n in world.pods())
    assert len(world.pods()) == 9


@pytest.mark.parametrize("change", [
    {"replicas": 5}, {"minReplicas": 1}, {"maxReplicas": 7}, {"scaleStrategy": {"workersToDelete": ["x"]}},
])
def test_sizes_never_roll(change: dict[str, Any]) -> None:
    base = {"name": "cpu", "replicas": 2, "resources": {"cpu": "1"}}
    before = cluster_spec.parse({"metadata": {"name": "c"}, "spec": {"workerGroups": [base]}})
    after = cluster_spec.parse({"metadata": {"name": "c"}, "spec": {"workerGroups": [{**base, **change}]}})
    assert cluster_spec.worker_hash(before, before.groups[0]) == cluster_spec.worker_hash(after, after.groups[0])


@pytest.mark.parametrize("change", [
    {"resources": {"cpu": "2"}}, {"startParams": {"object-store-memory": "100"}},
    {"template": {"env": [{"name": "X", "value": "1"}]}},
])
def test_pod_changes_do_roll(change: dict[str, Any]) -> None:
    base = {"name": "cpu", "resources": {"cpu": "1"}}
    before = cluster_spec.parse({"metadata": {"name": "c"}, "spec": {"workerGroups": [base]}})
    after = cluster_spec.parse({"metadata": {"name": "c"}, "spec": {"workerGroups": [{**base, **change}]}})
    assert cluster_spec.worker_hash(before, before.groups[0]) != cluster_spec.worker_hash(after, after.groups[0])
    # The same amount written differently is the same pod.
    same = cluster_spec.parse({"metadata": {"name": "c"}, "spec": {"workerGroups": [{**base, "resources": {"cpu": "1000m"}}]}})
    assert cluster_spec.worker_hash(before, before.groups[0]) == cluster_spec.worker_hash(same, same.groups[0])


def test_replicas_change_on_a_running_cluster_rolls_nothing() -> None:
    world = World(small())
    world.converge()
    world.cluster["spec"]["workerGroups"][0]["replicas"] = 3
    result = world.step()
    assert result.deletes == () and result.drains == () and names(result.creates) == ["Pod/c-cpu-2"]


def test_suspend_deletes_every_pod_without_a_drain_and_resume_brings_them_back() -> None:
    world = World(small())
    world.converge()
    world.cluster["spec"]["suspend"] = True
    result = world.step()
    assert sorted(result.deletes) == [("Pod", "c-cpu-0"), ("Pod", "c-cpu-1"), ("Pod", "c-head")]
    assert result.drains == () and result.creates == ()
    assert result.status["phase"] == "Suspended"
    assert conditions(result)["Suspended"] == "True" and conditions(result)["HeadReady"] == "False"
    assert result.events[0][:2] == ("Normal", "Suspended")
    assert idle(world.step())  # stays suspended; Service and Secret kept
    assert sorted(world.objects) == [("NetworkPolicy", "c-network"), ("Secret", "c-token"), ("Service", "c-head")]
    world.cluster["spec"]["suspend"] = False
    resumed = world.step()
    assert names(resumed.creates) == ["Pod/c-head"]
    assert ("Normal", "Resumed") in [e[:2] for e in resumed.events]
    world.converge()
    assert world.pods() == ["c-cpu-0", "c-cpu-1", "c-head"]
    assert world.cluster["status"]["phase"] == "Running"


def test_a_failed_worker_is_replaced_and_counted() -> None:
    world = World(small())
    world.converge()
    world.pod("c-cpu-0")["status"] = {"phase": "Failed", "reason": "Evicted"}
    result = world.step(finish_deletes=False)
    assert result.deletes == (("Pod", "c-cpu-0"),)
    assert names(result.creates) == ["Pod/c-cpu-2"]  # c-cpu-0 is still terminating
    assert ("Warning", "WorkerFailed", "worker pod c-cpu-0 of group cpu failed (Evicted): replacing it") in result.events
    assert conditions(result)["ReplicaFailure"] == "True"
    assert result.status["workerGroups"][0]["failedReplicas"] == 1
    # Terminating, it is neither counted again nor replaced twice.
    world.ready()
    again = world.step()
    assert again.creates == () and again.deletes == ()
    assert again.status["workerGroups"][0]["failedReplicas"] == 1
    world.objects.pop(("Pod", "c-cpu-0"))
    settled = world.step()
    assert conditions(settled)["ReplicaFailure"] == "False" and settled.status["phase"] == "Running"


def test_pods_with_a_deletion_timestamp_count_as_going_away() -> None:
    world = World(small())
    world.converge()
    world.pod("c-cpu-1")["metadata"]["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    world.pod("c-head")["metadata"]["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    result = world.step()
    assert names(result.creates) == []  # no workers while the head is going away
    assert result.deletes == ()
    assert result.status["phase"] == "Pending"
    world.objects.pop(("Pod", "c-head"))
    assert names(world.step().creates) == ["Pod/c-head"]
    world.ready("c-head")
    assert names(world.step().creates) == ["Pod/c-cpu-2"]  # c-cpu-1's name is still taken


def test_a_failed_head_is_replaced_and_a_crash_looping_one_fails_the_cluster() -> None:
    world = World(small())
    world.converge()
    world.pod("c-head")["status"] = {"phase": "Failed", "reason": "Evicted"}
    result = world.step()
    assert result.deletes == (("Pod", "c-head"),)
    assert result.events[0][:2] == ("Warning", "HeadPodFailed")
    assert names(world.step().creates) == ["Pod/c-head"]
    world.pod("c-head")["status"] = {"phase": "Running", "containerStatuses": [{"restartCount": 6}],
                                     "conditions": [{"type": "Ready", "status": "False"}]}
    failing = world.step()
    assert failing.status["phase"] == "Failed"
    head = next(c for c in failing.status["conditions"] if c["type"] == "HeadReady")
    assert head["reason"] == "HeadCrashLooping" and "restarted 6 times" in head["message"]


NO_CPU = "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."


def unschedulable(message: str = NO_CPU) -> dict[str, Any]:
    """A pod's status as the scheduler leaves it when no node can take the pod."""
    return {"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message}]}


def condition(result: Plan, kind: str) -> dict[str, Any]:
    return next(c for c in result.status["conditions"] if c["type"] == kind)


def test_unschedulable_workers_are_in_the_condition_every_pass_and_an_event_once() -> None:
    world = World(small())
    world.step()
    world.ready("c-head")
    world.step()
    world.pod("c-cpu-0")["status"] = unschedulable()
    world.pod("c-cpu-1")["status"] = unschedulable()
    first = world.step()
    workers = condition(first, "WorkersReady")
    assert workers["reason"] == "WorkersUnschedulable"
    assert workers["message"] == f"0 of 2 worker pods Ready (cpu 0/2 ready); c-cpu-0, c-cpu-1 cannot be scheduled: {NO_CPU}"
    assert first.status["unschedulablePods"] == ["c-cpu-0", "c-cpu-1"]
    assert first.status["phase"] == "Scaling"
    assert [e for e in first.events if e[1] == "Unschedulable"] == [
        ("Warning", "Unschedulable", f"worker pod c-cpu-0 of group cpu cannot be scheduled: {NO_CPU}"),
        ("Warning", "Unschedulable", f"worker pod c-cpu-1 of group cpu cannot be scheduled: {NO_CPU}"),
    ]
    for _ in range(3):  # later passes say it in the status, not in more events
        again = world.step()
        assert idle(again)
        assert condition(again, "WorkersReady")["message"] == workers["message"]
        assert condition(again, "WorkersReady")["lastTransitionTime"] == workers["lastTransitionTime"]
    # A node that fits joins: one is scheduled and starts; the other still waits, and is not told again.
    world.ready("c-cpu-0")
    partly = world.step()
    assert condition(partly, "WorkersReady")["message"] == (
        f"1 of 2 worker pods Ready (cpu 1/2 ready); c-cpu-1 cannot be scheduled: {NO_CPU}")
    assert partly.status["unschedulablePods"] == ["c-cpu-1"] and partly.events == ()
    world.ready()
    done = world.step()
    assert done.status["unschedulablePods"] == [] and done.status["phase"] == "Running"
    assert condition(done, "WorkersReady")["reason"] == "AllWorkersReady"


def test_pods_that_differ_in_why_are_said_apart_and_a_new_one_is_told() -> None:
    world = World({"workerGroups": [{"name": "cpu", "replicas": 1}, {"name": "gpu", "replicas": 1,
                                                                     "resources": {"gpu": 1}}]})
    world.step()
    world.ready("c-head")
    world.step()
    world.ready("c-cpu-0")
    world.pod("c-gpu-0")["status"] = unschedulable("0/1 nodes are available: 1 Insufficient nvidia.com/gpu.")
    first = world.step()
    assert condition(first, "WorkersReady")["message"] == (
        "1 of 2 worker pods Ready (gpu 0/1 ready); c-gpu-0 cannot be scheduled: "
        "0/1 nodes are available: 1 Insufficient nvidia.com/gpu.")
    assert [e[2] for e in first.events] == [
        "worker pod c-gpu-0 of group gpu cannot be scheduled: 0/1 nodes are available: 1 Insufficient nvidia.com/gpu."]
    # Scaled up: the new pod does not fit either, and gets its own event.
    world.cluster["spec"]["workerGroups"][0]["replicas"] = 2
    assert names(world.step().creates) == ["Pod/c-cpu-1"]
    world.pod("c-cpu-1")["status"] = unschedulable()
    second = world.step()
    assert condition(second, "WorkersReady")["message"] == (
        "1 of 3 worker pods Ready (cpu 1/2, gpu 0/1 ready); c-cpu-1 cannot be scheduled: " + NO_CPU
        + "; c-gpu-0 cannot be scheduled: 0/1 nodes are available: 1 Insufficient nvidia.com/gpu.")
    assert [e[2] for e in second.events] == [f"worker pod c-cpu-1 of group cpu cannot be scheduled: {NO_CPU}"]


def test_an_unschedulable_head_says_why_the_cluster_is_pending() -> None:
    world = World(small())
    world.step()
    world.pod("c-head")["status"] = unschedulable("0/1 nodes are available: 1 Insufficient memory.")
    first = world.step()
    head = condition(first, "HeadReady")
    assert first.status["phase"] == "Pending"
    assert (head["reason"], head["message"]) == (
        "HeadUnschedulable", "pod c-head cannot be scheduled: 0/1 nodes are available: 1 Insufficient memory.")
    assert first.events == (("Warning", "Unschedulable",
                             "head pod c-head cannot be scheduled: 0/1 nodes are available: 1 Insufficient memory."),)
    assert first.status["unschedulablePods"] == ["c-head"]
    assert world.step().events == ()
    # Still waiting for the scheduler (no decision yet) is not unschedulable.
    world.pod("c-head")["status"] = {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False"}]}
    waiting = world.step()
    assert condition(waiting, "HeadReady")["reason"] == "HeadPodNotReady"
    assert waiting.status["unschedulablePods"] == []


def test_a_missing_user_secret_holds_the_pods_back() -> None:
    world = World({**small(), "auth": {"secretName": "mine"}})
    result = world.step()
    assert names(result.creates) == ["Service/c-head", "NetworkPolicy/c-network"]
    assert result.events[0][:2] == ("Warning", "SecretMissing")
    provisioned = next(c for c in result.status["conditions"] if c["type"] == "Provisioned")
    assert provisioned["reason"] == "SecretMissing" and "mine" in provisioned["message"]
    world.objects[("Secret", "mine")] = {"kind": "Secret", "metadata": {"name": "mine"}}
    assert names(world.step().creates) == ["Pod/c-head"]
    env = {e["name"]: e for e in world.pod("c-head")["spec"]["containers"][0]["env"]}
    assert env["EMBER_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "mine"


def test_a_group_removed_from_the_spec_is_drained_away() -> None:
    world = World({"workerGroups": [{"name": "a", "replicas": 1}, {"name": "b", "replicas": 1}]})
    world.converge()
    world.cluster["spec"]["workerGroups"] = [{"name": "a", "replicas": 1}]
    assert world.step().drains == ("c-b-0",)
    world.converge()
    assert world.pods() == ["c-a-0", "c-head"]


def test_replicas_absent_means_min_replicas_and_is_clamped() -> None:
    world = World({"workerGroups": [{"name": "a", "minReplicas": 2, "maxReplicas": 3}]})
    world.converge()
    assert world.pods() == ["c-a-0", "c-a-1", "c-head"]
    assert json.loads(json.dumps(world.cluster["status"]))["desiredWorkers"] == 2


def test_changed_service_ports_replace_the_service() -> None:
    world = World(small())
    world.converge()
    world.cluster["spec"]["head"] = {"serviceType": "LoadBalancer"}
    result = world.step()
    assert ("Service", "c-head") in result.deletes
    world.converge()
    assert world.objects[("Service", "c-head")]["spec"]["type"] == "LoadBalancer"


REPO = Path(__file__).resolve().parents[2]
# What a kind control-plane node's own pods request (kubeadm's static pods: kube-apiserver 250m,
# kube-controller-manager 200m, etcd 100m, kube-scheduler 100m; two coredns 100m each; kindnet
# 100m; kube-proxy and the local-path provisioner none).
KIND_SYSTEM_CPU = Decimal("0.95")


def test_the_quick_start_example_fits_a_two_cpu_kind_node_next_to_the_operator() -> None:
    """manifests/examples/cluster.yaml at its replicas, plus the chart's operator, within the
    CPU a 2-CPU kind node has left; and each of its nodes still offers a whole CPU to tasks
    (a task asks for 1 by default, so a node offering less would never run one)."""
    example = yaml.safe_load((REPO / "manifests/examples/cluster.yaml").read_text())
    world = World(example["spec"])
    world.cluster["metadata"]["name"] = example["metadata"]["name"]
    world.converge()
    pods = [o for (kind, _), o in world.objects.items() if kind == "Pod"]
    assert len(pods) == 1 + example["spec"]["workerGroups"][0]["replicas"]
    requested = sum(Decimal(parse_quantity(p["spec"]["containers"][0]["resources"]["requests"]["cpu"])) for p in pods)
    values = yaml.safe_load((REPO / "charts/ember/values.yaml").read_text())
    operator = Decimal(parse_quantity(values["resources"]["requests"]["cpu"]))
    assert requested + operator <= 2 - KIND_SYSTEM_CPU, (requested, operator)
    for pod in pods:
        args = pod["spec"]["containers"][0]["args"]
        assert Decimal(args[args.index("--num-cpus") + 1]) >= 1, args


OPERATOR = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ember-system"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/component": "operator"}}}


def network_policy(world: World) -> dict[str, Any]:
    return world.objects[("NetworkPolicy", "c-network")]


def test_the_network_policy_lets_in_the_clusters_pods_the_operator_and_the_named_peers() -> None:
    team = {"namespaceSelector": {"matchLabels": {"team": "ml"}}}
    world = World({**small(), "networkPolicy": {"clientFrom": [team]}})
    world.policy = Policy(operator_peer=OPERATOR)
    world.converge()
    policy = network_policy(world)
    assert policy["apiVersion"] == "networking.k8s.io/v1"
    assert policy["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert LABELS.items() <= policy["metadata"]["labels"].items()
    # It governs exactly the cluster's pods (every one carries the label), on ingress only.
    assert policy["spec"]["podSelector"] == {"matchLabels": {"ember.dev/cluster": "c"}}
    assert all(world.pod(p)["metadata"]["labels"]["ember.dev/cluster"] == "c" for p in world.pods())
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    tcp = lambda *ports: [{"protocol": "TCP", "port": p} for p in ports]  # noqa: E731
    assert policy["spec"]["ingress"] == [
        {"from": [{"podSelector": {"matchLabels": {"ember.dev/cluster": "c"}}}]},  # every port
        {"from": [OPERATOR], "ports": tcp(10001)},
        {"from": [team], "ports": tcp(10001, 8265)},
        {"from": [{"namespaceSelector": {}}], "ports": tcp(8080, 8081)},  # Prometheus, anywhere
    ]


@pytest.mark.parametrize("network", [{"metricsFrom": []}, {"clientFrom": [], "metricsFrom": []}])
def test_a_rule_without_peers_is_left_out_never_rendered_open(network: dict[str, Any]) -> None:
    """``from: []`` (or none) in a rule lets in everyone: no peers, no rule."""
    world = World({**small(), "networkPolicy": network})
    world.converge()
    assert network_policy(world)["spec"]["ingress"] == [
        {"from": [{"podSelector": {"matchLabels": {"ember.dev/cluster": "c"}}}]}]


def test_the_network_policy_follows_the_spec_and_goes_when_disabled() -> None:
    world = World(small())
    world.converge()
    before = copy.deepcopy(network_policy(world))
    # What the API server adds to the stored object is no difference.
    network_policy(world)["spec"]["ingress"][1]["ports"][0]["endPort"] = 8080
    network_policy(world)["metadata"]["generation"] = 3
    assert idle(world.step())
    world.cluster["spec"]["networkPolicy"] = {"clientFrom": [{"ipBlock": {"cidr": "10.1.0.0/16"}}]}
    patched = world.step()
    assert names(patched.patches) == ["NetworkPolicy/c-network"] and not patched.creates
    assert ("Normal", "UpdatingNetworkPolicy",
            "NetworkPolicy c-network differs from spec.networkPolicy: updating it") in patched.events
    ingress = network_policy(world)["spec"]["ingress"]
    assert ingress[1] == {"from": [{"ipBlock": {"cidr": "10.1.0.0/16"}}],
                          "ports": [{"protocol": "TCP", "port": 10001}, {"protocol": "TCP", "port": 8265}]}
    assert ingress[0] == before["spec"]["ingress"][0] and len(ingress) == 3
    assert idle(world.step())
    world.cluster["spec"]["networkPolicy"] = {"enabled": False}
    off = world.step()
    assert off.deletes == (("NetworkPolicy", "c-network"),)
    assert ("NetworkPolicy", "c-network") not in world.objects
    assert world.pods() == ["c-cpu-0", "c-cpu-1", "c-head"]  # the pods are not touched
    assert idle(world.step())
    world.cluster["spec"]["networkPolicy"] = {"enabled": True}
    assert names(world.step().creates) == ["NetworkPolicy/c-network"]


HOST_PATH = {"volumes": [{"name": "host", "hostPath": {"path": "/var/run"}}],
             "volumeMounts": [{"name": "host", "mountPath": "/host"}]}


def test_a_refused_template_makes_no_pod_and_says_which_field() -> None:
    world = World({"workerGroups": [{"name": "cpu", "replicas": 2, "template": HOST_PATH}]})
    first = world.step()
    field = "spec.workerGroups[cpu].template.volumes[host].hostPath"
    assert names(first.creates) == ["Secret/c-token", "Service/c-head", "NetworkPolicy/c-network"]
    assert first.status["phase"] == "Failed"
    (allowed,) = [c for c in first.status["conditions"] if c["type"] == "TemplateAllowed"]
    assert allowed["status"] == "False" and allowed["reason"] == "ForbiddenField"
    assert allowed["message"].startswith(f"the operator makes no pod from these template fields: {field}: ")
    warnings = [e for e in first.events if e[1] == "ForbiddenTemplate"]
    assert warnings == [("Warning", "ForbiddenTemplate", allowed["message"])]
    again = world.step()
    assert idle(again) and world.pods() == []  # said once, not at every pass
    # The admin allows every field: the same spec makes pods, hostPath and all.
    world.policy = Policy(restricted_templates=False)
    world.converge()
    assert {"name": "host", "hostPath": {"path": "/var/run"}} in world.pod("c-cpu-0")["spec"]["volumes"]
    assert conditions(world.step())["TemplateAllowed"] == "True"


def test_a_running_cluster_whose_template_turns_refused_keeps_its_pods_unrolled() -> None:
    world = World(small())
    world.converge()
    world.cluster["spec"]["head"] = {"template": {"serviceAccountName": "admin"}}
    world.cluster["spec"]["workerGroups"][0]["replicas"] = 3
    refused = world.step()
    assert not (refused.creates or refused.deletes or refused.drains)
    assert refused.status["phase"] == "Failed"
    assert "spec.head.template.serviceAccountName: service account admin is not allowed (only default)" in (
        refused.status["conditions"][-1]["message"])
    assert refused.status["workerGroups"] == [
        {"name": "cpu", "desiredReplicas": 3, "readyReplicas": 2, "failedReplicas": 0}]
    assert refused.status["head"]["podName"] == "c-head"
    world.cluster["spec"]["head"] = {"template": {"serviceAccountName": "default"}}
    world.converge()
    assert world.pods() == ["c-cpu-0", "c-cpu-1", "c-cpu-2", "c-head"]
    assert world.step().status["phase"] == "Running"
