"""A ``Cluster``'s ``.status``: phase, conditions, addresses and worker counts.

Conditions keep their ``lastTransitionTime`` while their status stays the same, so writing the
status on every reconcile does not make it look as if everything just changed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ember.operator.cluster_spec import ClusterSpec


@dataclass
class GroupCount:
    name: str
    desired: int
    ready: int
    failed: int  # since the cluster was created


@dataclass
class Observation:
    """What the reconcile found and did, in the terms the status reports."""

    head_pod: Mapping[str, Any] | None  # the live head pod, if any
    head_ready: bool
    head_crash_looping: bool
    head_detail: str  # why the head is not ready (for HeadReady's message)
    groups: list[GroupCount] = field(default_factory=list)
    secret_missing: str = ""  # the missing user Secret's name
    creating: list[str] = field(default_factory=list)  # "Kind/name" created this pass
    failures: list[str] = field(default_factory=list)  # pods found failed this pass
    changing: list[str] = field(default_factory=list)  # what rolls, drains or removes now
    scaled: bool = False  # worker pods added or removed for the group sizes this pass
    unschedulable: dict[str, str] = field(default_factory=dict)  # pod -> the scheduler's reason
    refused: tuple[str, ...] = ()  # template fields this operator does not allow ("<field>: <why>")


def build(
    cluster: Mapping[str, Any], spec: ClusterSpec, seen: Observation, now: datetime
) -> dict[str, Any]:
    previous = cluster.get("status") or {}
    old = {c.get("type"): c for c in previous.get("conditions") or []}
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")

    def condition(kind: str, ok: bool, reason: str, message: str) -> dict[str, Any]:
        status = "True" if ok else "False"
        before = old.get(kind) or {}
        since = before.get("lastTransitionTime") if before.get("status") == status else None
        return {"type": kind, "status": status, "reason": reason, "message": message,
                "lastTransitionTime": since or stamp}

    desired = sum(g.desired for g in seen.groups)
    ready = sum(g.ready for g in seen.groups)
    workers_ready = all(g.ready == g.desired for g in seen.groups)
    lagging = ", ".join(f"{g.name} {g.ready}/{g.desired}" for g in seen.groups if g.ready != g.desired)
    stuck_workers = {pod: why for pod, why in seen.unschedulable.items() if pod != spec.head_pod_name}

    if spec.suspend:
        head = condition("HeadReady", False, "Suspended", "the cluster is suspended")
    elif seen.head_ready:
        head = condition("HeadReady", True, "HeadPodReady", f"pod {spec.head_pod_name} is Ready")
    else:
        reason = (
            "HeadCrashLooping" if seen.head_crash_looping
            else "HeadUnschedulable" if spec.head_pod_name in seen.unschedulable
            else "HeadPodNotReady"
        )
        head = condition("HeadReady", False, reason, seen.head_detail)
    workers = condition(
        "WorkersReady", workers_ready,
        "AllWorkersReady" if workers_ready else "WorkersUnschedulable" if stuck_workers else "WorkersNotReady",
        f"{ready} of {desired} worker pods Ready" + (f" ({lagging} ready)" if lagging else "")
        + "".join(f"; {pods} cannot be scheduled: {why}" for pods, why in _by_reason(stuck_workers)),
    )
    if spec.suspend:
        provisioned = condition("Provisioned", False, "Suspended", "pods are removed while suspended")
    elif seen.secret_missing:
        provisioned = condition(
            "Provisioned", False, "SecretMissing",
            f"Secret {seen.secret_missing} (spec.auth.secretName) not found in namespace {spec.namespace}",
        )
    elif seen.creating:
        provisioned = condition("Provisioned", False, "Creating", "creating " + ", ".join(seen.creating))
    else:
        provisioned = condition("Provisioned", True, "AllCreated", "every child object exists")
    was_failing = (old.get("ReplicaFailure") or {}).get("status") == "True"
    if seen.failures:
        failure = condition("ReplicaFailure", True, "PodFailed", "replacing failed pods: " + ", ".join(seen.failures))
    elif was_failing and not (seen.head_ready and workers_ready):
        failure = condition("ReplicaFailure", True, "PodFailed", old["ReplicaFailure"].get("message", ""))
    else:
        failure = condition("ReplicaFailure", False, "NoFailures", "no pod failed since the cluster was last ready")
    suspended = condition(
        "Suspended", spec.suspend,
        "SuspendRequested" if spec.suspend else "NotSuspended",
        "spec.suspend is true: no pods run" if spec.suspend else "spec.suspend is false",
    )

    allowed = (
        condition("TemplateAllowed", False, "ForbiddenField", refusal_message(seen.refused))
        if seen.refused
        else condition("TemplateAllowed", True, "Allowed", "every template field is allowed by this operator")
    )

    if spec.suspend:
        phase = "Suspended"
    elif seen.refused or seen.head_crash_looping:
        phase = "Failed"
    elif not seen.head_ready:
        phase = "Pending"
    elif not workers_ready or seen.changing or seen.creating:
        phase = "Scaling"
    else:
        phase = "Running"

    host, ports = spec.service_host, spec.ports
    web = "https" if spec.tls_secret else "http"  # the dashboard and metrics speak TLS with it
    head_pod = seen.head_pod or {}
    status: dict[str, Any] = {
        "phase": phase,
        "observedGeneration": int((cluster.get("metadata") or {}).get("generation") or 0),
        "conditions": [head, workers, provisioned, failure, suspended, allowed],
        "head": {
            "podName": spec.head_pod_name if seen.head_pod else "",
            "podIP": str((head_pod.get("status") or {}).get("podIP") or ""),
            "serviceName": spec.service_name,
            "clientAddress": f"{host}:{ports['client']}",
        },
        "endpoints": {
            "client": f"ember://{host}:{ports['client']}",
            "dashboard": f"{web}://{host}:{ports['dashboard']}",
            "metrics": f"{web}://{host}:{ports['metrics']}/metrics",
        },
        "workerGroups": [
            {"name": g.name, "desiredReplicas": g.desired, "readyReplicas": g.ready, "failedReplicas": g.failed}
            for g in seen.groups
        ],
        "desiredWorkers": desired,
        "readyWorkers": ready,
        "unschedulablePods": sorted(seen.unschedulable),
    }
    last_scale = stamp if seen.scaled else previous.get("lastScaleTime")
    if last_scale:
        status["lastScaleTime"] = last_scale
    return status


def _by_reason(pods: Mapping[str, str]) -> list[tuple[str, str]]:
    """(comma-separated pod names, reason) for each distinct reason: one line for a whole
    group that does not fit, however many pods it has."""
    grouped: dict[str, list[str]] = {}
    for pod, why in sorted(pods.items()):
        grouped.setdefault(why, []).append(pod)
    return [(", ".join(names), why) for why, names in grouped.items()]


def previous_unschedulable(cluster: Mapping[str, Any]) -> frozenset[str]:
    """The pods the last status reported unschedulable (each was told in an event then)."""
    return frozenset((cluster.get("status") or {}).get("unschedulablePods") or ())


def previous_failures(cluster: Mapping[str, Any]) -> dict[str, int]:
    """Each group's failedReplicas so far, to add this pass's failures to."""
    groups: Sequence[Mapping[str, Any]] = (cluster.get("status") or {}).get("workerGroups") or []
    return {str(g.get("name")): int(g.get("failedReplicas") or 0) for g in groups}


def refusal_message(refused: Sequence[str]) -> str:
    return "the operator makes no pod from these template fields: " + "; ".join(refused)


def previous_refusal(cluster: Mapping[str, Any]) -> str:
    """The message of the last TemplateAllowed=False condition ("" when it was allowed)."""
    for found in (cluster.get("status") or {}).get("conditions") or []:
        if found.get("type") == "TemplateAllowed" and found.get("status") == "False":
            return str(found.get("message") or "")
    return ""
