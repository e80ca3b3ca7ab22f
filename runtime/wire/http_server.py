"""The threaded HTTP servers of the head and the node agents (the dashboard, ``/metrics``),
hardened against callers who never send a request, and served over TLS when TLS is configured.

The standard library's threaded server starts a thread per connection and lets it wait for a
request forever: 300 idle connections to a head held 311 threads, and near the descriptor limit
``ember status`` and new drivers failed. Here a server holds at most ``MAX_CONNECTIONS`` at once
(more are closed at once, tallied in the log), a connection must deliver its request within
``REQUEST_DEADLINE`` (one reaper thread per server cuts it), each read and write waits at most
``IDLE_TIMEOUT``, and ``accept()`` failing for lack of descriptors pauses instead of spinning.

With TLS configured (``tls.current()``) the servers speak HTTPS with the cluster's certificate.
A client certificate is checked when one is presented but not required: browsers, the kubelet's
probes and Prometheus have none. The dashboard's API still asks for the token; ``/metrics`` and
``/healthz`` say nothing a caller could use (as before, over plain HTTP, without TLS).
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from socketserver import ThreadingMixIn
from typing import Any

from ember.runtime.wire import accept_limits, tls

log = logging.getLogger("ember.runtime.wire.http_server")

MAX_CONNECTIONS = 32
IDLE_TIMEOUT = 10.0  # seconds one read or write may wait
REQUEST_DEADLINE = 15.0  # seconds from accept to a complete request (TLS handshake included)
REAP_EVERY = 1.0


def server_context() -> ssl.SSLContext | None:
    """The TLS context HTTP servers use, or None without TLS."""
    config = tls.current()
    if config is None:
        return None
    context = config.server_context()
    context.verify_mode = ssl.CERT_OPTIONAL
    return context


def scheme() -> str:
    return "https" if tls.current() is not None else "http"


class _Slot:
    """One connection a server holds: its socket (the TLS one once wrapped), and when its
    request must have arrived."""

    __slots__ = ("sock", "deadline", "peer")

    def __init__(self, sock: socket.socket, peer: str) -> None:
        self.sock = sock
        self.deadline = time.monotonic() + REQUEST_DEADLINE
        self.peer = peer


class GuardedServer(ThreadingMixIn):
    """Mixed in before an ``HTTPServer`` (or ``WSGIServer``) class; ``who`` names the server in
    the log. Its handler class must be made with ``guard_handler``, which tells the server when
    a request has arrived."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = 128  # the kernel's backlog (socketserver's default is 5)
    who = "HTTP server"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._slots: dict[socket.socket, _Slot] = {}  # by the accepted (plain) socket
        self._lock = threading.Lock()
        self._local = threading.local()  # the slot of the connection a thread serves
        self._tls = server_context()
        self._backoff = accept_limits.AcceptBackoff(self.who, log)
        self._full = accept_limits.DropTally(self.who, f"{MAX_CONNECTIONS} connections at once already", log)
        self._late = accept_limits.DropTally(
            self.who, f"no complete request within {REQUEST_DEADLINE:g}s", log, logging.INFO
        )
        self._stopped = threading.Event()
        super().__init__(*args, **kwargs)  # binds: may fail (server_close then runs)
        threading.Thread(target=self._reap, name=f"{self.who}-reaper", daemon=True).start()

    # ------------------------------------------------------------------ accepting

    def get_request(self) -> tuple[Any, Any]:
        try:
            request: tuple[Any, Any] = super().get_request()  # type: ignore[misc]
        except OSError as error:
            pause = self._backoff.failed(error)
            if pause is not None:
                time.sleep(pause)  # on the accepting thread: stop accepting for a moment
            raise  # socketserver drops the failed accept and goes on
        self._backoff.succeeded()
        return request

    def process_request(self, request: Any, client_address: Any) -> None:
        peer = _peer(client_address)
        with self._lock:
            full = len(self._slots) >= MAX_CONNECTIONS
            if not full:
                self._slots[request] = _Slot(request, peer)
        if full:
            self._full.add(peer)
            self.shutdown_request(request)  # type: ignore[attr-defined]
            return
        request.settimeout(IDLE_TIMEOUT)
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._done(request)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        self._local.slot = self._slots.get(request)
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._local.slot = None
            self._done(request)

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self._tls is not None:
            try:
                request = self._tls.wrap_socket(request, server_side=True)
            except (OSError, ssl.SSLError) as error:
                log.debug("%s: TLS handshake with %s failed: %s", self.who, _peer(client_address), error)
                return
            slot = getattr(self._local, "slot", None)
            if slot is not None:
                slot.sock = request  # the plain socket was detached into this one
        try:
            super().finish_request(request, client_address)  # type: ignore[misc]
        finally:
            if self._tls is not None:
                request.close()

    def request_arrived(self) -> None:
        """The request has been read: no more deadline for it (its answer may take long)."""
        slot = getattr(self._local, "slot", None)
        if slot is not None:
            slot.deadline = float("inf")

    def _done(self, request: Any) -> None:
        with self._lock:
            self._slots.pop(request, None)

    def connections(self) -> int:
        return len(self._slots)

    # ------------------------------------------------------------------ reaping

    def _reap(self) -> None:
        """Cut the connections whose request is late (a thread blocked reading it wakes with
        an error, answers nothing and ends)."""
        while not self._stopped.wait(REAP_EVERY):
            now = time.monotonic()
            with self._lock:
                late = [slot for slot in self._slots.values() if slot.deadline <= now]
            for slot in late:
                slot.deadline = float("inf")  # cut once
                self._late.add(slot.peer)
                try:
                    slot.sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def server_close(self) -> None:
        self._stopped.set()
        super().server_close()


def _peer(address: Any) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return str(address)


def guard_handler(handler: type) -> type:
    """``handler`` (a ``BaseHTTPRequestHandler``) telling its server when the request arrived."""

    class Guarded(handler):
        def parse_request(self) -> bool:
            parsed: bool = super().parse_request()
            server = self.server
            if isinstance(server, GuardedServer):
                server.request_arrived()
            return parsed

    Guarded.__name__ = handler.__name__
    Guarded.__qualname__ = handler.__qualname__
    return Guarded
