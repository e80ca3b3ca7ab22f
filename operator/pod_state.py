"""What a Pod, as the API returns it, says about itself: alive, ended, ready, crash-looping.

Read from plain dicts (the handler passes what the API returned) so the reconcile stays pure.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ember.operator import children

# The head's restartPolicy is Always, so a crashing head never reaches phase Failed: it loops
# in CrashLoopBackOff. This many restarts without becoming Ready marks the cluster Failed.
HEAD_RESTARTS_FAILED = 5


def name(pod: Mapping[str, Any]) -> str:
    return str((pod.get("metadata") or {}).get("name", ""))


def labels(pod: Mapping[str, Any]) -> Mapping[str, str]:
    return (pod.get("metadata") or {}).get("labels") or {}


def spec_hash(pod: Mapping[str, Any]) -> str:
    return str(((pod.get("metadata") or {}).get("annotations") or {}).get(children.HASH_ANNOTATION, ""))


def terminating(pod: Mapping[str, Any]) -> bool:
    """Going away already (a deletionTimestamp): it no longer counts, but its name is taken."""
    return bool((pod.get("metadata") or {}).get("deletionTimestamp"))


def phase(pod: Mapping[str, Any]) -> str:
    return str((pod.get("status") or {}).get("phase", "Pending"))


def ended(pod: Mapping[str, Any]) -> bool:
    """Its containers stopped for good (Failed, evicted, or exited): it must be replaced."""
    return phase(pod) in ("Failed", "Succeeded")


def ready(pod: Mapping[str, Any]) -> bool:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return condition.get("status") == "True"
    return False


def unschedulable(pod: Mapping[str, Any]) -> str:
    """Why the scheduler finds no node for the pod, in its own words ("0/1 nodes are available:
    1 Insufficient cpu."), or "" when the pod has a node or is still waiting for a decision.

    Such a pod stays Pending for good (until a node that fits joins), and nothing but its
    ``PodScheduled`` condition says so: the Cluster's status must carry it to the user.
    """
    if terminating(pod):
        return ""
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if (condition.get("type") == "PodScheduled" and condition.get("status") == "False"
                and condition.get("reason") == "Unschedulable"):
            return str(condition.get("message") or "no node can hold it").strip()
    return ""


def failure_reason(pod: Mapping[str, Any]) -> str:
    """Why it ended, as the kubelet put it (``Evicted``, ``OOMKilled``, an exit code)."""
    status = pod.get("status") or {}
    if status.get("reason"):
        return str(status["reason"])
    for container in status.get("containerStatuses") or []:
        finished = (container.get("state") or {}).get("terminated")
        if finished:
            return str(finished.get("reason") or f"exit code {finished.get('exitCode')}")
    return "unknown"


def restarts(pod: Mapping[str, Any]) -> int:
    return max((int(c.get("restartCount", 0)) for c in (pod.get("status") or {}).get("containerStatuses") or []), default=0)


def crash_looping(pod: Mapping[str, Any]) -> bool:
    return restarts(pod) >= HEAD_RESTARTS_FAILED and not ready(pod)


def pod_ip(pod: Mapping[str, Any]) -> str:
    return str((pod.get("status") or {}).get("podIP") or "")


def age_key(pod: Mapping[str, Any], cluster: str, group: str) -> tuple[str, int, str]:
    """Sort key, oldest first: creation time, then the worker's index (same-second pods)."""
    created = str((pod.get("metadata") or {}).get("creationTimestamp") or "")
    return (created, worker_index(name(pod), cluster, group), name(pod))


def worker_index(pod_name: str, cluster: str, group: str) -> int:
    """n of ``<cluster>-<group>-<n>``; -1 for a name of another shape."""
    match = re.fullmatch(re.escape(f"{cluster}-{group}-") + r"(\d+)", pod_name)
    return int(match.group(1)) if match else -1
