"""The chart's ValidatingAdmissionPolicy refuses what a restricted operator refuses, in the same
words, and nothing else: its CEL, as rendered, is evaluated here on Clusters (defaulted as the
API server defaults them) the way the API server evaluates it (matchConditions, then variables
in order, then validations), and compared with ``ember.operator.cluster_policy``."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import celpy
import pytest
import yaml

from ember.operator import cluster_spec
from ember.operator.cluster_policy import template_violations
from tests.chart.conftest import REPO, Objects, by_kind, one
from tests.operator.crd_schema import apply_defaults, examples, root_schema
from tests.operator.test_cluster_policy import ALLOWED, REFUSED

EXAMPLES = examples("Cluster")
TAIL = "; the ember operator allows no such template field (templatePolicy.mode is restricted)"


def evaluate(expression: str, activation: dict[str, Any]) -> Any:
    environment = celpy.Environment()
    return environment.program(environment.compile(expression)).evaluate(activation)


def admit(policy: dict[str, Any], obj: dict[str, Any], old: dict[str, Any] | None = None) -> str | None:
    """None when the API server would admit ``obj`` (a CREATE, or an UPDATE from ``old``), else
    the message it would refuse it with."""
    spec = policy["spec"]
    activation: dict[str, Any] = {
        "object": celpy.json_to_cel(obj),
        "oldObject": celpy.json_to_cel(old),
        "request": celpy.json_to_cel({"operation": "UPDATE" if old is not None else "CREATE"}),
    }
    if not all(bool(evaluate(c["expression"], activation)) for c in spec.get("matchConditions") or []):
        return None
    variables: dict[str, Any] = {}
    for variable in spec.get("variables") or []:
        activation["variables"] = celpy.celtypes.MapType(
            {celpy.celtypes.StringType(k): v for k, v in variables.items()})
        variables[variable["name"]] = evaluate(variable["expression"], activation)
    activation["variables"] = celpy.celtypes.MapType(
        {celpy.celtypes.StringType(k): v for k, v in variables.items()})
    for validation in spec["validations"]:
        if not bool(evaluate(validation["expression"], activation)):
            return str(evaluate(validation["messageExpression"], activation))
    return None


def cluster(spec: dict[str, Any], name: str = "c") -> dict[str, Any]:
    """A Cluster as the admission plugin sees it: defaulted by the CRD's schema."""
    body = {"apiVersion": "ember.dev/v1alpha1", "kind": "Cluster",
            "metadata": {"name": name, "namespace": "ns"}, "spec": copy.deepcopy(spec)}
    body["spec"] = apply_defaults(root_schema()["properties"]["spec"], body["spec"])
    return body


def operator_says(body: dict[str, Any]) -> str | None:
    """What the admission policy should answer, from the operator's own check."""
    found = template_violations(cluster_spec.parse(body))
    if not found:
        return None
    return found[0] + (" (and more)" if len(found) > 1 else "") + TAIL


