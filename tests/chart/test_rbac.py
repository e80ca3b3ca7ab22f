"""The operator's RBAC grants what the shared contract says `ember operator` needs, in both
modes (all namespaces, or a list of them), and no namespaced write outside the watched ones."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import yaml

from tests.chart.conftest import CHART, Objects, by_kind, one

# What the operator (kopf included) does in a namespace it serves, verb by verb: exactly what
# tests/operator/test_operator_security.py sees it do over a Cluster's whole life, plus kopf's
# peering (its scenarios run kopf standalone). Secrets: read (the token and TLS Secrets a
# Cluster names) and create (the token Secret); never list, watch, patch or delete.
NAMESPACED_NEEDS = [
    # An EmberJob's own Cluster is made and deleted by the operator.
    ("ember.dev", "clusters", {"get", "list", "watch", "patch", "create", "delete"}),
    ("ember.dev", "clusters/status", {"patch"}),
    ("ember.dev", "emberjobs", {"get", "list", "watch", "patch"}),
    ("ember.dev", "emberjobs/status", {"patch"}),
    # blockOwnerDeletion on children, under OwnerReferencesPermissionEnforcement
    ("ember.dev", "clusters/finalizers", {"update"}),
    ("ember.dev", "emberjobs/finalizers", {"update"}),
    # An EmberJob's submitter (submissionMode SubmitterJob) and its ConfigMap working_dir.
    ("batch", "jobs", {"get", "list", "create", "delete"}),
    ("", "configmaps", {"get"}),
    ("", "pods", {"list", "watch", "create", "delete"}),
    ("", "services", {"list", "create", "delete"}),
    ("", "secrets", {"get", "create"}),
    ("", "persistentvolumeclaims", {"list", "create"}),
    ("networking.k8s.io", "networkpolicies", {"list", "create", "patch", "delete"}),
    ("", "events", {"create"}),
    ("kopf.dev", "kopfpeerings", {"get", "list", "watch", "patch"}),
]
CLUSTER_WIDE_NEEDS = [
    ("apiextensions.k8s.io", "customresourcedefinitions", {"get", "list", "watch"}),
    ("", "namespaces", {"get", "list", "watch"}),
]
ALL_NAMESPACES_NEEDS = [("kopf.dev", "clusterkopfpeerings", {"get", "list", "watch", "patch"})]


def granted(rules: list[dict[str, Any]], group: str, resource: str) -> set[str]:
    verbs: set[str] = set()
    for rule in rules:
        if group in rule.get("apiGroups", []) and resource in rule.get("resources", []):
            verbs |= set(rule["verbs"])
    return verbs


def assert_grants(rules: list[dict[str, Any]], needs: list[tuple[str, str, set[str]]], where: str):
    for group, resource, verbs in needs:
        missing = verbs - granted(rules, group, resource)
        assert not missing, f"{where} lacks {sorted(missing)} on {group or 'core'}/{resource}"


def assert_bound_to_operator(binding: dict[str, Any], role: dict[str, Any], objects: Objects):
    account = one(objects, "ServiceAccount")["metadata"]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io", "kind": role["kind"],
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["name"], "namespace": account["namespace"]}
    ]
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == account["name"]


def test_all_namespaces_one_cluster_role_grants_everything(render: Callable[..., Objects]):
    objects = render()
    role = one(objects, "ClusterRole")
    assert_grants(role["rules"], NAMESPACED_NEEDS + CLUSTER_WIDE_NEEDS + ALL_NAMESPACES_NEEDS,
                  "ClusterRole")
    assert_bound_to_operator(one(objects, "ClusterRoleBinding"), role, objects)
    assert by_kind(objects, "Role") == [] and by_kind(objects, "RoleBinding") == []


def test_listed_namespaces_get_a_role_each_and_the_cluster_role_only_reads(
    render: Callable[..., Objects],
):
    objects = render({"watchNamespaces": ["team-a", "team-b"]})
    roles = {r["metadata"]["namespace"]: r for r in by_kind(objects, "Role")}
    bindings = {b["metadata"]["namespace"]: b for b in by_kind(objects, "RoleBinding")}
    assert sorted(roles) == sorted(bindings) == ["team-a", "team-b"]
    for namespace, role in roles.items():
        assert_grants(role["rules"], NAMESPACED_NEEDS, f"Role in {namespace}")
        assert_bound_to_operator(bindings[namespace], role, objects)
    cluster_role = one(objects, "ClusterRole")
    assert_grants(cluster_role["rules"], CLUSTER_WIDE_NEEDS, "ClusterRole")
    assert_bound_to_operator(one(objects, "ClusterRoleBinding"), cluster_role, objects)
    # Nothing but reads cluster-wide: no pod, secret or Cluster outside team-a and team-b.
    for rule in cluster_role["rules"]:
        assert set(rule["verbs"]) <= {"get", "list", "watch"}, rule
        assert not {"pods", "secrets", "clusters", "emberjobs", "jobs", "configmaps"} & set(rule["resources"]), rule


@pytest.mark.parametrize("values", [{}, {"watchNamespaces": ["team-a"]}], ids=["all", "listed"])
def test_no_wildcards(render: Callable[..., Objects], values: dict[str, Any]):
    for role in by_kind(render(values), "ClusterRole") + by_kind(render(values), "Role"):
        for rule in role["rules"]:
            for key in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[key], (role["metadata"]["name"], rule)


def test_rules_come_from_one_definition(render: Callable[..., Objects]):
    """The namespaced Role holds exactly the namespaced rules of the all-namespaces ClusterRole."""
    cluster_wide = one(render(), "ClusterRole")["rules"]
    role = by_kind(render({"watchNamespaces": ["team-a"]}), "Role")[0]["rules"]
    assert all(rule in cluster_wide for rule in role)


def test_rbac_can_be_left_to_an_admin(render: Callable[..., Objects]):
    objects = render({"rbac": {"create": False}})
    for kind in ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"):
        assert by_kind(objects, kind) == []


@pytest.mark.parametrize("crd_file", ["clusters.ember.dev.yaml", "emberjobs.ember.dev.yaml"])
def test_rules_name_the_resource_the_crd_defines(render: Callable[..., Objects], crd_file: str):
    crd = yaml.safe_load((CHART / "crds" / crd_file).read_text())
    group, plural = crd["spec"]["group"], crd["spec"]["names"]["plural"]
    assert all("status" in v.get("subresources", {}) for v in crd["spec"]["versions"])
    rules = one(render(), "ClusterRole")["rules"]
    assert {"get", "list", "watch", "patch"} <= granted(rules, group, plural)
    assert {"patch"} <= granted(rules, group, f"{plural}/status")


@pytest.mark.parametrize("values", [{}, {"watchNamespaces": ["team-a"]}], ids=["all", "listed"])
def test_no_verb_the_operator_does_not_use(render: Callable[..., Objects], values: dict[str, Any]):
    """Every (resource, verb) granted is one of the needs: a Secret the operator may only read
    and create, a pod it never patches, no events.k8s.io it never posts to."""
    needs = {(g, r, v) for g, r, verbs in NAMESPACED_NEEDS + CLUSTER_WIDE_NEEDS + ALL_NAMESPACES_NEEDS
             for v in verbs}
    for role in by_kind(render(values), "ClusterRole") + by_kind(render(values), "Role"):
        for rule in role["rules"]:
            extra = {(g, r, v) for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]} - needs
            assert not extra, f"{role['kind']} {role['metadata']['name']} grants {sorted(extra)}, used by nothing"
