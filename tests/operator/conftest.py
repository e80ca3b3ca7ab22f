"""Fixtures shared by the operator's scenario tests."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.chart.conftest import CHART, find_helm


@pytest.fixture(scope="module")
def granted() -> Iterator[list[dict[str, Any]]]:
    """The rules of the chart's default ClusterRole (the operator watching every namespace)."""
    helm = find_helm()
    if helm is None:
        pytest.fail("helm not found: run `make kube-tools`")
    out = subprocess.run([helm, "template", "ember", str(CHART), "--namespace", "ember-system"],
                         capture_output=True, text=True, check=True, timeout=120).stdout
    (role,) = [d for d in yaml.safe_load_all(out) if d and d["kind"] == "ClusterRole"]
    yield role["rules"]
