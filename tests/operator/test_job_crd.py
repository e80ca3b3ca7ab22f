"""The EmberJob CRD: its examples validate, bad specs are refused naming the field (schema and
CEL, as the API server applies them), its clusterSpec is exactly the Cluster's spec, and the
operator's defaults are the CRD's."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import celpy
import pytest
import yaml

from ember.operator import job_spec
from tests.operator.crd_schema import (
    JOB_CRD_PATH,
    REPO,
    apply_defaults,
    cel_rules,
    example,
    examples,
    field_path_parts,
    load_crd,
    root_schema,
    validate,
)

INVALID = yaml.safe_load((Path(__file__).parent / "invalid_jobs.yaml").read_text())
EXAMPLES = examples("EmberJob")


def ejob(spec: Any, name: str = "j") -> dict[str, Any]:
    return {"apiVersion": "ember.dev/v1alpha1", "kind": "EmberJob", "metadata": {"name": name}, "spec": spec}


def check(obj: dict[str, Any]) -> list[str]:
    return validate(obj, JOB_CRD_PATH)


def test_crd_shape() -> None:
    crd = load_crd(JOB_CRD_PATH)
    assert crd["metadata"]["name"] == "emberjobs.ember.dev"
    names = crd["spec"]["names"]
    assert (names["kind"], names["plural"], names["shortNames"]) == ("EmberJob", "emberjobs", ["ej"])
    (version,) = crd["spec"]["versions"]
    assert version["name"] == "v1alpha1" and version["subresources"] == {"status": {}}
    assert [c["name"] for c in version["additionalPrinterColumns"]] == [
        "Job Status", "Deployment Status", "Cluster", "Attempt", "Start", "End", "Age"]
    assert len(json.dumps(crd)) < 256 * 1024  # kubectl apply's last-applied annotation


def test_the_crd_yaml_has_no_anchors() -> None:
    events = yaml.parse(JOB_CRD_PATH.read_text())
    assert not any(isinstance(e, yaml.AliasEvent) or getattr(e, "anchor", None) for e in events)


def test_cluster_spec_is_the_clusters_spec() -> None:
    """The API server checks a job's clusterSpec as it checks a Cluster (make manifests copies it)."""
    cluster = copy.deepcopy(root_schema()["properties"]["spec"])
    mine = copy.deepcopy(root_schema(JOB_CRD_PATH)["properties"]["spec"]["properties"]["clusterSpec"])
    cluster.pop("description")
    mine.pop("description")
    assert mine == cluster, "clusterSpec differs from clusters.ember.dev's spec: run `make manifests`"


def test_every_field_is_described() -> None:
    def walk(schema: dict[str, Any], where: str) -> list[str]:
        missing = []
        for key, sub in (schema.get("properties") or {}).items():
            path = f"{where}.{key}"
            if "description" not in sub:
                missing.append(path)
            missing += walk(sub, path)
        return missing

    spec = copy.deepcopy(root_schema(JOB_CRD_PATH)["properties"]["spec"])
    spec["properties"]["clusterSpec"].pop("properties")  # the Cluster CRD's own test covers it
    assert walk(spec, "spec") == []


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_validate(path: Path) -> None:
    assert check(example(path, "EmberJob")) == []


def test_the_examples_show_both_kinds_of_cluster_and_both_submission_modes() -> None:
    specs = [example(path, "EmberJob")["spec"] for path in EXAMPLES]
    assert {"clusterSpec" in s for s in specs} == {True, False}
    assert {s.get("submissionMode", "SubmitterJob") for s in specs} == {"SubmitterJob", "Operator"}
    config_maps = [d for p in EXAMPLES for d in yaml.safe_load_all(p.read_text()) if d and d["kind"] == "ConfigMap"]
    assert config_maps, "the ConfigMap working_dir example carries its ConfigMap"


@pytest.mark.parametrize("case", INVALID, ids=lambda c: c["why"])
def test_invalid_specs_are_refused_naming_the_field(case: dict[str, Any]) -> None:
    errors = check(ejob(case["spec"], case.get("name", "j")))
    assert errors, f"accepted: {case['spec']}"
    assert any(_names(error, case["field"]) for error in errors), errors


