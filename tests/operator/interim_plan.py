"""A stand-in for ``render.plan`` while the real one (branch op-core) has not landed: just
enough of the contract's semantics for the handler tests to exercise the wiring. Deleted once
``ember.operator.render.plan`` exists; the fixture in test_handlers.py uses the real one then."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from ember.operator import render


def _meta(cluster: Mapping[str, Any], name: str, **labels: str) -> dict[str, Any]:
    meta = cluster["metadata"]
    return {
        "name": name,
        "namespace": meta["namespace"],
        "labels": {"ember.dev/cluster": meta["name"], **labels},
        "annotations": {"ember.dev/pod-spec-hash": str(cluster["spec"].get("image"))},
        "ownerReferences": [{
            "apiVersion": cluster["apiVersion"], "kind": "Cluster", "name": meta["name"],
            "uid": meta.get("uid", ""), "controller": True, "blockOwnerDeletion": True,
        }],
    }


def _ready(pod: Mapping[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions", ())
    )


def plan(cluster: Mapping[str, Any], observed: render.Observed) -> render.Plan:
    name = cluster["metadata"]["name"]
    spec = cluster["spec"]
    creates: list[dict[str, Any]] = []
    deletes: list[tuple[str, str]] = []
    drains: list[str] = []
    events: list[tuple[str, str, str]] = []
    if observed.secret is None:
        token = base64.b64encode(observed.fresh_token.encode()).decode()
        creates.append({"apiVersion": "v1", "kind": "Secret", "metadata": _meta(cluster, f"{name}-token"),
                        "data": {"token": token}})
    if not any(s["metadata"]["name"] == f"{name}-head" for s in observed.services):
        creates.append({"apiVersion": "v1", "kind": "Service", "metadata": _meta(cluster, f"{name}-head"),
                        "spec": {"ports": [{"name": "client", "port": 10001}]}})
    pods = {p["metadata"]["name"]: p for p in observed.pods if not p["metadata"].get("deletionTimestamp")}
    failed = [n for n, p in pods.items() if (p.get("status") or {}).get("phase") == "Failed"]
    for pod in failed:
        deletes.append(("Pod", pod))
        events.append(("Warning", "PodFailed", f"pod {pod} failed; it is replaced"))
        del pods[pod]
    suspended = bool(spec.get("suspend"))
    if suspended:
        deletes += [("Pod", n) for n in pods]
        pods = {}
    elif f"{name}-head" not in pods:
        creates.append({"apiVersion": "v1", "kind": "Pod",
                        "metadata": _meta(cluster, f"{name}-head", **{"ember.dev/node-type": "head"}),
                        "spec": {"containers": [{"name": "ember", "image": spec.get("image")}]}})
    groups_status = []
    patch_groups = []
    for group in [] if suspended else spec.get("workerGroups", ()):
        gname = group["name"]
        mine = {n: p for n, p in pods.items() if p["metadata"]["labels"].get("ember.dev/group") == gname}
        leaving = [n for n in (group.get("scaleStrategy") or {}).get("workersToDelete", ()) if n in mine]
        for pod in leaving:
            (deletes.append(("Pod", pod)) if pod in observed.drained else drains.append(pod))
        if not leaving and (group.get("scaleStrategy") or {}).get("workersToDelete"):
            patch_groups.append(gname)
        staying = [n for n in mine if n not in leaving]
        want = group.get("replicas", group.get("minReplicas", 0))
        n = 0
        while len(staying) < want:
            pod = f"{name}-{gname}-{n}"
            n += 1
            if pod in mine:
                continue
            staying.append(pod)
            creates.append({"apiVersion": "v1", "kind": "Pod", "metadata": _meta(
                cluster, pod, **{"ember.dev/node-type": "worker", "ember.dev/group": gname}),
                "spec": {"containers": [{"name": "ember", "image": spec.get("image")}]}})
        ready = sum(1 for p in staying if p in mine and _ready(mine[p]))
        groups_status.append({"name": gname, "desiredReplicas": want, "readyReplicas": ready,
                              "failedReplicas": 0})
    head_ready = f"{name}-head" in pods and _ready(pods[f"{name}-head"])
    phase = ("Suspended" if suspended else "Pending" if not head_ready else
             "Running" if all(g["readyReplicas"] == g["desiredReplicas"] for g in groups_status)
             and not drains else "Scaling")
    spec_patch = None
    if patch_groups:
        spec_patch = {"workerGroups": [
            {**g, "scaleStrategy": {"workersToDelete": []}} if g["name"] in patch_groups else g
            for g in spec["workerGroups"]
        ]}
    return render.Plan(
        creates=tuple(creates), deletes=tuple(deletes), drains=tuple(drains),
        status={"phase": phase, "workerGroups": groups_status,
                "observedGeneration": cluster["metadata"].get("generation")},
        events=tuple(events), spec_patch=spec_patch,
    )
