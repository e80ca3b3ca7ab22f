"""The Cluster CRD: every example validates, every invalid spec is refused naming its field,
and the operator's and ``ember up``'s defaults are the CRD's."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import celpy
import pytest
import yaml

from ember.operator import cluster_spec
from tests.operator.crd_schema import (
    CRD_PATH,
    REPO,
    apply_defaults,
    cel_rules,
    examples,
    field_path_parts,
    load_crd,
    root_schema,
    rule_message,
    validate,
)

EXAMPLES = examples("Cluster")
INVALID = yaml.safe_load((Path(__file__).parent / "invalid_clusters.yaml").read_text())


def cluster(spec: Any, name: str = "c") -> dict[str, Any]:
    return {"apiVersion": "ember.dev/v1alpha1", "kind": "Cluster", "metadata": {"name": name}, "spec": spec}


def test_crd_shape() -> None:
    crd = load_crd()
    assert crd["metadata"]["name"] == "clusters.ember.dev"
    assert crd["spec"]["scope"] == "Namespaced"
    assert crd["spec"]["names"]["shortNames"] == ["ec"]
    (version,) = crd["spec"]["versions"]
    assert version["name"] == "v1alpha1" and version["subresources"] == {"status": {}}
    assert [c["name"] for c in version["additionalPrinterColumns"]] == ["Phase", "Desired", "Ready", "Head", "Age"]
    # kubectl apply keeps the whole object in an annotation limited to 256 KiB.
    assert len(CRD_PATH.read_bytes()) < 128 * 1024
    assert len(json.dumps(crd)) < 256 * 1024


def test_the_crd_yaml_has_no_anchors() -> None:
    """Helm and kubectl read YAML differently; a plain file reads the same everywhere."""
    events = yaml.parse(CRD_PATH.read_text())
    assert not any(isinstance(e, yaml.AliasEvent) or getattr(e, "anchor", None) for e in events)


def test_every_field_is_described() -> None:
    def walk(schema: dict[str, Any], where: str) -> list[str]:
        missing = []
        for key, sub in (schema.get("properties") or {}).items():
            path = f"{where}.{key}"
            if "description" not in sub and where.startswith("spec"):
                missing.append(path)
            missing += walk(sub, path)
        if isinstance(schema.get("items"), dict):
            missing += walk(schema["items"], where + "[]")
        return missing

    spec = root_schema()["properties"]["spec"]
    # The structural fields of pod-template items mirror core types, named the same.
    assert [p for p in walk(spec, "spec") if p.split(".")[-1] not in ("name", "value", "mountPath", "subPath", "readOnly")] == []


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_validate(path: Path) -> None:
    document = yaml.safe_load(path.read_text())
    assert document["kind"] == "Cluster" and document["apiVersion"] == "ember.dev/v1alpha1"
    assert validate(document) == []


def test_examples_cover_the_brief() -> None:
    assert {p.name for p in EXAMPLES} >= {"cluster.yaml", "large.yaml", "gpu.yaml", "autoscaling.yaml", "tls.yaml"}


@pytest.mark.parametrize("case", INVALID, ids=lambda c: c["why"])
def test_invalid_specs_are_refused_naming_the_field(case: dict[str, Any]) -> None:
    errors = validate(cluster(case["spec"], case.get("name", "c")))
    assert errors, f"accepted: {case['spec']}"
    assert any(_names(error, case["field"]) for error in errors), errors


def _names(error: str, field: str) -> bool:
    """The error is at ``field`` (or inside it): a rule on the whole object names its field
    through ``fieldPath``, or the API server would print ``<nil>`` as the field."""
    where, _, _ = error.partition(": ")
    return where == field or where.startswith((field + ".", field + "["))


def test_a_valid_spec_next_to_each_invalid_one_passes() -> None:
    """The checker is not refusing everything: the smallest spec and a full one pass."""
    assert validate(cluster({})) == []
    assert validate(cluster({"workerGroups": [{"name": "a", "replicas": 2, "minReplicas": 1, "maxReplicas": 3},
                                              {"name": "b-2", "resources": {"cpu": "500m", "custom": {"x": 0.5}}}]})) == []


def test_cel_rules_compile_and_name_their_field() -> None:
    rules = cel_rules()
    assert len(rules) >= 4
    for rule in rules:
        environment = celpy.Environment()
        environment.program(environment.compile(rule["rule"]))
        environment.program(environment.compile(rule["messageExpression"]))
        assert rule["message"]


def _placed_rules(schema: Any, where: str = "") -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(where, the schema it sits on, rule) for every rule."""
    found = []
    if isinstance(schema, dict):
        found += [(where, schema, rule) for rule in schema.get("x-kubernetes-validations") or []]
        for key, sub in (schema.get("properties") or {}).items():
            found += _placed_rules(sub, f"{where}.{key}")
        if isinstance(schema.get("items"), dict):
            found += _placed_rules(schema["items"], where + "[]")
    return found


def test_every_rule_on_an_object_has_a_field_path_the_api_server_accepts() -> None:
    """A rule on an object (the root, a worker group) reports at its fieldPath; without one
    the API server prints ``<nil>`` (the root) or the whole group as the field. The path must
    name properties of the schema the rule sits on, or the API server refuses the CRD."""
    placed = _placed_rules(root_schema())
    on_objects = [(where, schema, rule) for where, schema, rule in placed if schema.get("type") == "object"]
    assert {where for where, _, _ in on_objects} == {"", ".spec.workerGroups[]"}
    for where, schema, rule in on_objects:
        assert rule.get("fieldPath"), f"the rule {rule['rule']!r} at {where or 'the root'} has no fieldPath"
        field_path_parts(schema, rule["fieldPath"])
    with pytest.raises(ValueError, match="'nmae' does not refer to a valid field"):
        field_path_parts(root_schema(), ".metadata.nmae")