def _names(error: str, field: str) -> bool:
    where, _, _ = error.partition(": ")
    return where == field or where.startswith((field + ".", field + "["))


def test_messages_carry_the_bad_value() -> None:
    assert check(ejob({"entrypoint": "x", "clusterSpec": {}, "clusterSelector": {"name": "small"}})) == [
        "spec: both spec.clusterSpec and spec.clusterSelector are given: give exactly one (a Cluster made for "
        "the job, or an existing one)"
    ]
    assert check(ejob({"entrypoint": "x", "clusterSelector": {"name": "small"}, "shutdownAfterJobFinishes": True})) == [
        "spec.shutdownAfterJobFinishes: shutdownAfterJobFinishes is true, but the job runs on Cluster small "
        "(clusterSelector), which is not the job's to delete: only a Cluster made from clusterSpec is"
    ]
    assert check(ejob({"entrypoint": "x", "clusterSpec": {}, "ttlSecondsAfterFinished": 30})) == [
        "spec.ttlSecondsAfterFinished: ttlSecondsAfterFinished is 30 but shutdownAfterJobFinishes is false: "
        "the TTL is how long the job's Cluster outlives the job"
    ]
    assert check(ejob({"entrypoint": "x", "clusterSelector": {"name": "s"}}, name="a" * 41)) == [
        f"metadata.name: name {'a' * 41} is not a DNS label of at most 40 characters starting with a letter "
        f"(the job's Clusters are named {'a' * 41}-<attempt>)"
    ]


def test_valid_specs_pass() -> None:
    assert check(ejob({"entrypoint": "python x.py", "clusterSelector": {"name": "small"}})) == []
    assert check(ejob({
        "entrypoint": "python -m p", "clusterSpec": {"workerGroups": [{"name": "cpu", "replicas": 1}]},
        "runtimeEnv": {"workingDir": {"configMap": "code"}, "envVars": {"A": "1"}, "pip": ["requests"],
                       "config": {"setupTimeoutSeconds": 600}},
        "shutdownAfterJobFinishes": True, "ttlSecondsAfterFinished": 10, "activeDeadlineSeconds": 60,
        "backoffLimit": 2, "suspend": True, "submissionMode": "Operator", "entrypointNumCpus": 1,
        "entrypointMemory": "1Gi", "entrypointResources": {"disk": 1}, "metadata": {"team": "ml"},
    })) == []


def test_cel_rules_compile_and_have_valid_field_paths() -> None:
    rules = cel_rules(root_schema(JOB_CRD_PATH))
    own = [r for r in rules if r not in cel_rules(root_schema())]
    assert len(own) >= 6
    for rule in own:
        environment = celpy.Environment()
        environment.program(environment.compile(rule["rule"]))
        if "messageExpression" in rule:
            environment.program(environment.compile(rule["messageExpression"]))
    spec = root_schema(JOB_CRD_PATH)["properties"]["spec"]
    for rule in spec["x-kubernetes-validations"]:
        if rule.get("fieldPath"):
            field_path_parts(spec, rule["fieldPath"])


SPECS = [
    {"entrypoint": "x", "clusterSelector": {"name": "s"}},
    {"entrypoint": "x", "clusterSpec": {}, "backoffLimit": 3, "suspend": True},
    {"entrypoint": "x", "clusterSpec": {}, "shutdownAfterJobFinishes": True, "ttlSecondsAfterFinished": 5,
     "submissionMode": "Operator"},
] + [example(p, "EmberJob")["spec"] for p in EXAMPLES]


@pytest.mark.parametrize("spec", SPECS)
def test_operator_defaults_are_the_crds(spec: dict[str, Any]) -> None:
    schema = copy.deepcopy(root_schema(JOB_CRD_PATH)["properties"]["spec"])
    schema["properties"].pop("clusterSpec")  # a Cluster's defaults apply when the Cluster is made
    assert job_spec.with_defaults(spec) == apply_defaults(schema, copy.deepcopy(spec))


def test_the_readme_points_at_the_jobs_page() -> None:
    assert "docs/jobs.md" in (REPO / "README.md").read_text()
