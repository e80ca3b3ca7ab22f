"""With TLS on: a connection that never starts its handshake does not hold up a worker, and
the dashboard and the metrics endpoints speak TLS too."""

from __future__ import annotations

import http.client
import os
import socket
import ssl
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

import ember
from ember import connection
from ember.runtime.wire import auth, tls
from tests.certificates import Certificates, issue
from tests.conftest import wait_until_gone
from tests.security.conftest import actor_info, split


@pytest.fixture
def tls_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Certificates]:
    made = issue(tmp_path)
    monkeypatch.setenv(tls.ENV_CERT, str(made.cert_path))
    monkeypatch.setenv(tls.ENV_KEY, str(made.key_path))
    monkeypatch.setenv(tls.ENV_CA, str(made.ca_path))
    tls.current.cache_clear()
    ctx = ember.init(num_cpus=1)
    try:
        yield made
    finally:
        ember.shutdown()
        monkeypatch.undo()
        tls.current.cache_clear()
    assert wait_until_gone(ctx.session_dir) == []


@ember.remote
class Quick:
    def pid(self) -> int:
        return os.getpid()

    def ping(self) -> str:
        return "pong"


def _still_open(sock: socket.socket) -> bool:
    """Neither closed nor reset by the worker (we sent nothing, so it has nothing to say)."""
    sock.setblocking(False)
    try:
        return sock.recv(1) != b""
    except BlockingIOError:
        return True
    except ConnectionError:
        return False


def test_silent_connections_do_not_stall_a_tls_worker(tls_cluster: Certificates) -> None:
    """Before: the worker's main thread ran each handshake blocking, for up to 10 s, so three
    bare connects made a call wait 30 s, and the call's answer came only after the worker had
    given up on them. Now its answer comes while they are still waiting for their handshake."""
    quick = Quick.remote()
    assert ember.get(quick.ping.remote()) == "pong"
    address = actor_info("Quick").channel
    silent = [socket.create_connection(split(address), timeout=30) for _ in range(3)]
    try:
        answer = ember.get(quick.ping.remote(), timeout=120)
        still = [_still_open(sock) for sock in silent]
        assert answer == "pong"
        assert all(still), (
            f"the call's answer came only after the worker gave up on {still.count(False)} silent "
            f"connection(s): their handshakes held it"
        )
    finally:
        for sock in silent:
            sock.close()
    assert ember.get(quick.ping.remote()) == "pong"


def _fetch(url: str, context: ssl.SSLContext | None = None, token: bool = False) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {auth.token()}"} if token else {})
    with urllib.request.urlopen(request, timeout=30, context=context) as answer:
        return answer.status, answer.read()


def test_the_dashboard_and_metrics_speak_tls(tls_cluster: Certificates) -> None:
    """Before: with TLS configured, the dashboard's API (and /metrics) answered plain HTTP."""
    deadline = time.monotonic() + 30
    view = connection._view()
    while not all(node.info.metrics_port for node in view.nodes) and time.monotonic() < deadline:
        time.sleep(0.1)  # the agent reports its metrics port once it serves
        view = connection._view()
    agent = next(node for node in view.nodes if node.alive)
    trusted = ssl.create_default_context(cafile=str(tls_cluster.ca_path))  # checks the head's certificate
    dashboard = view.dashboard_address
    assert _fetch(f"https://{dashboard}/api/nodes", trusted, token=True)[0] == 200
    assert _fetch(f"https://{view.metrics_address}/metrics", trusted)[0] == 200
    assert _fetch(f"https://{agent.info.host}:{agent.info.metrics_port}/healthz", trusted) == (200, b"ok\n")
    # A probe or Prometheus checks no certificate and presents none: still served.
    unchecked = ssl.create_default_context()
    unchecked.check_hostname = False
    unchecked.verify_mode = ssl.CERT_NONE
    assert _fetch(f"https://{agent.info.host}:{agent.info.metrics_port}/healthz", unchecked)[0] == 200
    # Plain HTTP gets no answer.
    for url in (f"http://{dashboard}/api/nodes", f"http://{view.metrics_address}/metrics"):
        with pytest.raises((OSError, http.client.HTTPException)):
            _fetch(url, token=True)