def test_messages_carry_the_bad_value() -> None:
    """What ``kubectl apply`` prints for each rule, from its messageExpression."""
    assert validate(cluster({"workerGroups": [{"name": "cpu", "replicas": 9, "maxReplicas": 4}]})) == [
        "spec.workerGroups[0].replicas: replicas 9 is outside [0, 4] (minReplicas, maxReplicas)"
    ]
    assert validate(cluster({"workerGroups": [{"name": "a"}, {"name": "b", "replicas": 1, "minReplicas": 2}]})) == [
        "spec.workerGroups[1].replicas: replicas 1 is outside [2, 10] (minReplicas, maxReplicas)"
    ]
    assert validate(cluster({"workerGroups": [{"name": "cpu", "minReplicas": 3, "maxReplicas": 1}]})) == [
        "spec.workerGroups[0].minReplicas: minReplicas 3 exceeds maxReplicas 1"
    ]
    assert validate(cluster({"workerGroups": [{"name": "cpu"}, {"name": "gpu"}, {"name": "cpu"}]})) == [
        "spec.workerGroups: group name cpu is used more than once: each group name must be unique"
    ]
    assert validate(cluster({"networkPolicy": {"metricsFrom": [{}, {"ipBlock": {"cidr": "10.0.0.0/8"}}, {}]}})) == [
        "spec.networkPolicy.metricsFrom: 2 of 3 peers have no podSelector, namespaceSelector or ipBlock: "
        "each needs one"
    ]
    assert validate(cluster({}, name="1cluster")) == [
        "metadata.name: name 1cluster is not a DNS label of at most 50 characters starting with a letter "
        "(the Service 1cluster-head and the worker pod names are made from it)"
    ]


def test_a_failing_message_expression_falls_back_to_the_message() -> None:
    """As the API server does: the static message when the expression cannot be evaluated."""
    rule = {"rule": "self.x > 0", "message": "x must be positive", "messageExpression": '"x is " + self.missing'}
    assert rule_message(rule, {"x": 0}) == "x must be positive"


def test_cel_rules_on_self() -> None:
    """The rules evaluated directly, including where the schema alone would let a spec pass."""
    schema = root_schema()["properties"]["spec"]["properties"]["workerGroups"]
    (unique,) = schema["x-kubernetes-validations"]
    item_rules = {r["fieldPath"]: r["rule"] for r in schema["items"]["x-kubernetes-validations"]}

    def holds(rule: str, value: Any) -> bool:
        environment = celpy.Environment()
        return bool(environment.program(environment.compile(rule)).evaluate({"self": celpy.json_to_cel(value)}))

    assert holds(unique["rule"], [{"name": "a"}, {"name": "b"}])
    assert not holds(unique["rule"], [{"name": "a"}, {"name": "a"}])
    assert holds(unique["rule"], [])
    assert holds(item_rules[".minReplicas"], {"minReplicas": 2, "maxReplicas": 2})
    assert not holds(item_rules[".minReplicas"], {"minReplicas": 3, "maxReplicas": 2})
    assert holds(item_rules[".replicas"], {"minReplicas": 0, "maxReplicas": 2})
    assert holds(item_rules[".replicas"], {"replicas": 2, "minReplicas": 0, "maxReplicas": 2})
    assert not holds(item_rules[".replicas"], {"replicas": 3, "minReplicas": 0, "maxReplicas": 2})
    assert not holds(item_rules[".replicas"], {"replicas": 0, "minReplicas": 1, "maxReplicas": 2})


SPECS = [
    {},
    {"head": {"resources": {"cpu": "2"}, "stateVolume": {}}, "workerGroups": [{"name": "a"}]},
    {"workerGroups": [{"name": "a", "resources": {"gpu": 1}, "scaleStrategy": {}}], "autoscaling": {"enabled": True}},
    {"auth": {}, "tls": {"secretName": "t"}, "head": {"ports": {"client": 1}, "template": {"env": []}}},
    {"networkPolicy": {}},
    {"networkPolicy": {"enabled": False, "clientFrom": [{"namespaceSelector": {}}], "metricsFrom": []}},
] + [yaml.safe_load(p.read_text())["spec"] for p in EXAMPLES]


@pytest.mark.parametrize("spec", SPECS)
def test_operator_defaults_are_the_crds(spec: dict[str, Any]) -> None:
    schema = root_schema()["properties"]["spec"]
    assert cluster_spec.with_defaults(spec) == apply_defaults(schema, copy.deepcopy(spec))


def test_the_security_page_lists_exactly_the_template_fields_the_crd_allows() -> None:
    """The security model's promise: what a Cluster author can put in a pod, and no more."""
    spec = root_schema()["properties"]["spec"]["properties"]
    head = set(spec["head"]["properties"]["template"]["properties"])
    worker = set(spec["workerGroups"]["items"]["properties"]["template"]["properties"])
    assert head == worker
    page = " ".join((REPO / "docs" / "security.md").read_text().split())
    said = page.split("The CRD's schema allows only these template fields: ", 1)[1].split(";", 1)[0]
    assert {field.strip() for field in said.split(",")} == head
    for absent in ("securityContext", "hostNetwork", "hostPID", "hostIPC", "privileged"):
        assert absent not in head
