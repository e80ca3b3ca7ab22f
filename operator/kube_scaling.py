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

from ember.operator.autoscaling_policy import Node, WorkerGroup, plan
from ember.runtime.protocol import ember_pb2 as pb

POD_LABEL = "ember.dev/pod"  # the node label a worker pod's agent is started with
GROUP_LABEL = "ember.dev/group"
NODE_TYPE_LABEL = "ember.dev/node-type"


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


def group_shape(resources: Mapping[str, Any]) -> dict[str, float]:
    """What one worker of a group offers, in ember's resource names, from the CRD's
    ``resources`` (``cpu``/``memory`` quantities, ``gpu`` count, ``custom`` amounts)."""
    from kubernetes.utils.quantity import parse_quantity

    shape: dict[str, float] = {}
    if resources.get("cpu") is not None:
        shape["CPU"] = float(parse_quantity(resources["cpu"]))
    if resources.get("memory") is not None:
        shape["memory"] = float(parse_quantity(resources["memory"]))
    if resources.get("gpu"):
        shape["GPU"] = float(resources["gpu"])
    for name, amount in (resources.get("custom") or {}).items():
        shape[str(name)] = float(amount)
    return shape


def _live(pod: Mapping[str, Any]) -> bool:
    """A pod that is or will be a node: not going away, not finished."""
    metadata = pod.get("metadata") or {}
    phase = (pod.get("status") or {}).get("phase", "Pending")
    return not metadata.get("deletionTimestamp") and phase not in ("Failed", "Succeeded")


def decide(cluster: Mapping[str, Any], pods: Sequence[Mapping[str, Any]], demand: pb.Demand) -> Decision | None:
    """The worker groups after one autoscaling round, or None when nothing changes."""
    spec = cluster.get("spec") or {}
    scaling = spec.get("autoscaling") or {}
    if not scaling.get("enabled") or spec.get("suspend"):
        return None
    specs = list(spec.get("workerGroups") or [])
    nodes_by_pod = {load.labels.get(POD_LABEL, ""): load for load in demand.nodes}

    groups: list[WorkerGroup] = []
    nodes: list[Node] = []
    for group in specs:
        name = group["name"]
        leaving = set((group.get("scaleStrategy") or {}).get("workersToDelete") or [])
        shape = group_shape(group.get("resources") or {})
        workers = sorted(
            str(pod["metadata"]["name"])
            for pod in pods
            if (pod["metadata"].get("labels") or {}).get(GROUP_LABEL) == name
            and (pod["metadata"].get("labels") or {}).get(NODE_TYPE_LABEL) == "worker"
            and _live(pod)
            and pod["metadata"]["name"] not in leaving
        )
        # Workers the spec already asks for but the reconcile has not created yet: starting.
        wanted = group.get("replicas")
        pending = [f"{name}/pending-{i}" for i in range(max(0, (wanted or 0) - len(workers)))]
        for worker in [*workers, *pending]:
            load = nodes_by_pod.get(worker)
            if load is None:
                nodes.append(Node(worker, name, {}, 0.0, starting=True))
            else:
                nodes.append(Node(
                    worker, name, dict(load.available.quantities),
                    0.0 if load.draining else load.idle_seconds,
                    total=dict(load.total.quantities),
                ))
        groups.append(WorkerGroup(
            name, shape, int(group.get("minReplicas", 0)), int(group.get("maxReplicas", 10)),
            tuple([*workers, *pending]),
        ))

    bundles = [dict(e.shape.quantities) for e in [*demand.tasks, *demand.actors] for _ in range(e.count)]
    decided = plan(
        groups, nodes, bundles,
        float(scaling.get("idleTimeoutSeconds", 60)),
        str(scaling.get("upscalingMode", "Default")),
        [dict(b.quantities) for b in demand.requested],
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


def node_types(cluster: Mapping[str, Any]) -> list[dict[str, float]]:
    """The shapes of node the autoscaler may add: the head makes work that fits one of them
    wait for a node instead of failing as infeasible."""
    spec = cluster.get("spec") or {}
    if not (spec.get("autoscaling") or {}).get("enabled"):
        return []
    return [
        group_shape(group.get("resources") or {})
        for group in spec.get("workerGroups") or []
        if int(group.get("maxReplicas", 10)) > 0
    ]
