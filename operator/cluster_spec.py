"""A ``Cluster``'s spec as the operator reads it: CRD defaults applied, quantities parsed.

The API server applies the CRD's defaults before the operator sees an object, but the operator
does not rely on that: objects written before a default existed, or read from a test, come
without them. :func:`with_defaults` applies the same defaults as
``charts/ember/crds/clusters.ember.dev.yaml`` (a unit test keeps the two equal), so the rest of
the operator reads one complete shape.

The pod-spec hash is what decides a roll: it covers everything that makes a pod differ (image,
resources, environment, start parameters, template, secrets) and nothing that only changes how
many pods there are (``replicas``, ``minReplicas``, ``maxReplicas``, ``workersToDelete``).
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from kubernetes.utils.quantity import parse_quantity

DEFAULT_IMAGE = "ember:0.1.0"
DEFAULT_PULL_POLICY = "IfNotPresent"
DEFAULT_RESOURCES: Mapping[str, Any] = {"cpu": "1", "memory": "2Gi", "gpu": 0}
DEFAULT_PORTS: Mapping[str, int] = {"client": 10001, "dashboard": 8265, "metrics": 8080, "nodeMetrics": 8081}
DEFAULT_SERVICE_TYPE = "ClusterIP"
DEFAULT_STATE_VOLUME: Mapping[str, Any] = {"size": "1Gi", "storageClassName": ""}
DEFAULT_MIN_REPLICAS = 0
DEFAULT_MAX_REPLICAS = 10
# Who may reach the metrics ports through the cluster's NetworkPolicy: any pod of any namespace,
# so Prometheus scrapes wherever it runs (narrow it in the spec to where it does).
DEFAULT_METRICS_FROM: tuple[Mapping[str, Any], ...] = ({"namespaceSelector": {}},)
DEFAULT_AUTOSCALING: Mapping[str, Any] = {
    "enabled": False,
    "idleTimeoutSeconds": 60,
    "upscalingMode": "Default",
    "intervalSeconds": 1,
}


class ClusterSpecError(ValueError):
    """A spec the operator cannot render (the CRD refuses most of these before they arrive)."""


def with_defaults(spec: Mapping[str, Any] | None) -> dict[str, Any]:
    """A deep copy of ``spec`` with every default the CRD declares filled in, where the API
    server would fill it: a default applies when its field is absent and its parent present."""
    out: dict[str, Any] = copy.deepcopy(dict(spec or {}))
    out.setdefault("image", DEFAULT_IMAGE)
    out.setdefault("imagePullPolicy", DEFAULT_PULL_POLICY)
    out.setdefault("suspend", False)
    out.setdefault("auth", {}).setdefault("secretName", "")
    out.setdefault("tls", {}).setdefault("secretName", "")
    head = out.setdefault("head", {})
    _resource_defaults(head)
    head.setdefault("serviceType", DEFAULT_SERVICE_TYPE)
    ports = head.setdefault("ports", {})
    for name, port in DEFAULT_PORTS.items():
        ports.setdefault(name, port)
    if "stateVolume" in head:
        for key, value in DEFAULT_STATE_VOLUME.items():
            head["stateVolume"].setdefault(key, value)
    for group in out.setdefault("workerGroups", []):
        group.setdefault("minReplicas", DEFAULT_MIN_REPLICAS)
        group.setdefault("maxReplicas", DEFAULT_MAX_REPLICAS)
        _resource_defaults(group)
        group.setdefault("scaleStrategy", {}).setdefault("workersToDelete", [])
    network = out.setdefault("networkPolicy", {})
    network.setdefault("enabled", True)
    network.setdefault("metricsFrom", copy.deepcopy(list(DEFAULT_METRICS_FROM)))
    autoscaling = out.setdefault("autoscaling", {})
    for key, value in DEFAULT_AUTOSCALING.items():
        autoscaling.setdefault(key, value)
    return out


def _resource_defaults(owner: dict[str, Any]) -> None:
    resources = owner.setdefault("resources", {})
    for key, value in DEFAULT_RESOURCES.items():
        resources.setdefault(key, value)


@dataclass(frozen=True)
class Resources:
    """A pod's reservation: Kubernetes quantities as given, and the numbers ember uses."""

    cpu: Decimal  # CPUs (0.5 for "500m")
    memory: int  # bytes
    gpu: int
    custom: Mapping[str, float]

    @classmethod
    def parse(cls, given: Mapping[str, Any], field: str) -> Resources:
        try:
            cpu = Decimal(parse_quantity(given["cpu"]))
        except ValueError as error:
            raise ClusterSpecError(f"{field}.cpu: {error}") from None
        try:
            memory = int(parse_quantity(given["memory"]))
        except ValueError as error:
            raise ClusterSpecError(f"{field}.memory: {error}") from None
        custom = {str(k): float(v) for k, v in (given.get("custom") or {}).items()}
        return cls(cpu=cpu, memory=memory, gpu=int(given.get("gpu", 0)), custom=custom)

    @property
    def shape(self) -> dict[str, float]:
        """The same amounts in the names ember's scheduler and autoscaler use."""
        shape = {"CPU": float(self.cpu), "memory": float(self.memory)}
        if self.gpu:
            shape["GPU"] = float(self.gpu)
        return shape | {name: float(amount) for name, amount in self.custom.items()}

    def hashable(self) -> dict[str, Any]:
        """Normalised, so that ``cpu: 1`` and ``cpu: "1000m"`` hash the same."""
        return {"cpu": str(self.cpu.normalize()), "memory": self.memory, "gpu": self.gpu,
                "custom": dict(sorted(self.custom.items()))}


