"""manifests/: what `kubectl apply -f manifests/` installs is what the chart renders with default
values, and the committed files are what `make manifests` would write now."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import kubernetes_validate
import yaml

from tests.chart.conftest import CHART, KUBERNETES_VERSION, REPO

MANIFESTS = REPO / "manifests"


def render_manifests_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "render_manifests", REPO / "tools" / "render_manifests.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def test_committed_manifests_are_what_make_manifests_generates(helm: str):
    result = subprocess.run(
        [sys.executable, str(REPO / "tools" / "render_manifests.py"), "--check"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PATH": os.pathsep.join([str(Path(helm).parent), os.environ["PATH"]])},
    )
    assert result.returncode == 0, (
        "the committed manifests differ from the chart: run `make manifests`\n" + result.stdout
        + result.stderr
    )


def test_drift_check_notices_an_edited_file(helm: str, tmp_path: Path):
    """The check above can fail: an edit of the chart, not regenerated, is a drift."""
    module = render_manifests_module()
    repo = tmp_path / "repo"
    shutil.copytree(CHART, repo / "charts" / "ember")
    shutil.copytree(MANIFESTS, repo / "manifests")
    assert module.drift(repo, module.generated(repo, helm)) == ""
    values = repo / "charts" / "ember" / "values.yaml"
    values.write_text(values.read_text().replace("replicas: 1", "replicas: 2", 1))
    diff = module.drift(repo, module.generated(repo, helm))
    assert "manifests/operator.yaml (generated)" in diff
    assert "+  replicas: 2" in diff


def test_operator_manifest_creates_its_namespace_first():
    objects = load(MANIFESTS / "operator.yaml")
    assert objects[0]["kind"] == "Namespace"
    assert objects[0]["metadata"]["name"] == "ember-system"
    kinds = {o["kind"] for o in objects}
    assert {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Deployment",
            "Service"} <= kinds
    for obj in objects[1:]:
        if obj["kind"] not in {"ClusterRole", "ClusterRoleBinding", "ValidatingAdmissionPolicy",
                               "ValidatingAdmissionPolicyBinding"}:
            assert obj["metadata"]["namespace"] == "ember-system", obj["metadata"]["name"]


def test_crd_manifest_holds_every_chart_crd():
    shipped = {o["metadata"]["name"] for o in load(MANIFESTS / "crd.yaml")}
    in_chart = {
        o["metadata"]["name"] for path in (CHART / "crds").glob("*.yaml") for o in load(path)
    }
    assert shipped == in_chart
    assert "kopfpeerings.kopf.dev" in shipped


def test_every_top_level_manifest_matches_the_kubernetes_schema():
    """What `kubectl apply -f manifests/` sends, checked offline. (`kubectl apply
    --dry-run=client` cannot stand in: it asks an API server for the resource mapping.)"""
    files = sorted(MANIFESTS.glob("*.yaml"))
    assert [f.name for f in files] == ["crd.yaml", "operator.yaml"]
    for path in files:
        for obj in load(path):
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
