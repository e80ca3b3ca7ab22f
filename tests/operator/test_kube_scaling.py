"""The Kubernetes node provider: demand and pods in, a change of the Cluster's worker groups out."""

from __future__ import annotations

from typing import Any

from ember.operator.cluster_spec import Resources
from ember.operator.kube_scaling import decide, node_labels, node_types
from ember.runtime.wire.protocol import ember_pb2 as pb


def cluster(replicas: int | None = None, leaving: list[str] | None = None, enabled: bool = True) -> dict[str, Any]:
    group: dict[str, Any] = {
        "name": "cpu", "minReplicas": 0, "maxReplicas": 4,
        "resources": {"cpu": "1", "memory": "1Gi"},
        "scaleStrategy": {"workersToDelete": leaving or []},
    }
    if replicas is not None:
        group["replicas"] = replicas
    return {
        "metadata": {"name": "c", "namespace": "ns"},
        "spec": {
            "workerGroups": [group],
            "autoscaling": {"enabled": enabled, "idleTimeoutSeconds": 60, "upscalingMode": "Default"},
        },
    }


def pod(name: str, phase: str = "Running", deleting: bool = False) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": name, "labels": {"ember.dev/group": "cpu", "ember.dev/node-type": "worker"},
    }
    if deleting:
        metadata["deletionTimestamp"] = "2026-11-30T10:00:00Z"
    return {"metadata": metadata, "status": {"phase": phase}}


def node(pod_name: str, cpu_free: float, idle: float) -> pb.NodeLoad:
    return pb.NodeLoad(
        labels={"ember.dev/pod": pod_name},
        total=pb.ResourceSet(quantities={"CPU": 1.0}),
        available=pb.ResourceSet(quantities={"CPU": cpu_free}),
        idle_seconds=idle,
    )


def waiting(cpus: float, count: int) -> pb.ResourceDemand:
    return pb.ResourceDemand(shape=pb.ResourceSet(quantities={"CPU": cpus}), count=count)


def test_waiting_work_raises_replicas_within_max() -> None:
    decision = decide(cluster(replicas=0), [], pb.Demand(tasks=[waiting(1, 8)]))
    assert decision is not None
    (group,) = decision.worker_groups
    assert group["replicas"] == 4 and decision.added == {"cpu": 4}
    assert decision.describe() == "+4 cpu"


def test_a_waiting_placement_group_is_a_gang_of_nodes() -> None:
    """A STRICT_SPREAD group of three one-CPU bundles needs three worker pods at once; its
    tasks' own lease requests (named by the group's resources) add nothing on top."""
    group = pb.PlacementGroupDemand(
        strategy="STRICT_SPREAD", bundles=[pb.ResourceSet(quantities={"CPU": 1.0})] * 3,
    )
    decision = decide(cluster(replicas=0), [], pb.Demand(placement_groups=[group]))
    assert decision is not None and decision.worker_groups[0]["replicas"] == 3
    # Five bundles on distinct nodes can never fit a group of at most four: none is added.
    group.bundles.extend([pb.ResourceSet(quantities={"CPU": 1.0})] * 2)
    never = decide(cluster(replicas=0), [], pb.Demand(placement_groups=[group]))
    assert never is None


def test_label_selectors_choose_groups_by_their_pods_labels() -> None:
    """A group's pods label their nodes with the group and node type (and startParams
    labels): work selecting another group adds nothing to this one, work selecting it does."""
    spec = cluster(replicas=0)
    spec["spec"]["workerGroups"][0]["startParams"] = {"labels": '{"zone":"a"}'}
    assert node_labels(spec) == [{"zone": "a", "ember.dev/group": "cpu", "ember.dev/node-type": "worker"}]
    other = pb.ResourceDemand(shape=pb.ResourceSet(quantities={"CPU": 1.0}), count=2,
                              label_selector={"ember.dev/group": "gpu"})
    assert decide(spec, [], pb.Demand(tasks=[other])) is None
    mine = pb.ResourceDemand(shape=pb.ResourceSet(quantities={"CPU": 1.0}), count=2,
                             label_selector={"ember.dev/group": "cpu", "zone": "in(a, b)"})
    decision = decide(spec, [], pb.Demand(tasks=[mine]))
    assert decision is not None and decision.worker_groups[0]["replicas"] == 2


def test_pods_not_yet_created_count_as_starting() -> None:
    # replicas says 2, one pod exists and is busy: the second is on its way, so 2 tasks need
    # only one more node.
    demand = pb.Demand(tasks=[waiting(1, 2)], nodes=[node("c-cpu-0", 0.0, 0.0)])
    decision = decide(cluster(replicas=2), [pod("c-cpu-0")], demand)
    assert decision is not None and decision.worker_groups[0]["replicas"] == 3


def test_idle_workers_are_listed_for_deletion_and_replicas_lowered() -> None:
    pods = [pod("c-cpu-0"), pod("c-cpu-1")]
    demand = pb.Demand(nodes=[node("c-cpu-0", 1.0, 5.0), node("c-cpu-1", 1.0, 120.0)])
    decision = decide(cluster(replicas=2), pods, demand)
    assert decision is not None
    (group,) = decision.worker_groups
    assert group["replicas"] == 1
    assert group["scaleStrategy"]["workersToDelete"] == ["c-cpu-1"]
    assert decision.removed == {"cpu": ("c-cpu-1",)}


def test_pods_already_leaving_are_neither_counted_nor_chosen_again() -> None:
    pods = [pod("c-cpu-0"), pod("c-cpu-1"), pod("c-cpu-2", deleting=True), pod("c-cpu-3", phase="Failed")]
    demand = pb.Demand(nodes=[node("c-cpu-0", 0.0, 0.0), node("c-cpu-1", 1.0, 300.0)])
    decision = decide(cluster(replicas=1, leaving=["c-cpu-1"]), pods, demand)
    assert decision is None  # one busy worker, one already on its way out: steady


def test_steady_demand_is_a_fixed_point() -> None:
    pods = [pod("c-cpu-0"), pod("c-cpu-1")]
    demand = pb.Demand(nodes=[node("c-cpu-0", 0.0, 0.0), node("c-cpu-1", 0.0, 0.0)])
    assert decide(cluster(replicas=2), pods, demand) is None


def test_disabled_or_suspended_never_decides() -> None:
    assert decide(cluster(replicas=0, enabled=False), [], pb.Demand(tasks=[waiting(1, 8)])) is None
    suspended = cluster(replicas=0)
    suspended["spec"]["suspend"] = True
    assert decide(suspended, [], pb.Demand(tasks=[waiting(1, 8)])) is None


def test_shapes_in_embers_names() -> None:
    given = {"cpu": "500m", "memory": "2Gi", "gpu": 1, "custom": {"disk": 2}}
    assert Resources.parse(given, "resources").shape == {
        "CPU": 0.5, "memory": 2.0 * 2**30, "GPU": 1.0, "disk": 2.0,
    }
    assert node_types(cluster()) == [{"CPU": 1.0, "memory": float(2**30)}]
    assert node_types(cluster(enabled=False)) == []
