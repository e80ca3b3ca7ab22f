"""Prometheus metrics of the operator itself: is it reconciling, how often, how slowly, and
which clusters fail. Served on ``--metrics-port`` (``/metrics``) by ``ember operator``.

Per-cluster series carry ``namespace`` and ``cluster`` labels, and are removed when the
Cluster is deleted so that a long-lived operator does not collect series of clusters long gone.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

REGISTRY = CollectorRegistry(auto_describe=True)

RECONCILES = Counter(
    "ember_operator_reconciles_total",
    "Reconcile passes of a Cluster, by what started them and how they ended",
    ["namespace", "cluster", "trigger", "result"],
    registry=REGISTRY,
)
ERRORS = Counter(
    "ember_operator_reconcile_errors_total",
    "Reconcile passes of a Cluster that failed (they are retried)",
    ["namespace", "cluster"],
    registry=REGISTRY,
)
DURATION = Histogram(
    "ember_operator_reconcile_duration_seconds",
    "How long one reconcile pass of a Cluster took, API and head calls included",
    ["namespace", "cluster"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
ACTIONS = Counter(
    "ember_operator_actions_total",
    "What reconciles did to a Cluster's children: created, patched, deleted, drained pods",
    ["namespace", "cluster", "action"],
    registry=REGISTRY,
)

TRIGGERS = ("create", "resume", "update", "timer")
RESULTS = ("ok", "error")
ACTION_NAMES = ("created", "patched", "deleted", "drain_started", "deleted_without_drain", "scaled")


def serve(port: int) -> None:
    """Serve ``/metrics`` on all interfaces (a Service or a ServiceMonitor scrapes the pod)."""
    start_http_server(port, registry=REGISTRY)


def forget(namespace: str, cluster: str) -> None:
    """Drop the series of a deleted Cluster."""
    for trigger in TRIGGERS:
        for result in RESULTS:
            _remove(RECONCILES, namespace, cluster, trigger, result)
    for action in ACTION_NAMES:
        _remove(ACTIONS, namespace, cluster, action)
    _remove(ERRORS, namespace, cluster)
    _remove(DURATION, namespace, cluster)


def _remove(metric: Counter | Histogram, *labels: str) -> None:
    try:
        metric.remove(*labels)
    except KeyError:
        pass  # never recorded
