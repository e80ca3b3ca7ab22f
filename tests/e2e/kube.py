"""What the kind suite does with a real cluster: kubectl, helm and kind as a user runs them.

Every call goes through the same command-line tools the README tells users to type, so a
scenario that passes here is one a user can repeat by hand.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
KIND_CLUSTER = os.environ.get("EMBER_E2E_KIND_CLUSTER", "ember-e2e")
NAMESPACE = "ember-e2e"
OPERATOR_NAMESPACE = "ember-system"
IMAGE = "ember:e2e"


def tool(name: str) -> str | None:
    """A tool from PATH, or from the project's virtualenv (where the chart checks put helm)."""
    found = shutil.which(name)
    if found:
        return found
    local = REPO / ".venv" / "bin" / name
    return str(local) if local.exists() else None


def missing_tools() -> str:
    """Why the suite cannot run here, or "" when it can."""
    absent = [name for name in ("kind", "kubectl", "helm") if tool(name) is None]
    engine = tool("docker") or tool("podman")
    if engine is None:
        absent.append("docker (or podman)")
    if absent:
        return f"the kind suite needs {', '.join(absent)} on PATH"
    result = subprocess.run([engine, "info"], capture_output=True, text=True)
    if result.returncode != 0:
        return f"{engine} cannot reach a container engine: {result.stderr.strip()[:200]}"
    return ""


def run(*args: str, check: bool = True, timeout: float = 600, input: str | None = None) -> str:
    command = [tool(args[0]) or args[0], *args[1:]]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, input=input)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result.stdout if result.returncode == 0 else result.stderr


def kubectl(*args: str, check: bool = True, input: str | None = None) -> str:
    return run("kubectl", "--context", f"kind-{KIND_CLUSTER}", *args, check=check, input=input)


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
        [tool("kubectl") or "kubectl", "--context", f"kind-{KIND_CLUSTER}", "port-forward",
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


def kubeconfig() -> str:
    path = REPO / "build" / "e2e" / "kubeconfig"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(run("kind", "get", "kubeconfig", "--name", KIND_CLUSTER))
    return str(path)


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
    """An example from manifests/examples/, renamed, on the image this suite built."""
    import yaml

    document = yaml.safe_load((REPO / "manifests" / "examples" / example).read_text())
    document["metadata"] = {"name": name, "namespace": NAMESPACE}
    document["spec"]["image"] = image
    document["spec"]["imagePullPolicy"] = "Never"
    document["spec"].update(spec)
    return str(yaml.safe_dump(document))