@pytest.fixture(scope="module")
def policy(helm: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from tests.chart.conftest import run_helm

    out = run_helm(helm, "template", "ember", str(REPO / "charts" / "ember"), "--namespace", "ember-system").stdout
    return one([d for d in yaml.safe_load_all(out) if d], "ValidatingAdmissionPolicy")


def test_the_policy_and_its_binding_come_with_restricted_templates(render: Callable[..., Objects]) -> None:
    objects = render()
    policy, binding = one(objects, "ValidatingAdmissionPolicy"), one(objects, "ValidatingAdmissionPolicyBinding")
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    assert binding["spec"]["validationActions"] == ["Deny"]
    assert "matchResources" not in binding["spec"]  # every namespace, as the operator
    rules = policy["spec"]["matchConstraints"]["resourceRules"]
    assert rules == [{"apiGroups": ["ember.dev"], "apiVersions": ["*"], "operations": ["CREATE", "UPDATE"],
                      "resources": ["clusters"]}]
    args = next(c for c in one(objects, "Deployment")["spec"]["template"]["spec"]["containers"])["args"]
    assert args[args.index("--templates") + 1] == "restricted"
    listed = render({"watchNamespaces": ["team-a", "team-b"]})
    selector = one(listed, "ValidatingAdmissionPolicyBinding")["spec"]["matchResources"]["namespaceSelector"]
    assert selector == {"matchExpressions": [
        {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["team-a", "team-b"]}]}


@pytest.mark.parametrize("values", [{"templatePolicy": {"mode": "unrestricted"}},
                                    {"templatePolicy": {"admissionPolicy": False}}])
def test_no_policy_when_templates_are_unrestricted_or_it_is_not_wanted(
    render: Callable[..., Objects], values: dict[str, Any],
) -> None:
    objects = render(values)
    assert by_kind(objects, "ValidatingAdmissionPolicy") == by_kind(objects, "ValidatingAdmissionPolicyBinding") == []
    args = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--templates") + 1] == values["templatePolicy"].get("mode", "restricted")


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_the_examples_are_admitted(policy: dict[str, Any], path: Any) -> None:
    document = yaml.safe_load(path.read_text())
    assert admit(policy, cluster(document["spec"], document["metadata"]["name"])) is None


def test_the_allowed_fields_are_admitted(policy: dict[str, Any]) -> None:
    spec = {"tls": {"secretName": "c-tls"}, "head": {"template": ALLOWED},
            "workerGroups": [{"name": "cpu", "template": ALLOWED}, {"name": "bare"}]}
    assert admit(policy, cluster(spec)) is None
    assert admit(policy, cluster({"auth": {"secretName": "mine"}, "head": {"template": {
        "envFrom": [{"secretRef": {"name": "mine"}}]}}})) is None


@pytest.mark.parametrize(("template", "said"), REFUSED, ids=[s.split(":")[0] for _, s in REFUSED])
def test_each_refused_field_is_refused_as_the_operator_says(
    policy: dict[str, Any], template: dict[str, Any], said: str,
) -> None:
    for spec, at in (({"head": {"template": template}}, "spec.head.template"),
                     ({"workerGroups": [{"name": "ok"}, {"name": "gpu", "template": template}]},
                      "spec.workerGroups[gpu].template")):
        body = cluster(spec)
        assert admit(policy, body) == f"{at}.{said}{TAIL}" == operator_says(body)


@pytest.mark.parametrize("where", ["head", "group"])
def test_the_first_of_several_refused_fields_is_said_and_more_announced(policy: dict[str, Any], where: str) -> None:
    bad = {"serviceAccountName": "x", "volumes": [{"name": "h", "hostPath": {"path": "/"}}]}
    spec = ({"head": {"template": bad}} if where == "head"
            else {"workerGroups": [{"name": "ok"}, {"name": "a", "template": bad}]})
    body = cluster(spec)
    message = admit(policy, body)
    assert message == operator_says(body)
    at = "spec.head.template" if where == "head" else "spec.workerGroups[a].template"
    assert message == (f"{at}.volumes[h].hostPath: hostPath volumes are not allowed (allowed: "
                       "configMap, csi, downwardAPI, emptyDir, ephemeral, persistentVolumeClaim, projected, "
                       f"secret) (and more){TAIL}")


def test_only_a_changed_spec_is_checked_on_update(policy: dict[str, Any]) -> None:
    """A Cluster admitted before the policy (or while unrestricted) stays deletable: kopf's
    finalizer and annotation patches change no spec; a change of its spec is checked."""
    old = cluster({"workerGroups": [{"name": "cpu", "template": {"serviceAccountName": "admin"}}]})
    assert admit(policy, old) is not None
    finalized = copy.deepcopy(old)
    finalized["metadata"]["finalizers"] = []
    assert admit(policy, finalized, old) is None
    going = copy.deepcopy(old)
    going["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    going["spec"]["workerGroups"][0]["replicas"] = 0
    assert admit(policy, going, old) is None
    grown = copy.deepcopy(old)
    grown["spec"]["workerGroups"][0]["replicas"] = 3
    assert "serviceAccountName: service account admin" in (admit(policy, grown, old) or "")
    fixed = copy.deepcopy(old)
    fixed["spec"]["workerGroups"][0]["template"] = {}
    assert admit(policy, fixed, old) is None
