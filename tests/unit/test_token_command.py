"""``ember token CLUSTER``: the Secret's decoding, and the command against a small fake of the
Kubernetes API over HTTP (a kubeconfig pointing at it), as a user runs it.

kmock was the preferred fake, but the operator's kmock harness is not on a branch yet; a
Secret read is a single GET, which a plain HTTP server answers as the API does."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ember import token_command
from ember.token_command import TokenNotFound, token_from_secret
from tests.conftest import REPO


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_the_token_is_decoded_from_the_secret() -> None:
    assert token_command.secret_name("demo") == "demo-token"
    assert token_from_secret({"token": b64("s3cret\n")}, "demo", "ns") == "s3cret"


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (None, "has no 'token' key"),
        ({"other": b64("x")}, "has no 'token' key"),
        ({"token": "not base64!"}, "is not base64"),
        ({"token": base64.b64encode(b"\xff\xfe").decode()}, "is not base64 of a text token"),
        ({"token": b64("  \n")}, "is empty"),
    ],
)
def test_a_bad_secret_says_what_is_wrong(data: dict[str, str] | None, why: str) -> None:
    with pytest.raises(TokenNotFound) as raised:
        token_from_secret(data, "demo", "team")
    assert "Secret demo-token in namespace team" in str(raised.value)
    assert why in str(raised.value)


class FakeApi(BaseHTTPRequestHandler):
    secrets: dict[tuple[str, str], dict[str, str]] = {}
    requests: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - the handler's name is http.server's
        self.requests.append(self.path)
        parts = self.path.split("?")[0].strip("/").split("/")
        # /api/v1/namespaces/NS/secrets/NAME
        if len(parts) == 6 and parts[:3] == ["api", "v1", "namespaces"] and parts[4] == "secrets":
            data = self.secrets.get((parts[3], parts[5]))
            if data is not None:
                body = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                        "metadata": {"name": parts[5], "namespace": parts[3]}, "data": data}
                return self._answer(200, body)
        self._answer(404, {"apiVersion": "v1", "kind": "Status", "status": "Failure",
                           "reason": "NotFound", "code": 404, "message": "not found"})

    def _answer(self, code: int, body: dict[str, object]) -> None:
        payload = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def kubeconfig(tmp_path: Path) -> Iterator[Path]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    FakeApi.secrets = {
        ("team", "demo-token"): {"token": b64("team-secret")},
        ("other", "demo-token"): {"token": b64("other-secret")},
    }
    FakeApi.requests = []
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "fake",
        "clusters": [{"name": "fake", "cluster": {"server": f"http://127.0.0.1:{server.server_port}"}}],
        "users": [{"name": "me", "user": {"token": "kube-user-token"}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "me", "namespace": "team"}}],
    }))
    try:
        yield path
    finally:
        server.shutdown()
        server.server_close()


def ember_token(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, KUBECONFIG=str(kubeconfig))
    return subprocess.run(
        [sys.executable, "-m", "ember.cli", "token", *args],
        capture_output=True, text=True, timeout=60, cwd=str(REPO), env=env,
    )


def test_ember_token_reads_the_secret_in_the_contexts_namespace(kubeconfig: Path) -> None:
    done = ember_token(kubeconfig, "demo")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "team-secret\n"
    assert FakeApi.requests == ["/api/v1/namespaces/team/secrets/demo-token"]


def test_ember_token_in_another_namespace(kubeconfig: Path) -> None:
    done = ember_token(kubeconfig, "demo", "-n", "other")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "other-secret\n"


def test_ember_token_of_an_unknown_cluster_says_where_it_looked(kubeconfig: Path) -> None:
    done = ember_token(kubeconfig, "nope")
    assert done.returncode == 1
    assert done.stdout == ""
    assert "no Secret nope-token in namespace team" in done.stderr
    assert "kubectl get clusters.ember.dev -n team" in done.stderr
