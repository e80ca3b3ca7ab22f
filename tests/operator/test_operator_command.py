"""``ember operator``'s command line: what it refuses before kopf starts."""

from __future__ import annotations

import os
import subprocess
import sys


def ember(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": "/nonexistent/kubeconfig"}
    env.pop("KUBERNETES_SERVICE_HOST", None)
    return subprocess.run(
        [sys.executable, "-m", "ember.cli", "operator", *args],
        capture_output=True, text=True, timeout=60, env=env,
    )


def test_it_needs_namespaces_or_all_of_them() -> None:
    out = ember()
    assert out.returncode == 2 and "--namespace NS" in out.stderr
    out = ember("--namespace", "a", "--all-namespaces")
    assert out.returncode == 2


def test_without_a_kubernetes_api_it_says_so() -> None:
    out = ember("--namespace", "a", "--metrics-port", "0", "--health-port", "0")
    assert out.returncode == 1
    assert "no Kubernetes API to talk to" in out.stderr
