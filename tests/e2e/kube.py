"""What the e2e suite does with a real cluster: kubectl, helm and kind as a user runs them.

Every call goes through the same command-line tools the README tells users to type, so a
scenario that passes here is one a user can repeat by hand. Which cluster, and which image:

- ``EMBER_E2E_CONTEXT``: a kubeconfig context of an existing cluster (minikube, k3d, kind, a
  real one). Unset: a kind cluster ``EMBER_E2E_KIND_CLUSTER`` (default ``ember-e2e``), made by
  the suite when there is none of that name.
- ``EMBER_E2E_IMAGE``: the image of operator, head and workers (default ``ember:e2e``).
- ``EMBER_E2E_LOAD``: a shell command that makes the built image available to the cluster's
  nodes, ``{image}`` standing for its name (``kind load docker-image {image} --name NAME`` by
  default on kind); ``none`` when the image is already where the nodes pull from: then nothing
  is built or loaded.
- ``EMBER_E2E_BASE_IMAGE``: the base the image is built on (the Dockerfile's ``BASE_IMAGE``);
  ``ember-base:bookworm`` is built from Debian packages when missing (tests/docker/base_image.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
GIVEN_CONTEXT = os.environ.get("EMBER_E2E_CONTEXT", "")
KIND_CLUSTER = os.environ.get("EMBER_E2E_KIND_CLUSTER", "ember-e2e")
CONTEXT = GIVEN_CONTEXT or f"kind-{KIND_CLUSTER}"
IMAGE = os.environ.get("EMBER_E2E_IMAGE", "ember:e2e")
BASE_IMAGE = os.environ.get("EMBER_E2E_BASE_IMAGE", "")
KEEP = os.environ.get("EMBER_E2E_KEEP") == "1"
# The suite's own namespaces and Helm release: it creates them, and deletes only what carries
# its label. Its operator watches NAMESPACE alone, so it leaves the rest of a cluster be.
NAMESPACE = "ember-e2e"
OPERATOR_NAMESPACE = "ember-e2e-system"
RELEASE = "ember-e2e"
CREATED_BY = ("app.kubernetes.io/created-by", "ember-e2e")
PULL_POLICY = "IfNotPresent"  # a loaded image is present; a registry's is pulled

# The suite's waits, in seconds; pytest's own timeout for these tests is their sum (see
# PYTEST_TIMEOUT), so that a slow cluster ends in the suite's "timed out waiting for ...".
KIND_CREATE_TIMEOUT = 900
BUILD_TIMEOUT = 1800  # the image (and as long again for a base image from Debian packages)
LOAD_TIMEOUT = 600
HELM_TIMEOUT = 600
DELETE_TIMEOUT = 300
CLUSTER_UP_TIMEOUT = 600
ROLL_TIMEOUT = 900
SCALE_JOB_TIMEOUT = 600
# The first test's setup makes the cluster and the images; the longest scenario (autoscaling:
# up, the job, the idle shrink, the deletion) and the last test's teardown come on top.
SETUP_WAITS = KIND_CREATE_TIMEOUT + 2 * BUILD_TIMEOUT + LOAD_TIMEOUT + HELM_TIMEOUT + 2 * DELETE_TIMEOUT
SCENARIO_WAITS = CLUSTER_UP_TIMEOUT + SCALE_JOB_TIMEOUT + 2 * DELETE_TIMEOUT + 600
TEARDOWN_WAITS = 4 * DELETE_TIMEOUT + HELM_TIMEOUT
PYTEST_TIMEOUT = SETUP_WAITS + SCENARIO_WAITS + TEARDOWN_WAITS


def kind_name() -> str:
    """The kind cluster's name, when the target is one (kind's contexts are ``kind-NAME``)."""
    if not GIVEN_CONTEXT:
        return KIND_CLUSTER
    return GIVEN_CONTEXT.removeprefix("kind-") if GIVEN_CONTEXT.startswith("kind-") else ""


def load_command() -> str:
    """EMBER_E2E_LOAD, or ``kind load`` on a kind cluster; "" when it must be given."""
    given = os.environ.get("EMBER_E2E_LOAD", "").strip()
    if given:
        return given
    return f"kind load docker-image {{image}} --name {kind_name()}" if kind_name() else ""


LOAD = load_command()
LOADS = LOAD.lower() != "none"  # whether the suite builds the image and loads it itself


def split_image(image: str) -> tuple[str, str]:
    """``repository:tag`` as the chart's two values (no tag: ``latest``)."""
    if "@" in image:
        raise AssertionError(f"EMBER_E2E_IMAGE={image}: name the image by a tag, not a digest")
    slash, colon = image.rfind("/"), image.rfind(":")
    return (image[:colon], image[colon + 1:]) if colon > slash else (image, "latest")


def tool(name: str) -> str | None:
    """A tool from PATH, or from the project's virtualenv (where the chart checks put helm)."""
    found = shutil.which(name)
    if found:
        return found
    local = REPO / ".venv" / "bin" / name
    return str(local) if local.exists() else None


def engine() -> str | None:
    return tool("docker") or tool("podman")


def missing_tools() -> str:
    """Why the suite cannot run here, or "" when it can."""
    needs = ["kubectl", "helm"]
    if not GIVEN_CONTEXT or LOAD.startswith("kind "):
        needs.append("kind")
    absent = [name for name in needs if tool(name) is None]
    if LOADS and engine() is None:
        absent.append("docker (or podman)")
    if absent:
        if not GIVEN_CONTEXT:
            return (f"the e2e suite needs {', '.join(absent)} on PATH for a kind cluster of its own, "
                    f"or EMBER_E2E_CONTEXT naming the kubeconfig context of an existing cluster")
        return f"the e2e suite needs {', '.join(absent)} on PATH for context {CONTEXT}"
    if LOADS:
        found = engine()
        assert found is not None
        try:
            result = subprocess.run([found, "info"], capture_output=True, text=True, timeout=60)
        except subprocess.TimeoutExpired:
            return f"{found} info did not answer in 60 s: no container engine to build the image with"
        if result.returncode != 0:
            return f"{found} cannot reach a container engine: {result.stderr.strip()[:200]}"
    return ""


