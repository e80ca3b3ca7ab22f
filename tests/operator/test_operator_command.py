"""``ember operator``'s command line: what it refuses before kopf starts."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


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


def test_templates_are_restricted_or_unrestricted() -> None:
    out = ember("--namespace", "a", "--templates", "anything-goes")
    assert out.returncode == 2 and "restricted" in out.stderr


def test_the_operator_peer_comes_from_the_pods_namespace_and_labels() -> None:
    from ember.operator.operator_main import operator_peer

    assert operator_peer({}) is None
    assert operator_peer({"POD_NAMESPACE": "ember-system"}) is None
    given = {"POD_NAMESPACE": "ember-system",
             "EMBER_OPERATOR_POD_LABELS": "app.kubernetes.io/name=ember,app.kubernetes.io/component=operator"}
    assert operator_peer(given) == {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ember-system"}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "ember",
                                        "app.kubernetes.io/component": "operator"}},
    }
    with pytest.raises(ValueError, match="EMBER_OPERATOR_POD_LABELS=.*'oops' is not key=value"):
        operator_peer({"POD_NAMESPACE": "x", "EMBER_OPERATOR_POD_LABELS": "a=b,oops"})


def test_a_bad_operator_label_list_is_said_before_kopf_starts() -> None:
    env_out = subprocess.run(
        [sys.executable, "-m", "ember.cli", "operator", "--namespace", "a", "--metrics-port", "0",
         "--health-port", "0"],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "KUBECONFIG": "/nonexistent/kubeconfig", "POD_NAMESPACE": "x",
             "EMBER_OPERATOR_POD_LABELS": "nolabel"},
    )
    assert env_out.returncode == 2 and "EMBER_OPERATOR_POD_LABELS" in env_out.stderr
