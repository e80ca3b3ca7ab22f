"""Reading a Cluster manifest for ``ember up``: amounts as Kubernetes writes them, and errors
that name the field."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from kubernetes.utils.quantity import parse_quantity

from ember import quantity
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
    resources: {cpu: "2", memory: 4Gi, gpu: 1, custom: {disk: 2}}
"""))
    assert (name, head_cpus) == ("c", 0.5)
    (group,) = groups
    assert group.shape == {"CPU": 2.0, "memory": 4 * 2**30, "GPU": 1.0, "disk": 2.0}
    assert (group.min_replicas, group.max_replicas, group.replicas) == (1, 3, None)
    assert not scaling.enabled and scaling.idle_timeout == 60 and scaling.upscaling_mode == "Default"


@pytest.mark.parametrize(
    ("groups", "extra", "field"),
    [
        ("  - {name: a, minReplicas: 3, maxReplicas: 1, resources: {cpu: 1}}", "", "spec.workerGroups[0]: minReplicas (3) is above maxReplicas (1)"),
        ("  - {name: a, resources: {cpu: 1}}\n  - {name: a, resources: {cpu: 1}}", "", "spec.workerGroups[1].name"),
        ("  - {name: a, resources: {cpu: lots}}", "", "spec.workerGroups[0].resources.cpu"),
        ("  - {name: a, resources: {disk: 1}}", "", "spec.workerGroups[0].resources.disk"),
        ("  - {name: a, maxReplicas: -1, resources: {cpu: 1}}", "", "spec.workerGroups[0].maxReplicas"),
        ("  - {name: a, replicas: 9, maxReplicas: 2, resources: {cpu: 1}}", "", "spec.workerGroups[0].replicas"),
        ("  - {name: a, resources: {cpu: 0, memory: 1Gi}}", "", "spec.workerGroups[0].resources: a worker needs some CPU"),
        ("  - {name: a, resources: {limits: {cpu: 1}}}", "", "spec.workerGroups[0].resources.limits"),
        ("  - {name: a, resources: {nvidia.com/gpu: 1}}", "", "spec.workerGroups[0].resources.nvidia.com/gpu"),
        ("  - {name: a, resources: {gpu: 0.5}}", "", "spec.workerGroups[0].resources.gpu"),
        ("  - {name: A_b, resources: {cpu: 1}}", "", "spec.workerGroups[0].name"),
        ("  - {name: a}", "  autoscaling: {intervalSeconds: 0}", "spec.autoscaling.intervalSeconds"),
        ("  - {name: a, resources: {cpu: 1}}", "  autoscaling: {upscalingMode: Fast}", "spec.autoscaling.upscalingMode"),
    ],
)
def test_bad_specs_name_the_field(groups: str, extra: str, field: str) -> None:
    with pytest.raises(SpecError, match=field.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(").replace(")", r"\)")):
        parse(manifest(groups, extra))


def test_not_a_cluster() -> None:
    with pytest.raises(SpecError, match="not a Cluster"):
        parse({"kind": "Pod"})


def test_defaults_are_the_crds() -> None:
    """What ``ember up`` assumes for absent fields is what the API server would fill in."""
    from decimal import Decimal

    from tests.operator.crd_schema import apply_defaults, root_schema

    schema = root_schema()["properties"]["spec"]
    spec = apply_defaults(schema, {"workerGroups": [{"name": "a"}]})
    _, head_cpus, (group,), scaling = parse({"kind": "Cluster", "spec": {"workerGroups": [{"name": "a"}]}})
    crd_group, crd_head = spec["workerGroups"][0], spec["head"]["resources"]
    assert Decimal(str(head_cpus)) == quantity.parse(crd_head["cpu"])
    assert (group.min_replicas, group.max_replicas) == (crd_group["minReplicas"], crd_group["maxReplicas"])
    assert group.shape == {"CPU": float(quantity.parse(crd_group["resources"]["cpu"])),
                           "memory": float(quantity.parse(crd_group["resources"]["memory"]))}
    assert crd_group["resources"]["gpu"] == 0 and "GPU" not in group.shape
    crd_scaling = spec["autoscaling"]
    assert (scaling.enabled, scaling.idle_timeout, scaling.upscaling_mode, scaling.interval) == (
        crd_scaling["enabled"], crd_scaling["idleTimeoutSeconds"], crd_scaling["upscalingMode"],
        crd_scaling["intervalSeconds"])


def test_the_crd_quantity_pattern_is_the_one_ember_up_parses() -> None:
    from tests.operator.crd_schema import root_schema

    cpu = root_schema()["properties"]["spec"]["properties"]["head"]["properties"]["resources"]["properties"]["cpu"]
    crd = re.compile(cpu["pattern"])
    for text in ["1", "500m", "2Gi", "1e3", ".5", "+1", "1.", "7Ki", "3E-2", "1.5G"]:
        assert crd.match(text) and quantity.PATTERN.match(text), text
    for text in ["lots", "2 Gi", "1ki", "Gi", "1.2.3", "", "1e"]:
        assert not crd.match(text) and not quantity.PATTERN.match(text), text


@settings(deadline=None)
@given(
    number=st.decimals(min_value=0, max_value=10**6, places=3, allow_nan=False, allow_infinity=False),
    suffix=st.sampled_from(["", "m", "k", "M", "G", "Ki", "Mi", "Gi", "Ti", "e3", "E-2"]),
)
def test_quantities_agree_with_the_kubernetes_package(number: Decimal, suffix: str) -> None:
    text = f"{number:f}{suffix}"
    assert quantity.parse(text) == parse_quantity(text)


def test_ember_up_reads_every_example_manifest() -> None:
    from tests.operator.crd_schema import examples

    clusters = examples("Cluster")
    assert clusters
    for path in clusters:
        name, _, groups, _ = parse(yaml.safe_load(path.read_text()), str(path))
        assert name and groups
