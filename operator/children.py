"""The objects a ``Cluster`` owns besides its pods: token Secret, head Service, NetworkPolicy,
state volume.

Every child carries the same labels (so one label selector finds all of a cluster's objects)
and a controller owner reference to the ``Cluster``, so deleting the ``Cluster`` lets
Kubernetes' garbage collector remove them: the operator deletes nothing itself at the end.
(The ``Cluster`` does carry kopf's finalizer ``ember.dev/operator`` while an operator serves
it, for kopf to stop its timer and autoscaler first; see ``operator_main.FINALIZER``.)
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from ember.operator.cluster_spec import ClusterSpec

API_VERSION = "ember.dev/v1alpha1"
KIND = "Cluster"
CLUSTER_LABEL = "ember.dev/cluster"
NODE_TYPE_LABEL = "ember.dev/node-type"
GROUP_LABEL = "ember.dev/group"
HASH_ANNOTATION = "ember.dev/pod-spec-hash"
TOKEN_KEY = "token"
# The keys of a cluster's TLS Secret (spec.tls.secretName), those of a kubernetes.io/tls
# Secret as cert-manager writes it: mounted as files into every pod, read by the operator.
TLS_CERT_KEY = "tls.crt"
TLS_KEY_KEY = "tls.key"
TLS_CA_KEY = "ca.crt"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "ember-operator"


def labels(spec: ClusterSpec, node_type: str | None = None, group: str | None = None) -> dict[str, str]:
    """The labels every child of the cluster carries (and, for pods, which kind of node)."""
    out = {
        CLUSTER_LABEL: spec.name,
        "app.kubernetes.io/name": "ember",
        "app.kubernetes.io/instance": spec.name,
        MANAGED_BY_LABEL: MANAGED_BY,
    }
    if node_type is not None:
        out[NODE_TYPE_LABEL] = node_type
    if group is not None:
        out[GROUP_LABEL] = group
    return out


def owner_reference(cluster: Mapping[str, Any]) -> dict[str, Any]:
    """The controller reference to the Cluster; deleting it cascades to the child."""
    metadata = cluster.get("metadata") or {}
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": metadata.get("name", ""),
        "uid": metadata.get("uid", ""),
        "controller": True,
        "blockOwnerDeletion": True,
    }


def metadata(cluster: Mapping[str, Any], spec: ClusterSpec, name: str, **labelled: str | None) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": spec.namespace,
        "labels": labels(spec, labelled.get("node_type"), labelled.get("group")),
        "ownerReferences": [owner_reference(cluster)],
    }


def token_secret(cluster: Mapping[str, Any], spec: ClusterSpec, token: str) -> dict[str, Any]:
    """Secret ``<cluster>-token`` with key ``token``, which every pod reads as EMBER_TOKEN."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata(cluster, spec, spec.token_secret),
        "type": "Opaque",
        "data": {TOKEN_KEY: base64.b64encode(token.encode()).decode()},
    }


def head_service(cluster: Mapping[str, Any], spec: ClusterSpec) -> dict[str, Any]:
    """Service ``<cluster>-head``: how workers and drivers find the head, by port name.

    It selects only a Ready head (the readiness probe is on the client port), so a worker that
    starts before the head answers waits on the Service instead of failing against a pod IP.
    """
    ports = spec.ports
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(cluster, spec, spec.service_name),
        "spec": {
            "type": spec.head["serviceType"],
            "selector": {CLUSTER_LABEL: spec.name, NODE_TYPE_LABEL: "head"},
            "ports": [
                {"name": "client", "port": ports["client"], "targetPort": "client", "protocol": "TCP"},
                {"name": "dashboard", "port": ports["dashboard"], "targetPort": "dashboard", "protocol": "TCP"},
                {"name": "metrics", "port": ports["metrics"], "targetPort": "metrics", "protocol": "TCP"},
                {"name": "node-metrics", "port": ports["nodeMetrics"], "targetPort": "node-metrics", "protocol": "TCP"},
            ],
        },
    }


def service_differs(observed: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    """Whether the Service must be replaced: its type or its ports changed in the spec."""
    have, want = observed.get("spec") or {}, desired["spec"]
    if have.get("type", "ClusterIP") != want["type"]:
        return True
    ports = {(p.get("name"), p.get("port")) for p in have.get("ports") or []}
    return ports != {(p["name"], p["port"]) for p in want["ports"]}


def state_claim(cluster: Mapping[str, Any], spec: ClusterSpec) -> dict[str, Any]:
    """The head's ``--state-dir`` volume, when ``spec.head.stateVolume`` asks for one."""
    volume = spec.head["stateVolume"]
    claim: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": metadata(cluster, spec, spec.state_claim_name, node_type="head"),
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": str(volume["size"])}},
        },
    }
    if volume["storageClassName"]:
        claim["spec"]["storageClassName"] = volume["storageClassName"]
    return claim


def network_policy(
    cluster: Mapping[str, Any], spec: ClusterSpec, operator_peer: Mapping[str, Any] | None
) -> dict[str, Any]:
    """NetworkPolicy ``<cluster>-network``: into the cluster's pods come only its own pods (on
    every port: task channels, object transfers, the head), the operator (the head's client
    port: drains and demand), and the peers ``spec.networkPolicy`` names, to the client and
    dashboard ports (``clientFrom``) and to the metrics ports (``metricsFrom``).

    A rule whose peer list would be empty is left out, never rendered with ``from: []``: a
    rule without peers lets in everyone. ``kubectl port-forward`` enters each pod through the
    kubelet, not the pod network, so it needs no rule. Egress stays open (tasks fetch data)."""
    ports = spec.ports
    chosen = spec.network_policy

    def tcp(*names: str) -> list[dict[str, Any]]:
        return [{"protocol": "TCP", "port": ports[name]} for name in names]

    ingress: list[dict[str, Any]] = [{"from": [{"podSelector": {"matchLabels": {CLUSTER_LABEL: spec.name}}}]}]
    if operator_peer:
        ingress.append({"from": [dict(operator_peer)], "ports": tcp("client")})
    for peers, names in ((chosen.get("clientFrom"), ("client", "dashboard")),
                         (chosen.get("metricsFrom"), ("metrics", "nodeMetrics"))):
        if peers:
            ingress.append({"from": [dict(peer) for peer in peers], "ports": tcp(*names)})
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(cluster, spec, spec.network_policy_name),
        "spec": {
            "podSelector": {"matchLabels": {CLUSTER_LABEL: spec.name}},
            "policyTypes": ["Ingress"],
            "ingress": ingress,
        },
    }


def policy_differs(observed: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    """Whether the NetworkPolicy must be patched: what it says is not all the desired one says
    (fields the API server adds, such as defaults, are no difference)."""
    return not _covers(observed.get("spec") or {}, desired["spec"])


def _covers(have: Any, want: Any) -> bool:
    if isinstance(want, Mapping):
        return isinstance(have, Mapping) and all(
            key in have and _covers(have[key], value) for key, value in want.items()
        )
    if isinstance(want, list):
        return isinstance(have, list) and len(have) == len(want) and all(
            _covers(h, w) for h, w in zip(have, want, strict=True)
        )
    return bool(have == want)