def run(*args: str, check: bool = True, timeout: float = 600, input: str | None = None) -> str:
    """Run a tool; its output, or (check=False and it failed) what it said on stderr."""
    command = [tool(args[0]) or args[0], *args[1:]]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, input=input)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result.stdout if result.returncode == 0 else result.stderr


def kubectl(*args: str, check: bool = True, input: str | None = None, timeout: float = 600) -> str:
    return run("kubectl", "--context", CONTEXT, *args, check=check, input=input, timeout=timeout)


def get(kind: str, name: str = "", namespace: str = NAMESPACE, selector: str = "") -> Any:
    args = ["get", kind, "-n", namespace, "-o", "json"]
    if name:
        args.insert(2, name)
    if selector:
        args += ["-l", selector]
    return json.loads(kubectl(*args))


def apply(manifest: str) -> str:
    return kubectl("apply", "-n", NAMESPACE, "-f", "-", input=manifest)


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 300.0, every: float = 2.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = condition()
        except AssertionError as error:  # kubectl failed: the object may not exist yet
            last = error
        else:
            if last:
                return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


def phase(cluster: str) -> str:
    return str((get("cluster", cluster).get("status") or {}).get("phase", ""))


def pods(cluster: str, node_type: str = "") -> list[dict[str, Any]]:
    selector = f"ember.dev/cluster={cluster}"
    if node_type:
        selector += f",ember.dev/node-type={node_type}"
    return list(get("pods", selector=selector)["items"])


def ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions) and not pod[
        "metadata"
    ].get("deletionTimestamp")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def port_forward(target: str, remote_port: int, namespace: str = NAMESPACE) -> Iterator[int]:
    """``kubectl port-forward`` to a local port for as long as the block runs."""
    local = free_port()
    process = subprocess.Popen(
        [tool("kubectl") or "kubectl", "--context", CONTEXT, "port-forward",
         "-n", namespace, target, f"{local}:{remote_port}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert "Forwarding from" in line, line + (process.stdout.read() if process.poll() is not None else "")
        yield local
    finally:
        process.terminate()
        process.wait(10)


def token(cluster: str) -> str:
    """The cluster's token as a user gets it: ``ember token CLUSTER``."""
    result = subprocess.run(
        [sys.executable, "-m", "ember.cli", "token", cluster, "-n", NAMESPACE],
        capture_output=True, text=True, timeout=60,
        env=dict(os.environ, KUBECONFIG=kubeconfig()),
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


_kubeconfig: list[str] = []


def kubeconfig() -> str:
    """A kubeconfig of the target context alone, current in it: what ``ember token`` (which
    uses the current context, as a user's shell would) is given. Written once per run, so a
    kind cluster made anew brings its new certificates."""
    if not _kubeconfig:
        path = REPO / "build" / "e2e" / f"kubeconfig-{re.sub(r'[^A-Za-z0-9_.-]', '_', CONTEXT)}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(kubectl("config", "view", "--minify", "--flatten"))
        path.chmod(0o600)
        _kubeconfig.append(str(path))
    return _kubeconfig[0]


def driver(script: str, address: str, secret: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """A driver program on this machine, connected through a port-forward."""
    env = dict(os.environ, EMBER_ADDRESS=f"ember://127.0.0.1:{address}", EMBER_TOKEN=secret)
    return subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=timeout,
        env=env, cwd=str(REPO),
    )


def start_driver(script: str, address: str, secret: str) -> subprocess.Popen[str]:
    """A driver left running while the test watches the cluster."""
    env = dict(os.environ, EMBER_ADDRESS=f"ember://127.0.0.1:{address}", EMBER_TOKEN=secret)
    return subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=env, cwd=str(REPO),
    )


def cluster_manifest(example: str, name: str, image: str = IMAGE, **spec: Any) -> str:
    """An example from manifests/examples/, renamed, on the image this suite tests."""
    import yaml

    document = yaml.safe_load((REPO / "manifests" / "examples" / example).read_text())
    document["metadata"] = {"name": name, "namespace": NAMESPACE}
    document["spec"]["image"] = image
    document["spec"]["imagePullPolicy"] = PULL_POLICY
    document["spec"].update(spec)
    return str(yaml.safe_dump(document))


def job_manifest(example: str, name: str, image: str = IMAGE, **spec: Any) -> str:
    """An EmberJob example from manifests/examples/ (with what comes with it, a ConfigMap),
    the job renamed and its clusterSpec on the image this suite tests."""
    import yaml

    documents = [d for d in yaml.safe_load_all((REPO / "manifests" / "examples" / example).read_text()) if d]
    for document in documents:
        document["metadata"]["namespace"] = NAMESPACE
        if document["kind"] != "EmberJob":
            continue
        document["metadata"] = {"name": name, "namespace": NAMESPACE}
        if "clusterSpec" in document["spec"]:
            document["spec"]["clusterSpec"]["image"] = image
            document["spec"]["clusterSpec"]["imagePullPolicy"] = PULL_POLICY
        document["spec"].update(spec)
    return str(yaml.safe_dump_all(documents))


def job_status(job: str) -> dict[str, Any]:
    return dict(get("emberjob", job).get("status") or {})

