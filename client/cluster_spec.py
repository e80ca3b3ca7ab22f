"""Reading a ``Cluster`` manifest (``ember.dev/v1alpha1``) for ``ember up`` on this machine.

The same file ``kubectl apply`` takes: ``ember up`` uses what makes sense on one machine — the
head's CPUs, the worker groups' resources and sizes, the autoscaling settings — and ignores
what only Kubernetes uses (images, pod templates, services). Resources take exactly the CRD's
shape (``cpu``, ``memory``, ``gpu``, ``custom``) and absent fields the CRD's defaults (a unit
test compares them with ``charts/ember/crds/clusters.ember.dev.yaml``), so a manifest means the
same thing here as on Kubernetes. No Kubernetes library is imported: ``ember up`` runs on laptops.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from ember import quantity
from ember.local_provider import AutoscalingSpec, GroupSpec

# The CRD's defaults (ember.operator.cluster_spec holds the operator's copy of the same).
DEFAULT_RESOURCES = {"cpu": "1", "memory": "2Gi", "gpu": 0}
DEFAULT_MIN_REPLICAS = 0
DEFAULT_MAX_REPLICAS = 10
DEFAULT_AUTOSCALING = {"enabled": False, "idleTimeoutSeconds": 60, "upscalingMode": "Default", "intervalSeconds": 1}
GROUP_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class SpecError(ValueError):
    """The manifest is not a Cluster ember can run: the message names the field."""


def load(path: str) -> tuple[str, float, list[GroupSpec], AutoscalingSpec]:
    """(cluster name, head CPUs, worker groups, autoscaling) from a manifest file."""
    try:
        with open(path) as f:
            document = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as error:
        raise SpecError(f"{path}: {error}") from None
    return parse(document, path)


def parse(document: Any, where: str = "the manifest") -> tuple[str, float, list[GroupSpec], AutoscalingSpec]:
    if not isinstance(document, dict) or document.get("kind") != "Cluster":
        raise SpecError(f"{where}: not a Cluster (kind: Cluster, apiVersion: ember.dev/v1alpha1)")
    name = str((document.get("metadata") or {}).get("name") or "ember")
    spec = document.get("spec") or {}
    head = spec.get("head") or {}
    head_cpus = _resources(head.get("resources") or {}, "spec.head.resources").get("CPU", 0.0)
    groups = []
    seen = set()
    for index, group in enumerate(spec.get("workerGroups") or []):
        field = f"spec.workerGroups[{index}]"
        if not isinstance(group, dict) or not group.get("name"):
            raise SpecError(f"{field}.name: every worker group needs a name")
        if not isinstance(group["name"], str) or len(group["name"]) > 40 or not GROUP_NAME.match(group["name"]):
            raise SpecError(f"{field}.name: {group['name']!r} is not a DNS label (a-z, 0-9, '-', at most 40)")
        if group["name"] in seen:
            raise SpecError(f"{field}.name: {group['name']!r} is used twice")
        seen.add(group["name"])
        low = _count(group.get("minReplicas", DEFAULT_MIN_REPLICAS), f"{field}.minReplicas")
        high = _count(group.get("maxReplicas", DEFAULT_MAX_REPLICAS), f"{field}.maxReplicas")
        if low > high:
            raise SpecError(f"{field}: minReplicas ({low}) is above maxReplicas ({high})")
        replicas = group.get("replicas")
        if replicas is not None:
            replicas = _count(replicas, f"{field}.replicas")
            if not low <= replicas <= high:
                raise SpecError(f"{field}.replicas: {replicas} is outside [{low}, {high}]")
        shape = _resources(group.get("resources") or {}, f"{field}.resources")
        if not any(amount for key, amount in shape.items() if key != "memory"):
            raise SpecError(f"{field}.resources: a worker needs some CPU (or a GPU, or a custom resource)")
        groups.append(GroupSpec(str(group["name"]), shape, low, high, replicas))
    scaling = {**DEFAULT_AUTOSCALING, **(spec.get("autoscaling") or {})}
    autoscaling = AutoscalingSpec(
        enabled=bool(scaling["enabled"]),
        idle_timeout=_seconds(scaling["idleTimeoutSeconds"], "spec.autoscaling.idleTimeoutSeconds"),
        upscaling_mode=str(scaling["upscalingMode"]),
        interval=_seconds(scaling["intervalSeconds"], "spec.autoscaling.intervalSeconds"),
    )
    if autoscaling.upscaling_mode not in ("Conservative", "Default", "Aggressive"):
        raise SpecError("spec.autoscaling.upscalingMode: Conservative, Default or Aggressive")
    if autoscaling.interval <= 0:
        raise SpecError("spec.autoscaling.intervalSeconds: more than 0 seconds")
    return name, head_cpus, groups, autoscaling


def _seconds(value: Any, field: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
        raise SpecError(f"{field}: a number of seconds of at least 0, not {value!r}")
    return float(value)


def _count(value: Any, field: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise SpecError(f"{field}: a whole number of at least 0, not {value!r}")
    return value


def _resources(given: Any, field: str) -> dict[str, float]:
    """The CRD's resource shape: ``cpu`` and ``memory`` as Kubernetes quantities (``500m``,
    ``2Gi``), ``gpu`` a whole number, ``custom`` ember's own resources (``{disk: 1}``)."""
    if not isinstance(given, dict):
        raise SpecError(f"{field}: a mapping of resources (cpu, memory, gpu, custom)")
    for key in given:
        if key not in ("cpu", "memory", "gpu", "custom"):
            raise SpecError(f"{field}.{key}: not a resource field (cpu, memory, gpu, custom)")
    amounts = {**DEFAULT_RESOURCES, **given}
    shape: dict[str, float] = {}
    for key, name in (("cpu", "CPU"), ("memory", "memory")):
        try:
            shape[name] = float(quantity.parse(amounts[key]))
        except ValueError as error:
            raise SpecError(f"{field}.{key}: {error}") from None
    shape["GPU"] = float(_count(amounts["gpu"], f"{field}.gpu"))
    for key, value in (amounts.get("custom") or {}).items():
        if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
            raise SpecError(f"{field}.custom.{key}: a number of at least 0, not {value!r}")
        shape[str(key)] = float(value)
    return {k: v for k, v in shape.items() if v or k == "CPU"}
