"""The Kubernetes node provider: the autoscaling policy applied to a ``Cluster``'s worker groups.

The operator's timer reads the head's demand report and the cluster's pods, and this module
turns them into the policy's input and the policy's plan into a change of the ``Cluster``'s own
spec: each group's ``replicas`` and ``scaleStrategy.workersToDelete``. It never touches pods.
The reconcile, which is the only writer of pods, then creates the missing workers, or drains
and deletes exactly the listed ones and clears the list. So operator and autoscaler never fight:
the autoscaler writes the desired state, the reconcile makes it so.

Pure: dicts and a ``Demand`` message in, a decision out; the handler does the I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ember.operator import cluster_spec, pod_state
from ember.operator.autoscaling_policy import Gang, Node, Want, WorkerGroup, plan
from ember.operator.children import GROUP_LABEL, NODE_TYPE_LABEL
from ember.operator.head_client import POD_LABEL
from ember.operator.pod_template import group_node_labels
from ember.runtime.wire.protocol import ember_pb2 as pb


@dataclass(frozen=True)
class Decision:
    worker_groups: list[dict[str, Any]]  # the spec's workerGroups, as they should be now
    added: dict[str, int]  # workers added per group
    removed: dict[str, tuple[str, ...]]  # pods chosen for removal per group
    unplaceable: tuple[Mapping[str, float], ...]  # bundles no group can ever hold

    def describe(self) -> str:
        parts = [f"+{n} {group}" for group, n in self.added.items() if n]
        parts += [f"-{len(pods)} {group} ({', '.join(pods)})" for group, pods in self.removed.items() if pods]
        return ", ".join(parts)


def _live(pod: Mapping[str, Any]) -> bool:
    """A pod that is or will be a node: not going away, not finished."""
    return not pod_state.terminating(pod) and not pod_state.ended(pod)


def decide(cluster: Mapping[str, Any], pods: Sequence[Mapping[str, Any]], demand: pb.Demand) -> Decision | None:
    """The worker groups after one autoscaling round, or None when nothing changes."""
    spec = cluster_spec.parse(cluster)
    scaling = spec.raw["autoscaling"]
    if not scaling["enabled"] or spec.suspend:
        return None
    specs = list((cluster.get("spec") or {}).get("workerGroups") or [])
    nodes_by_pod = {load.labels.get(POD_LABEL, ""): load for load in demand.nodes}

    groups: list[WorkerGroup] = []
    nodes: list[Node] = []
    for group in spec.groups:
        name = group.name
        leaving = set(group.workers_to_delete)
        workers = sorted(
            pod_state.name(pod)
            for pod in pods
            if pod_state.labels(pod).get(GROUP_LABEL) == name
            and pod_state.labels(pod).get(NODE_TYPE_LABEL) == "worker"
            and _live(pod)
            and pod_state.name(pod) not in leaving
        )
        # Workers the spec already asks for but the reconcile has not created yet: starting.
        pending = [f"{name}/pending-{i}" for i in range(max(0, (group.replicas or 0) - len(workers)))]
        for worker in [*workers, *pending]:
            load = nodes_by_pod.get(worker)
            if load is None:
                nodes.append(Node(worker, name, {}, 0.0, starting=True))
            else:
                nodes.append(Node(
                    worker, name, dict(load.available.quantities),
                    0.0 if load.draining else load.idle_seconds,
                    total=dict(load.total.quantities), labels=dict(load.labels),
                ))
        groups.append(WorkerGroup(
            name, group.resources.shape, group.min_replicas, group.max_replicas,
            tuple([*workers, *pending]), group_node_labels(group),
        ))

    bundles = [
        Want(dict(e.shape.quantities), dict(e.label_selector))
        for e in [*demand.tasks, *demand.actors] for _ in range(e.count)
    ]
    decided = plan(
        groups, nodes, bundles,
        float(scaling["idleTimeoutSeconds"]),
        str(scaling["upscalingMode"]),
        [dict(b.quantities) for b in demand.requested],
        [_gang(g) for g in demand.placement_groups],
    )

    changed = False
    added: dict[str, int] = {}
    updated: list[dict[str, Any]] = []
    for group, observed in zip(specs, groups, strict=True):
        name = group["name"]
        replicas = decided.replicas.get(name, len(observed.workers))
        removed = decided.remove.get(name, ())
        new = dict(group)
        if new.get("replicas") != replicas:
            new["replicas"] = replicas
            changed = True
        added[name] = max(0, replicas - len(observed.workers))
        if removed:
            strategy = dict(group.get("scaleStrategy") or {})
            strategy["workersToDelete"] = [*(strategy.get("workersToDelete") or []), *removed]
            new["scaleStrategy"] = strategy
            changed = True
        updated.append(new)
    if not changed:
        return None
    return Decision(updated, added, {k: v for k, v in decided.remove.items() if v}, decided.unplaceable)


def _gang(group: pb.PlacementGroupDemand) -> Gang:
    return Gang(
        tuple(dict(b.quantities) for b in group.bundles), group.strategy,
        tuple(dict(s.conditions) for s in group.bundle_label_selector),
    )


def node_labels(cluster: Mapping[str, Any]) -> list[dict[str, str]]:
    """The labels a new node of each group in ``node_types`` starts with, in the same order."""
    spec = cluster_spec.parse(cluster)
    if not spec.raw["autoscaling"]["enabled"]:
        return []
    return [group_node_labels(group) for group in spec.groups if group.max_replicas > 0]


def node_types(cluster: Mapping[str, Any]) -> list[dict[str, float]]:
    """The shapes of node the autoscaler may add: the head makes work that fits one of them
    wait for a node instead of failing as infeasible."""
    spec = cluster_spec.parse(cluster)
    if not spec.raw["autoscaling"]["enabled"]:
        return []
    return [group.resources.shape for group in spec.groups if group.max_replicas > 0]
