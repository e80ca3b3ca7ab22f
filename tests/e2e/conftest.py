"""The kind suite's setting: a kind cluster with ember's image loaded and its chart installed.

Skipped, saying why, where kind, kubectl, helm or a container engine is missing (``make test``
on a laptop or in CI); ``make kind-e2e`` runs it. Set ``EMBER_E2E_KEEP=1`` to keep the kind
cluster afterwards for a look around, and ``EMBER_E2E_KIND_CLUSTER`` to use another name.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest

from tests.e2e import kube

REASON = kube.missing_tools()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if not REASON:
        return
    skip = pytest.mark.skip(reason=REASON)
    for item in items:
        if "tests/e2e/" in str(item.path).replace(os.sep, "/"):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def kind() -> Iterator[None]:
    """Create the kind cluster (or reuse one of that name), build and load the image, install
    the chart; remove what was made at the end."""
    created = kube.KIND_CLUSTER not in kube.run("kind", "get", "clusters").split()
    if created:
        kube.run("kind", "create", "cluster", "--name", kube.KIND_CLUSTER, "--wait", "120s", timeout=900)
    try:
        engine = kube.tool("docker") or kube.tool("podman") or "docker"
        subprocess.run([engine, "build", "-t", kube.IMAGE, str(kube.REPO)], check=True, timeout=1800)
        kube.run("kind", "load", "docker-image", kube.IMAGE, "--name", kube.KIND_CLUSTER, timeout=600)
        kube.run(
            "helm", "upgrade", "--install", "ember", str(kube.REPO / "charts" / "ember"),
            "--kube-context", f"kind-{kube.KIND_CLUSTER}",
            "--namespace", kube.OPERATOR_NAMESPACE, "--create-namespace",
            "--set", "image.repository=ember", "--set", "image.tag=e2e",
            "--set", "image.pullPolicy=Never", "--wait", "--timeout", "5m",
            timeout=600,
        )
        kube.kubectl("create", "namespace", kube.NAMESPACE, check=False)
        yield
    finally:
        kube.kubectl("delete", "namespace", kube.NAMESPACE, "--wait=true", "--timeout=180s", check=False)
        if os.environ.get("EMBER_E2E_KEEP") != "1":
            kube.run("helm", "uninstall", "ember", "--kube-context", f"kind-{kube.KIND_CLUSTER}",
                     "-n", kube.OPERATOR_NAMESPACE, check=False)
            if created:
                kube.run("kind", "delete", "cluster", "--name", kube.KIND_CLUSTER, check=False)
