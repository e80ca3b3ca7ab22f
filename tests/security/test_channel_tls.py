"""With TLS on, a connection that never starts its handshake does not hold up a worker."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

import ember
from ember.runtime.wire import tls
from tests.certificates import issue
from tests.conftest import wait_until_gone
from tests.security.conftest import actor_info, split


@pytest.fixture
def tls_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    made = issue(tmp_path)
    monkeypatch.setenv(tls.ENV_CERT, str(made.cert_path))
    monkeypatch.setenv(tls.ENV_KEY, str(made.key_path))
    monkeypatch.setenv(tls.ENV_CA, str(made.ca_path))
    tls.current.cache_clear()
    ctx = ember.init(num_cpus=1)
    try:
        yield ctx
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


def test_silent_connections_do_not_stall_a_tls_worker(tls_cluster: object) -> None:
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
