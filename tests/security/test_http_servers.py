"""The dashboard and the metrics endpoints, reached without the token: a login body of any
declared length, and hundreds of idle connections, cost the head nothing lasting; the login
cookie expires."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
import urllib.error
import urllib.request

import ember
from ember import connection
from ember.runtime.head import dashboard
from ember.runtime.wire import auth, http_server
from tests.security.conftest import alive, close_all, cluster_pids, reset_peak, split, usage

BODY = 64 << 20


def _post_login(address: str, length: str, body: int) -> tuple[str, int]:
    """POST /api/login declaring ``length`` while streaming ``body`` bytes (and then the end of
    the request); returns the status line and how many bytes went out."""
    sent = [0]
    with socket.create_connection(split(address), timeout=60) as sock:
        sock.sendall(
            f"POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n".encode()
        )

        def stream() -> None:
            chunk = b"a" * (1 << 20)
            try:
                while sent[0] < body:
                    sock.sendall(chunk)
                    sent[0] += len(chunk)
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass  # the head hung up: it does not want the body

        writer = threading.Thread(target=stream, daemon=True)
        writer.start()
        answer = b""
        try:
            while b"\r\n" not in answer:
                data = sock.recv(4096)
                if not data:
                    break
                answer += data
        except ConnectionResetError:
            pass
        writer.join(60)
    return answer.split(b"\r\n", 1)[0].decode(errors="replace"), sent[0]


def _get(url: str, headers: dict[str, str] | None = None, context: object = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30, context=context) as answer:  # type: ignore[arg-type]
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_a_login_body_is_read_only_when_its_length_is_a_small_number(few_descriptors: object) -> None:
    """Before: ``Content-Length: -1`` made the head read the body to its end (64 MiB: a peak
    ~200 MiB higher) before answering 401, and a length that is no number raised ValueError in
    the handler (no answer at all)."""
    address = few_descriptors.dashboard_url  # type: ignore[attr-defined]
    head, _ = cluster_pids()
    reset_peak(head)
    before = usage(head)
    status, sent = _post_login(address, "-1", BODY)
    grew = (usage(head).peak_kib - before.rss_kib) >> 10
    print(f"head: {before.rss_kib >> 10} MiB, peak +{grew} MiB; {sent >> 20} MiB of body sent; {status!r}")
    assert status.endswith("400 Bad Request"), status
    assert grew < 16, f"the head took {grew} MiB of a login body"
    status, _ = _post_login(address, "lots", 0)
    assert status.endswith("400 Bad Request"), status
    status, _ = _post_login(address, "5000", 0)
    assert status.endswith("413 Request Entity Too Large"), status
    assert alive(head) and ember.nodes()


def test_idle_connections_hold_no_thread_of_the_head(few_descriptors: object) -> None:
    """Before: every connection to the dashboard or /metrics got a thread that waited for a
    request forever (300 idle connections: 311 threads)."""
    view = connection._view()
    head, _ = cluster_pids()
    before = usage(head)
    idle = []
    for address in (few_descriptors.dashboard_url, view.metrics_address):  # type: ignore[attr-defined]
        for _ in range(150):  # one after the other: each is taken before the next
            sock = socket.create_connection(split(address), timeout=30)
            sock.setblocking(False)
            idle.append(sock)
    most_threads, most_descriptors = before.threads, before.descriptors
    waiting = list(idle)
    try:
        deadline = time.monotonic() + 90
        # Until the head has hung up on every one of them (EOF where we sent nothing).
        while waiting and time.monotonic() < deadline:
            now = usage(head)
            most_threads = max(most_threads, now.threads)
            most_descriptors = max(most_descriptors, now.descriptors)
            still = []
            for sock in waiting:
                try:
                    if sock.recv(1) != b"":
                        still.append(sock)
                except (BlockingIOError, OSError) as error:
                    if not isinstance(error, ConnectionResetError):
                        still.append(sock)  # waiting, or still connecting
            waiting = still
            time.sleep(0.2)
        print(f"head threads: {before.threads} before, at most {most_threads} under {len(idle)} idle "
              f"connections; descriptors {before.descriptors} -> at most {most_descriptors}")
        assert most_threads <= before.threads + 2 * http_server.MAX_CONNECTIONS + 4, (before, most_threads)
        assert not waiting, f"{len(waiting)} idle connections were never hung up on"
    finally:
        close_all(idle)
    assert alive(head)
    status, _ = _get(f"http://{few_descriptors.dashboard_url}/api/nodes",  # type: ignore[attr-defined]
                     {"Authorization": f"Bearer {auth.token()}"})
    assert status == 200
    assert _get(f"http://{view.metrics_address}/metrics")[0] == 200


def test_the_login_cookie_expires(few_descriptors: object) -> None:
    """Before: the cookie was a fixed function of the token, valid forever."""
    base = f"http://{few_descriptors.dashboard_url}"  # type: ignore[attr-defined]
    token = auth.token()
    request = urllib.request.Request(base + "/api/login", data=json.dumps({"token": token}).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=30) as answer:
        cookie = answer.headers["Set-Cookie"]
    assert f"Max-Age={dashboard.SESSION_SECONDS}" in cookie and "HttpOnly" in cookie
    session = cookie.split(";")[0]
    assert _get(base + "/api/overview", {"Cookie": session})[0] == 200
    expired = dashboard.session_cookie(token, expires=int(time.time()) - 1)
    assert _get(base + "/api/overview", {"Cookie": f"{dashboard.COOKIE}={expired}"})[0] == 401
    forever = hmac.new(token.encode(), b"ember-dashboard-session", hashlib.sha256).hexdigest()
    assert _get(base + "/api/overview", {"Cookie": f"{dashboard.COOKIE}={forever}"})[0] == 401
    far = int(time.time()) + 10 * dashboard.SESSION_SECONDS  # not one the head signed: its MAC is wrong
    assert _get(base + "/api/overview", {"Cookie": f"{dashboard.COOKIE}={far}.{session.split('.', 1)[1]}"})[0] == 401
