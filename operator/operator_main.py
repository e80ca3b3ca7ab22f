"""``ember operator``: kopf running the Cluster and EmberJob handlers, with metrics and a liveness
probe.

Several replicas may run (a Deployment with ``replicas: 2`` for a quick take-over): kopf's
peering lets only the one with the highest priority act, the others wait. kopf pauses *every*
operator that sees a peer of equal priority, so each replica draws its own random priority
unless one is given.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import sys
from collections.abc import Mapping, Sequence

import kopf
import kubernetes

from ember.operator import (
    handlers,
    job_handlers,  # noqa: F401 - registers the EmberJob handlers with kopf
    operator_metrics,
)
from ember.operator.cluster_policy import Policy
from ember.operator.kube_objects import KubeObjects, load_configuration

log = logging.getLogger("ember.operator")


# kopf puts this finalizer on every Cluster it serves, because the Cluster has a timer (the
# periodic reconcile) and a daemon (the autoscaler): kopf keeps a Cluster until it has stopped
# both, and offers no way to run them without it. Nothing of ember's needs it (the children go
# by garbage collection), so the operator does nothing else at deletion. While no operator
# runs, a deleted Cluster waits for it; docs/kubernetes.md says how to let such a Cluster go.
FINALIZER = "ember.dev/operator"


def settings(priority: int | None = None) -> kopf.OperatorSettings:
    """kopf's settings for the ember operator: its bookkeeping in ``ember.dev`` annotations
    (the Cluster's status schema has no room for kopf's), its finalizer named for ember,
    events from INFO up.

    A Cluster deleted while its reconcile timer runs a pass is let go once that pass ends:
    kopf looks again whether the timer has stopped every ``cancellation_polling`` seconds (60
    by default, which kept such a Cluster, and its name, for a minute more)."""
    config = kopf.OperatorSettings()
    config.peering.priority = priority if priority is not None else random.randint(1, 2**31 - 1)
    config.posting.level = logging.INFO
    config.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="ember.dev")
    config.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix="ember.dev")
    config.persistence.finalizer = FINALIZER
    config.background.cancellation_polling = 1.0
    return config


# Where the operator learns who it is, for each cluster's NetworkPolicy to let it in: the
# chart sets both (the namespace from the downward API, the labels its pods carry).
NAMESPACE_ENV = "POD_NAMESPACE"
POD_LABELS_ENV = "EMBER_OPERATOR_POD_LABELS"


def memo(
    kube: KubeObjects, head_grace_seconds: float = handlers.HEAD_GRACE_SECONDS,
    policy: Policy | None = None,
) -> kopf.Memo:
    """What every handler gets: the API client, how long to wait for a silent head, what the
    admin allows (``cluster_policy``), and the state of each Cluster (shared: a pod's handler
    and its Cluster's see the same lock)."""
    return kopf.Memo(kube=kube, head_grace_seconds=head_grace_seconds, policy=policy or Policy(),
                     clusters={})


def operator_peer(environ: Mapping[str, str]) -> dict[str, object] | None:
    """A NetworkPolicyPeer selecting this operator's pods, from ``POD_NAMESPACE`` and
    ``EMBER_OPERATOR_POD_LABELS`` (``key=value,key=value``); None when either is unset (an
    operator run from a workstation reaches no pod IP anyway)."""
    namespace, given = environ.get(NAMESPACE_ENV, ""), environ.get(POD_LABELS_ENV, "").strip()
    if not namespace or not given:
        return None
    labels: dict[str, str] = {}
    for pair in given.split(","):
        key, equals, value = pair.strip().partition("=")
        if not equals or not key:
            raise ValueError(f"{POD_LABELS_ENV}={given!r}: {pair.strip()!r} is not key=value")
        labels[key] = value
    return {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
        "podSelector": {"matchLabels": labels},
    }


def run(
    namespaces: Sequence[str],
    all_namespaces: bool,
    metrics_port: int,
    health_port: int,
    priority: int | None = None,
    restricted_templates: bool = True,
) -> int:
    """Run until SIGINT/SIGTERM (kopf handles both); the exit code of ``ember operator``."""
    if not namespaces and not all_namespaces:
        raise ValueError("give --namespace NS (one or more) or --all-namespaces")
    try:
        policy = Policy(restricted_templates=restricted_templates, operator_peer=operator_peer(os.environ))
    except ValueError as error:
        print(f"ember operator: {error}", file=sys.stderr)
        return 2
    try:
        kube = KubeObjects(load_configuration())
    except kubernetes.config.ConfigException as error:
        print(f"ember operator: no Kubernetes API to talk to (not in a pod, no kubeconfig): {error}",
              file=sys.stderr)
        return 1
    if metrics_port:
        operator_metrics.serve(metrics_port)
    where = "all namespaces" if all_namespaces else "namespace(s) " + ", ".join(namespaces)
    log.info("ember operator watching clusters.ember.dev in %s; %s templates", where,
             "restricted" if restricted_templates else "unrestricted")
    try:
        asyncio.run(kopf.operator(
            registry=handlers.registry,
            settings=settings(priority),
            memo=memo(kube, policy=policy),
            clusterwide=all_namespaces,
            namespaces=() if all_namespaces else list(namespaces),
            liveness_endpoint=f"http://0.0.0.0:{health_port}/healthz" if health_port else None,
        ))
    finally:
        kube.close()
    return 0
