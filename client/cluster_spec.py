"""Reading a ``Cluster`` manifest (``ember.dev/v1alpha1``) for ``ember up`` on this machine.

The same file ``kubectl apply`` takes: ``ember up`` uses what makes sense on one machine — the
head's CPUs, the worker groups' resources and sizes, the autoscaling settings — and ignores
what only Kubernetes uses (images, pod templates, services).
"""

from __future__ import annotations

from typing import Any

import yaml

from ember.local_provider import AutoscalingSpec, GroupSpec


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
        if group["name"] in seen:
            raise SpecError(f"{field}.name: {group['name']!r} is used twice")
        seen.add(group["name"])
        low = _count(group.get("minReplicas", 0), f"{field}.minReplicas")
        high = _count(group.get("maxReplicas", max(low, 1)), f"{field}.maxReplicas")
        if low > high:
            raise SpecError(f"{field}: minReplicas ({low}) is above maxReplicas ({high})")
        replicas = group.get("replicas")
        if replicas is not None:
            replicas = _count(replicas, f"{field}.replicas")
            if not low <= replicas <= high:
                raise SpecError(f"{field}.replicas: {replicas} is outside [{low}, {high}]")
        shape = _resources(group.get("resources") or {}, f"{field}.resources")
        if not shape.get("CPU") and not any(k != "memory" for k in shape):
            raise SpecError(f"{field}.resources: a worker needs some CPU (or a GPU, or a custom resource)")
        groups.append(GroupSpec(str(group["name"]), shape, low, high, replicas))
    scaling = spec.get("autoscaling") or {}
    autoscaling = AutoscalingSpec(
        enabled=bool(scaling.get("enabled", True)),
        idle_timeout=float(scaling.get("idleTimeoutSeconds", 60)),
        upscaling_mode=str(scaling.get("upscalingMode", "Default")),
        interval=float(scaling.get("intervalSeconds", 1)),
    )
    if autoscaling.upscaling_mode not in ("Conservative", "Default", "Aggressive"):
        raise SpecError("spec.autoscaling.upscalingMode: Conservative, Default or Aggressive")
    return name, head_cpus, groups, autoscaling


def _count(value: Any, field: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise SpecError(f"{field}: a whole number of at least 0, not {value!r}")
    return value


def _resources(given: Any, field: str) -> dict[str, float]:
    """Kubernetes-style amounts (``cpu: 500m``, ``memory: 2Gi``, ``nvidia.com/gpu: 1``, or
    under ``limits``/``requests``) and ember's custom resources (``custom: {disk: 1}``)."""
    from kubernetes.utils.quantity import parse_quantity

    if not isinstance(given, dict):
        raise SpecError(f"{field}: a mapping of resources")
    amounts = given.get("limits") or given.get("requests") or given
    shape: dict[str, float] = {}
    for key, value in amounts.items():
        if key == "custom":
            continue
        name = {"cpu": "CPU", "memory": "memory", "gpu": "GPU", "nvidia.com/gpu": "GPU"}.get(key)
        if name is None:
            raise SpecError(f"{field}.{key}: not a resource (cpu, memory, gpu, nvidia.com/gpu, custom)")
        try:
            shape[name] = float(parse_quantity(value))
        except ValueError as error:
            raise SpecError(f"{field}.{key}: {error}") from None
    for key, value in (given.get("custom") or {}).items():
        if not isinstance(value, int | float) or value < 0:
            raise SpecError(f"{field}.custom.{key}: a number of at least 0, not {value!r}")
        shape[str(key)] = float(value)
    return shape
