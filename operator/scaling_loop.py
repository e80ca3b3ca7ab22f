"""One round of a Cluster's autoscaler on Kubernetes: ask the head, decide, write the spec.

The operator runs this for each Cluster with autoscaling on, every ``intervalSeconds``
(a kopf daemon). A round reads the Cluster and its pods, tells the head which node shapes may be
added (every round: a restarted head has forgotten), reads its demand, and lets
``kube_scaling.decide`` change the worker groups' ``replicas`` and ``workersToDelete``. The patch
carries the Cluster's ``resourceVersion``: if the user (or another operator replica) changed the
Cluster since it was read, the API server refuses it and the next round decides again from
what is there. Pods are the reconcile's business alone.
"""

from __future__ import annotations

import logging

from ember.operator import cluster_spec, kube_scaling
from ember.operator.head_client import head_of, head_tls
from ember.operator.kube_objects import KubeObjects
from ember.operator.kube_scaling import Decision

log = logging.getLogger("ember.operator.autoscaler")


async def scale_once(kube: KubeObjects, namespace: str, name: str) -> Decision | None:
    """The decision applied this round, or None when nothing changed (or nothing could be
    asked). Raises ``HeadUnreachable`` or ``KubeError`` for the daemon to report."""
    cluster = await kube.read_cluster(namespace, name)
    if cluster is None or cluster["metadata"].get("deletionTimestamp"):
        return None
    spec = cluster_spec.parse(cluster)
    if not spec.raw["autoscaling"]["enabled"] or spec.suspend:
        return None
    pods = await kube.list_children(namespace, name, "Pod")
    secret = await kube.read_secret(namespace, spec.token_secret)
    tls = head_tls(spec, await kube.read_secret(namespace, spec.tls_secret)) if spec.tls_secret else None
    async with head_of(f"{namespace}/{name}", spec.raw, pods, secret, tls) as head:
        await head.set_node_types(kube_scaling.node_types(cluster), kube_scaling.node_labels(cluster))
        demand = await head.demand()
    decision = kube_scaling.decide(cluster, pods, demand)
    if decision is None:
        return None
    await kube.patch_cluster(namespace, name, {
        "metadata": {"resourceVersion": cluster["metadata"]["resourceVersion"]},
        "spec": {"workerGroups": decision.worker_groups},
    })
    log.info("cluster %s/%s: %s", namespace, name, decision.describe())
    return decision