@dataclass(frozen=True)
class WorkerGroup:
    name: str
    replicas: int | None
    min_replicas: int
    max_replicas: int
    resources: Resources
    start_params: Mapping[str, str]
    template: Mapping[str, Any]
    workers_to_delete: tuple[str, ...]

    @property
    def desired(self) -> int:
        """``replicas``, else ``minReplicas``, within [min, max]: what the group should have."""
        wanted = self.replicas if self.replicas is not None else self.min_replicas
        return max(self.min_replicas, min(self.max_replicas, wanted))


@dataclass(frozen=True)
class ClusterSpec:
    """The whole spec, defaulted; ``raw`` keeps the defaulted dict for the pod renderer."""

    name: str
    namespace: str
    raw: Mapping[str, Any]
    head_resources: Resources
    groups: tuple[WorkerGroup, ...]

    @property
    def suspend(self) -> bool:
        return bool(self.raw["suspend"])

    @property
    def head(self) -> Mapping[str, Any]:
        return self.raw["head"]

    @property
    def ports(self) -> Mapping[str, int]:
        return self.raw["head"]["ports"]

    @property
    def token_secret(self) -> str:
        """The Secret holding the token: the user's, or ``<cluster>-token`` the operator makes."""
        return self.raw["auth"]["secretName"] or f"{self.name}-token"

    @property
    def generates_token(self) -> bool:
        return not self.raw["auth"]["secretName"]

    @property
    def tls_secret(self) -> str:
        return str(self.raw["tls"]["secretName"])

    @property
    def network_policy(self) -> Mapping[str, Any]:
        """``spec.networkPolicy``: enabled, clientFrom and metricsFrom (NetworkPolicyPeers)."""
        return self.raw["networkPolicy"]

    @property
    def network_policy_name(self) -> str:
        return f"{self.name}-network"

    @property
    def service_name(self) -> str:
        return f"{self.name}-head"

    @property
    def service_host(self) -> str:
        return f"{self.service_name}.{self.namespace}.svc"

    @property
    def head_pod_name(self) -> str:
        return f"{self.name}-head"

    @property
    def state_claim_name(self) -> str:
        return f"{self.name}-head-state"


def parse(cluster: Mapping[str, Any]) -> ClusterSpec:
    """The ``Cluster`` object (as the API returns it) read into a :class:`ClusterSpec`."""
    metadata = cluster.get("metadata") or {}
    name = str(metadata.get("name") or "")
    if not name:
        raise ClusterSpecError("metadata.name: a Cluster needs a name")
    raw = with_defaults(cluster.get("spec"))
    groups = []
    for index, group in enumerate(raw["workerGroups"]):
        field = f"spec.workerGroups[{index}]"
        groups.append(
            WorkerGroup(
                name=str(group["name"]),
                replicas=group.get("replicas"),
                min_replicas=int(group["minReplicas"]),
                max_replicas=int(group["maxReplicas"]),
                resources=Resources.parse(group["resources"], f"{field}.resources"),
                start_params=dict(group.get("startParams") or {}),
                template=dict(group.get("template") or {}),
                workers_to_delete=tuple(group["scaleStrategy"]["workersToDelete"]),
            )
        )
    return ClusterSpec(
        name=name,
        namespace=str(metadata.get("namespace") or "default"),
        raw=raw,
        head_resources=Resources.parse(raw["head"]["resources"], "spec.head.resources"),
        groups=tuple(groups),
    )


def head_hash(spec: ClusterSpec) -> str:
    """The ``ember.dev/pod-spec-hash`` of the head pod."""
    head = spec.head
    return _digest({
        "pod": _shared(spec),
        "resources": spec.head_resources.hashable(),
        "startParams": dict(sorted((head.get("startParams") or {}).items())),
        "template": head.get("template") or {},
        "ports": dict(head["ports"]),
        "stateVolume": head.get("stateVolume"),
        "autoscaler": bool(spec.raw["autoscaling"]["enabled"]),
    })


def worker_hash(spec: ClusterSpec, group: WorkerGroup) -> str:
    """The ``ember.dev/pod-spec-hash`` of a worker pod of ``group``: never its sizes."""
    return _digest({
        "pod": _shared(spec),
        "resources": group.resources.hashable(),
        "startParams": dict(sorted(group.start_params.items())),
        "template": group.template,
        # Workers dial the head's client port and serve their metrics on nodeMetrics.
        "ports": {"client": spec.ports["client"], "nodeMetrics": spec.ports["nodeMetrics"]},
    })


def _shared(spec: ClusterSpec) -> dict[str, Any]:
    raw = spec.raw
    return {
        "image": raw["image"],
        "imagePullPolicy": raw["imagePullPolicy"],
        "imagePullSecrets": raw.get("imagePullSecrets") or [],
        "auth": raw["auth"]["secretName"],
        "tls": raw["tls"]["secretName"],
    }


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
