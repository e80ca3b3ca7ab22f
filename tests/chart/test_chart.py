"""The Helm chart: lint, what it renders with default and other values, and the Kubernetes
schemas every rendered object must satisfy (offline, with kubernetes-validate)."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.chart.conftest import (
    CHART,
    KUBERNETES_VERSION,
    REPO,
    Objects,
    by_kind,
    one,
    run_helm,
    write_values,
)

# Everything that is not a default, at once: namespaced RBAC, peering, the monitors, the
# dashboard, a private image and other resources.
NON_DEFAULT: dict[str, Any] = {
    "replicas": 2,
    "watchNamespaces": ["team-a", "team-b"],
    "image": {"repository": "registry.example.com/ml/ember", "tag": "0.1.0-rc1",
              "pullPolicy": "Always"},
    "imagePullSecrets": [{"name": "registry-login"}],
    "resources": {"requests": {"cpu": "250m", "memory": "256Mi"},
                  "limits": {"cpu": 1, "memory": "512Mi"}},
    "serviceMonitor": {"enabled": True, "interval": "15s", "labels": {"release": "prom"}},
    "podMonitor": {"enabled": True, "labels": {"release": "prom"}},
    "grafanaDashboard": {"enabled": True, "namespace": "monitoring"},
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ops",
                     "effect": "NoSchedule"}],
    "priorityClassName": "system-cluster-critical",
    "podAnnotations": {"example.com/team": "ml"},
    "operator": {"extraEnv": [{"name": "EMBER_LOG_LEVEL", "value": "debug"}]},
}

# Kinds whose schemas are CRDs of other projects, not in kubernetes-validate: checked by shape.
CUSTOM_KINDS = {"ServiceMonitor", "PodMonitor", "ClusterKopfPeering", "KopfPeering"}
CLUSTER_SCOPED = {"ClusterRole", "ClusterRoleBinding", "ClusterKopfPeering", "Namespace",
                  "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding",
                  "CustomResourceDefinition"}


def operator_container(objects: Objects) -> dict[str, Any]:
    containers = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["operator"]
    return containers[0]


def test_chart_versions_follow_the_package():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    package = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert chart["apiVersion"] == "v2"
    assert chart["appVersion"] == package
    assert chart["version"] == package


@pytest.mark.parametrize("values", [None, NON_DEFAULT], ids=["defaults", "non-default"])
def test_helm_lint_passes_strictly(helm: str, tmp_path: Path, values: dict[str, Any] | None):
    args = ["lint", str(CHART), "--strict"]
    if values is not None:
        args += ["--values", str(write_values(tmp_path, values))]
    result = run_helm(helm, *args)
    assert "0 chart(s) failed" in result.stdout


def test_defaults_render_the_operator_watching_all_namespaces(render: Callable[..., Objects]):
    objects = render()
    assert sorted(o["kind"] for o in objects) == [
        "ClusterRole", "ClusterRoleBinding", "Deployment", "Service", "ServiceAccount",
        "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding",
    ]
    for o in objects:
        if o["kind"] not in CLUSTER_SCOPED:
            assert o["metadata"]["namespace"] == "ember-system", o["metadata"]["name"]
    deployment = one(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    container = operator_container(objects)
    assert container["image"] == "ember:0.1.0"
    assert container["command"] == ["ember"]
    assert container["args"] == [
        "operator", "--all-namespaces", "--metrics-port", "8080", "--health-port", "8081",
        "--templates", "restricted",
    ]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"metrics": 8080, "health": 8081}
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["resources"]["requests"] and container["resources"]["limits"]


def test_operator_runs_locked_down(render: Callable[..., Objects]):
    objects = render()
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 1000
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    container = operator_container(objects)
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert pod["serviceAccountName"] == one(objects, "ServiceAccount")["metadata"]["name"]


def test_metrics_service_selects_the_operator_and_no_cluster_pod(render: Callable[..., Objects]):
    objects = render()
    service = one(objects, "Service")
    selector = service["spec"]["selector"]
    pod_labels = one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= pod_labels.items()
    assert [(p["name"], p["targetPort"]) for p in service["spec"]["ports"]] == [
        ("metrics", "metrics")
    ]
    # The labels the operator puts on the head pod of a Cluster named like the release.
    head_pod_labels = {
        "ember.dev/cluster": "ember", "ember.dev/node-type": "head",
        "app.kubernetes.io/name": "ember", "app.kubernetes.io/instance": "ember",
        "app.kubernetes.io/managed-by": "ember-operator",
    }
    assert not selector.items() <= head_pod_labels.items()


def test_non_default_values_render_what_they_ask_for(render: Callable[..., Objects]):
    objects = render(NON_DEFAULT)
    deployment = one(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"] == {"type": "RollingUpdate"}
    pod = deployment["spec"]["template"]["spec"]
    assert pod["imagePullSecrets"] == [{"name": "registry-login"}]
    assert pod["nodeSelector"] == NON_DEFAULT["nodeSelector"]
    assert pod["tolerations"] == NON_DEFAULT["tolerations"]
    assert pod["priorityClassName"] == "system-cluster-critical"
    assert deployment["spec"]["template"]["metadata"]["annotations"]["example.com/team"] == "ml"
    container = operator_container(objects)
    assert container["image"] == "registry.example.com/ml/ember:0.1.0-rc1"
    assert container["imagePullPolicy"] == "Always"
    assert container["resources"] == NON_DEFAULT["resources"]
    assert container["args"][:5] == ["operator", "--namespace", "team-a", "--namespace", "team-b"]
    assert "--all-namespaces" not in container["args"]
    env = {e["name"]: e for e in container["env"]}
    assert env["EMBER_LOG_LEVEL"]["value"] == "debug"
    assert env["POD_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    # One peering object per watched namespace, so the two replicas see each other.
    peerings = by_kind(objects, "KopfPeering")
    assert sorted((p["metadata"]["namespace"], p["metadata"]["name"]) for p in peerings) == [
        ("team-a", "default"), ("team-b", "default"),
    ]
    assert by_kind(objects, "ClusterKopfPeering") == []


def test_several_replicas_watching_all_namespaces_peer_cluster_wide(
    render: Callable[..., Objects],
):
    objects = render({"replicas": 3})
    assert [p["metadata"]["name"] for p in by_kind(objects, "ClusterKopfPeering")] == ["default"]
    assert by_kind(objects, "KopfPeering") == []
    assert by_kind(render(), "ClusterKopfPeering") == []


def test_peering_crds_ship_with_the_chart():
    names = {
        doc["metadata"]["name"]: doc["spec"]
        for path in (CHART / "crds").glob("*.yaml")
        for doc in yaml.safe_load_all(path.read_text()) if doc
    }
    assert names["clusterkopfpeerings.kopf.dev"]["scope"] == "Cluster"
    assert names["kopfpeerings.kopf.dev"]["scope"] == "Namespaced"


def test_service_monitor_scrapes_the_operators_metrics_service(render: Callable[..., Objects]):
    objects = render(NON_DEFAULT)
    monitor = one(objects, "ServiceMonitor")
    service = one(objects, "Service")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["ember-system"]}
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["interval"] == "15s"
    assert by_kind(render(), "ServiceMonitor") == []


def test_pod_monitor_scrapes_every_ember_pod_of_the_watched_namespaces(
    render: Callable[..., Objects],
):
    monitor = one(render(NON_DEFAULT), "PodMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["spec"]["selector"] == {
        "matchExpressions": [{"key": "ember.dev/cluster", "operator": "Exists"}]
    }
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["team-a", "team-b"]}
    endpoints = monitor["spec"]["podMetricsEndpoints"]
    assert [e["port"] for e in endpoints] == ["metrics", "node-metrics"]
    for endpoint in endpoints:
        targets = {r["targetLabel"]: r["sourceLabels"] for r in endpoint["relabelings"]}
        assert targets["ember_cluster"] == ["__meta_kubernetes_pod_label_ember_dev_cluster"]
        # The pods of TLS Clusters (the operator labels them) serve HTTPS.
        (https,) = [r for r in endpoint["relabelings"] if r["targetLabel"] == "__scheme__"]
        assert https == {"sourceLabels": ["__meta_kubernetes_pod_label_ember_dev_tls"], "regex": "true",
                         "targetLabel": "__scheme__", "replacement": "https"}
        assert endpoint["tlsConfig"] == {"insecureSkipVerify": True}
    everywhere = one(render({"podMonitor": {"enabled": True}}), "PodMonitor")
    assert everywhere["spec"]["namespaceSelector"] == {"any": True}


def test_grafana_dashboard_configmap_holds_the_dashboard(render: Callable[..., Objects]):
    configmap = one(render(NON_DEFAULT), "ConfigMap")
    assert configmap["metadata"]["namespace"] == "monitoring"
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(configmap["data"]["ember-dashboard.json"])
    original = json.loads((REPO / "manifests/grafana/ember-dashboard.json").read_text())
    assert dashboard == original
    assert by_kind(render(), "ConfigMap") == []


def test_release_name_and_overrides_name_the_objects(render: Callable[..., Objects]):
    names = {o["kind"]: o["metadata"]["name"] for o in render(release="ml")}
    assert names["Deployment"] == "ml-ember-operator"
    names = {o["kind"]: o["metadata"]["name"] for o in render({"fullnameOverride": "x"})}
    assert names["Deployment"] == "x-operator"
    assert names["Service"] == "x-operator-metrics"


def kubernetes_objects(objects: Objects) -> Objects:
    return [o for o in objects if o["kind"] not in CUSTOM_KINDS]


@pytest.mark.parametrize("values", [None, NON_DEFAULT], ids=["defaults", "non-default"])
def test_every_rendered_object_matches_the_kubernetes_schema(
    render: Callable[..., Objects], values: dict[str, Any] | None
):
    objects = kubernetes_objects(render(values))
    assert objects
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            where = "/".join(str(p) for p in error.absolute_path)
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']} at {where}: {error.message}")


def test_chart_crds_match_the_kubernetes_schema():
    crds = [
        doc for path in sorted((CHART / "crds").glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text()) if doc
    ]
    assert crds
    for crd in crds:
        assert crd["kind"] == "CustomResourceDefinition"
        kubernetes_validate.validate(crd, KUBERNETES_VERSION, strict=True)


def test_schema_validation_catches_a_wrong_object(render: Callable[..., Objects]):
    """The check above can fail: a misspelt field in the Deployment is refused."""
    deployment = one(render(), "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError, match="readinesProbe"):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"replicas": "two"}, "/replicas"),
        ({"replicas": 0}, "/replicas"),
        ({"watchNamespaces": ["Team_A"]}, "/watchNamespaces/0"),
        ({"serviceMonitor": {"enabeld": True}}, "enabeld"),
        ({"image": {"repository": "ember", "pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
        ({"resources": {"limits": {"memory": "lots"}}}, "/resources/limits/memory"),
        ({"podMonitor": {"interval": "often"}}, "/podMonitor/interval"),
        ({"replica": 2}, "replica"),
    ],
)
def test_bad_values_are_refused_naming_the_field(
    helm: str, tmp_path: Path, values: dict[str, Any], named: str
):
    result = run_helm(
        helm, "template", "ember", str(CHART), "--values", str(write_values(tmp_path, values)),
        check=False,
    )
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert named in result.stderr, result.stderr


def test_notes_say_what_to_do_next(helm: str, tmp_path: Path):
    example = yaml.safe_load((REPO / "manifests/examples/cluster.yaml").read_text())
    assert example["metadata"]["name"] == "small"  # the name the notes use
    result = run_helm(
        helm, "install", "ember", str(CHART), "--namespace", "ember-system", "--dry-run=client",
        "--values", str(write_values(tmp_path, {"watchNamespaces": ["team-a"]})),
    )
    notes = result.stdout.split("NOTES:", 1)[1]
    assert "watching namespaces team-a" in notes
    assert "kubectl -n team-a apply -f manifests/examples/" in notes
    assert "ember token small" in notes
    assert "port-forward svc/small-head 10001" in notes
    assert 'ember.init("ember://localhost:10001")' in notes
    assert "kubectl apply --server-side -f charts/ember/crds/" in notes
    assert "kubectl delete clusters.ember.dev --all -A --wait" in notes
