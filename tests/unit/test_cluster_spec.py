"""Reading a Cluster manifest for ``ember up``: amounts as Kubernetes writes them, and errors
that name the field."""

from __future__ import annotations

import pytest
import yaml

from ember.cluster_spec import SpecError, parse


def manifest(groups: str, extra: str = "") -> dict:
    return yaml.safe_load(f"""
apiVersion: ember.dev/v1alpha1
kind: Cluster
metadata: {{name: c}}
spec:
  head: {{resources: {{cpu: 500m}}}}
  workerGroups:
{groups}
{extra}
""")


def test_amounts_and_defaults() -> None:
    name, head_cpus, groups, scaling = parse(manifest("""
  - name: gpu
    minReplicas: 1
    maxReplicas: 3
    resources: {limits: {cpu: "2", memory: 4Gi, nvidia.com/gpu: 1}, custom: {disk: 2}}
"""))
    assert (name, head_cpus) == ("c", 0.5)
    (group,) = groups
    assert group.shape == {"CPU": 2.0, "memory": 4 * 2**30, "GPU": 1.0, "disk": 2.0}
    assert (group.min_replicas, group.max_replicas, group.replicas) == (1, 3, None)
    assert scaling.enabled and scaling.idle_timeout == 60 and scaling.upscaling_mode == "Default"


@pytest.mark.parametrize(
    ("groups", "extra", "field"),
    [
        ("  - {name: a, minReplicas: 3, maxReplicas: 1, resources: {cpu: 1}}", "", "spec.workerGroups[0]: minReplicas (3) is above maxReplicas (1)"),
        ("  - {name: a, resources: {cpu: 1}}\n  - {name: a, resources: {cpu: 1}}", "", "spec.workerGroups[1].name"),
        ("  - {name: a, resources: {cpu: lots}}", "", "spec.workerGroups[0].resources.cpu"),
        ("  - {name: a, resources: {disk: 1}}", "", "spec.workerGroups[0].resources.disk"),
        ("  - {name: a, maxReplicas: -1, resources: {cpu: 1}}", "", "spec.workerGroups[0].maxReplicas"),
        ("  - {name: a, replicas: 9, maxReplicas: 2, resources: {cpu: 1}}", "", "spec.workerGroups[0].replicas"),
        ("  - {name: a, resources: {memory: 1Gi}}", "", "spec.workerGroups[0].resources: a worker needs some CPU"),
        ("  - {name: a, resources: {cpu: 1}}", "  autoscaling: {upscalingMode: Fast}", "spec.autoscaling.upscalingMode"),
    ],
)
def test_bad_specs_name_the_field(groups: str, extra: str, field: str) -> None:
    with pytest.raises(SpecError, match=field.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(").replace(")", r"\)")):
        parse(manifest(groups, extra))


def test_not_a_cluster() -> None:
    with pytest.raises(SpecError, match="not a Cluster"):
        parse({"kind": "Pod"})
