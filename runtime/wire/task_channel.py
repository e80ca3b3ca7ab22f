"""The task channel: the hot path between an owner and a worker, on a plain socket.

Frames (``framing``) are a 4-byte little-endian length followed by a protobuf message. An owner opens a
channel to a worker, sends ``ChannelHello`` (its job and, once the cluster has one, the token),
gets ``ChannelWelcome``, then streams ``ExecuteRequest`` frames; the worker streams back
``ExecuteReply`` frames. One channel per (owner, worker) pair, reused across leases.

Why not gRPC here: a Python gRPC message round trip costs ~250 us on a small machine, plus a
hop between gRPC's threads and ours on each side. On this channel the worker's main thread reads
the socket, runs the task and writes the result itself; the round trip costs ~100 us.

The worker side (``ChannelServer``) is synchronous and runs on the worker's main thread, because
that is where tasks run. The owner side (``ChannelClient``) is an asyncio protocol on the
owner's I/O thread.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import selectors
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any, Protocol

from ember.runtime.wire import accept_limits, auth, peer_route, tls
from ember.runtime.wire.framing import (  # noqa: F401 - the channel's framing, used from here
    HEADER,
    MAX_FRAME,
    MAX_HELLO,
    FrameError,
    FrameReader,
    encode,
    parse,
    plain_address,
)
from ember.runtime.wire.listen_address import host_port, tcp_listener
from ember.runtime.wire.protocol import ember_pb2 as pb

log = logging.getLogger("ember.runtime.wire.task_channel")

HELLO_TIMEOUT = 10.0  # seconds from accept to a hello (the TLS handshake included)
UNWELCOMED_CAP = 128  # connections at once that have not said hello yet
ACCEPT_BATCH = 64  # connections accepted per wake-up, at most
FLUSH_AFTER = 0.001  # seconds a finished result may wait for the next one to share its frame


# ================================================================== worker side


class _Connection:
    __slots__ = (
        "sock", "reader", "welcomed", "results", "first_result", "closed", "peer", "owner",
        "deadline", "handshaking", "events",
    )

    def __init__(self, sock: socket.socket, peer: str, deadline: float) -> None:
        self.owner = ""  # the owner's address: it owns the results sent back here
        self.sock = sock
        self.reader = FrameReader(MAX_HELLO)
        self.welcomed = False
        self.results: list[pb.TaskResult] = []
        self.first_result = 0.0
        self.closed = False
        self.peer = peer
        self.deadline = deadline  # for the hello (and the TLS handshake before it)
        self.handshaking = False
        self.events = selectors.EVENT_READ


_WAKE = object()


class TaskHandler(Protocol):
    """What runs a channel's tasks: the worker's executor (``ember.runtime.core.executor``).

    The framing here knows bytes and messages; what a task is, the handler knows.
    """

    def attach(self, server: ChannelServer) -> None:
        """The server that results of calls run on other threads are ``post``-ed to."""

    def run(self, spec: pb.TaskSpec, connection: Any) -> pb.TaskResult | None:
        """Run one task; None when its result will be posted later (a concurrent actor call)."""

    def posted_result_taken(self) -> None:
        """A posted result was taken off the queue: its call is over."""

    def terminated(self) -> bool:
        """The hosted actor was terminated and none of its calls still runs: time to exit."""

    def before_reply(self) -> None:
        """Before results go back: the tasks' output and borrowed refs go first."""

    def before_exit(self) -> None:
        """The last output goes out before the process exits."""


class ChannelServer:
    """Accepts owners' channels and runs their tasks, in order, on the calling thread.

    Whoever reaches the port can connect, so until a connection has said hello with the token
    it costs little and not for long: its frames may not exceed ``MAX_HELLO``, it is dropped
    after ``HELLO_TIMEOUT``, at most ``UNWELCOMED_CAP`` of them are held at once (and at most
    a share of the process's descriptors in all), and its TLS handshake is driven by the
    selector like any read, never blocking the loop that runs tasks.
    """

    def __init__(
        self,
        host: str,
        handler: TaskHandler,
        check_hello: Callable[[pb.ChannelHello], str],
        worker_id: bytes,
    ) -> None:
        self.handler = handler
        self.check_hello = check_hello
        self.worker_id = worker_id
        self.listener = tcp_listener(host)
        self.listener.setblocking(False)
        config = tls.current()
        self.tls = config.server_context() if config is not None else None
        self.address = host_port(host, self.listener.getsockname()[1])
        self.who = f"worker {worker_id.hex()[:12]}"
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.listener, selectors.EVENT_READ, None)
        self.pending: collections.deque[tuple[_Connection, pb.TaskSpec]] = collections.deque()
        self.connections = 0
        self.max_connections = accept_limits.descriptor_budget()
        # Connections that have not said hello yet, oldest first (all wait as long).
        self.unwelcomed: dict[_Connection, None] = {}
        self.accepting = True
        self.resume_at = 0.0  # after accept() failed for lack of descriptors: when to retry
        self._backoff = accept_limits.AcceptBackoff(f"task channel of {self.who}", log)
        self._silent = accept_limits.DropTally(
            f"task channel of {self.who}", f"no hello within {HELLO_TIMEOUT:g}s", log, logging.INFO
        )
        # Results of calls that ran on other threads (concurrent actors), and the socket pair
        # they wake this loop with.
        self.completed: collections.deque[tuple[_Connection, pb.TaskResult]] = collections.deque()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self.selector.register(self._wake_r, selectors.EVENT_READ, _WAKE)
        handler.attach(self)

    def post(self, connection: _Connection, result: pb.TaskResult) -> None:
        """Hand over a result from another thread; the main thread sends it."""
        self.completed.append((connection, result))
        try:
            self._wake_w.send(b"\0")
        except (BlockingIOError, OSError):
            pass  # a wake-up is already pending

    def serve_forever(self) -> None:
        select = self.selector.select
        handler = self.handler
        while True:
            timeout = None
            if self.unwelcomed or not self.accepting:
                timeout = self._until_next_deadline()
            for key, _ in select(timeout):
                self._dispatch(key)
            if self.unwelcomed or not self.accepting:
                self._expire()
            if self.pending:
                self._run_pending()
            if not self.pending and handler.terminated():
                self._exit()

    def _dispatch(self, key: selectors.SelectorKey) -> None:
        data = key.data
        if data is None:
            self._accept()
        elif data is _WAKE:
            self._drain_completed()
        elif data.handshaking:
            self._handshake(data)
        else:
            self._receive(data)

    # ------------------------------------------------------------------ admission

    def _until_next_deadline(self) -> float:
        now = time.monotonic()
        deadlines = []
        if self.unwelcomed:
            deadlines.append(next(iter(self.unwelcomed)).deadline)
        if not self.accepting and self.resume_at:
            deadlines.append(self.resume_at)
        return max(0.0, min(deadlines) - now) if deadlines else 1.0

    def _expire(self) -> None:
        """Drop connections past their hello deadline; accept again after a pause."""
        now = time.monotonic()
        while self.unwelcomed:
            connection = next(iter(self.unwelcomed))
            if connection.deadline > now:
                break
            self._silent.add(connection.peer)
            self._close(connection, f"no hello within {HELLO_TIMEOUT:g}s")
        if not self.accepting and self.resume_at and now >= self.resume_at:
            self._resume()

    def _full(self) -> bool:
        return len(self.unwelcomed) >= UNWELCOMED_CAP or self.connections >= self.max_connections

    def _pause(self, seconds: float = 0.0) -> None:
        """Stop accepting: until a connection closes, or for ``seconds`` after a failure."""
        if self.accepting:
            self.selector.unregister(self.listener)
            self.accepting = False
        self.resume_at = time.monotonic() + seconds if seconds else 0.0

    def _resume(self) -> None:
        if not self.accepting and not self._full():
            self.selector.register(self.listener, selectors.EVENT_READ, None)
            self.accepting = True
            self.resume_at = 0.0

    def _accept(self) -> None:
        for _ in range(ACCEPT_BATCH):
            if self._full():
                self._pause()
                return
            try:
                sock, peer = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:
                pause = self._backoff.failed(error)
                if pause is not None:
                    self._pause(pause)
                    return
                continue  # that connection was reset before we took it
            self._backoff.succeeded()
            self._admit(sock, f"{peer[0]}:{peer[1]}")

    def _admit(self, sock: socket.socket, peer: str) -> None:
        # Non-blocking until welcomed: nothing an unauthenticated peer does (or does not do)
        # may hold this thread.
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection = _Connection(sock, peer, time.monotonic() + HELLO_TIMEOUT)
        if self.tls is not None:
            try:
                connection.sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
            except (OSError, ssl.SSLError) as error:
                log.warning("refused a task channel from %s: TLS failed: %s", peer, error)
                sock.close()
                return
            connection.handshaking = True
        self.selector.register(connection.sock, selectors.EVENT_READ, connection)
        self.unwelcomed[connection] = None
        self.connections += 1

    def _watch(self, connection: _Connection, events: int) -> None:
        if connection.events != events:
            self.selector.modify(connection.sock, events, connection)
            connection.events = events

    def _handshake(self, connection: _Connection) -> None:
        """One step of a TLS handshake, taken when the socket is ready for it."""
        sock = connection.sock
        assert isinstance(sock, ssl.SSLSocket)
        try:
            sock.do_handshake()
        except ssl.SSLWantReadError:
            self._watch(connection, selectors.EVENT_READ)
            return
        except ssl.SSLWantWriteError:
            self._watch(connection, selectors.EVENT_WRITE)
            return
        except (OSError, ssl.SSLError) as error:
            log.warning("refused a task channel from %s: TLS handshake failed: %s", connection.peer, error)
            self._close(connection, "TLS handshake failed")
            return
        connection.handshaking = False
        self._watch(connection, selectors.EVENT_READ)
        if sock.pending():
            self._receive(connection)

    # ------------------------------------------------------------------ frames

    def _receive(self, connection: _Connection) -> None:
        sock = connection.sock
        try:
            data = sock.recv(1 << 20)
            if isinstance(sock, ssl.SSLSocket):
                while sock.pending():  # decrypted bytes the selector cannot see
                    data += sock.recv(sock.pending())
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return  # not welcomed yet (non-blocking): a TLS record is still incomplete
        except (ConnectionError, OSError):
            data = b""
        if not data:
            self._close(connection, "closed by the owner")
            return
        reader = connection.reader
        try:
            reader.append(data)
            for frame in reader.frames():
                if not connection.welcomed:
                    self._hello(connection, parse(pb.ChannelHello, frame))
                    continue
                request = parse(pb.ExecuteRequest, frame)
                for spec in request.tasks:
                    self.pending.append((connection, spec))
        except FrameError as error:
            log.warning("dropping task channel from %s: %s", connection.peer, error)
            self._close(connection, str(error))

    def _hello(self, connection: _Connection, hello: pb.ChannelHello) -> None:
        if not plain_address(hello.owner_address):
            error = (
                f"{self.who}: the hello's owner_address {hello.owner_address[:64]!r} is not a "
                f"HOST:PORT address"
            )
        else:
            error = self.check_hello(hello)
        if not error:
            # Welcomed: frames may be as large as tasks need, and replies are written whole.
            connection.sock.setblocking(True)
            connection.reader.max_frame = MAX_FRAME
        self._send(connection, pb.ChannelWelcome(worker_id=self.worker_id, error=error))
        if error:
            raise FrameError(f"refused: {error}")
        connection.welcomed = True
        connection.owner = hello.owner_address
        self.unwelcomed.pop(connection, None)

    def _close(self, connection: _Connection, why: str) -> None:
        if connection.closed:
            return
        connection.closed = True
        self.connections -= 1
        self.unwelcomed.pop(connection, None)
        try:
            self.selector.unregister(connection.sock)
        except (KeyError, ValueError):
            pass
        connection.sock.close()
        dropped = sum(1 for c, _ in self.pending if c is connection)
        if dropped:
            log.info("owner at %s left (%s); dropping %d queued task(s)", connection.peer, why, dropped)
            self.pending = collections.deque((c, s) for c, s in self.pending if c is not connection)
        if not self.accepting and not self.resume_at:
            self._resume()

    def _send(self, connection: _Connection, message: Any) -> None:
        try:
            connection.sock.sendall(encode(message))
        except OSError as error:
            self._close(connection, f"send failed: {error}")

    def _drain_completed(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass
        touched = []
        while self.completed:
            connection, result = self.completed.popleft()
            self.handler.posted_result_taken()
            if connection.closed:
                continue
            if not connection.results:
                touched.append(connection)
            connection.results.append(result)
        for connection in touched:
            self._flush(connection)

    def _exit(self) -> None:
        """The actor's owner let it go (its last call was a terminate): leave cleanly."""
        import os

        self._drain_completed()
        log.info("actor terminated by its owner; worker exits")
        self.handler.before_exit()
        os._exit(0)

    def _run_pending(self) -> None:
        pending = self.pending
        run = self.handler.run
        waiting: list[_Connection] = []
        while pending:
            connection, spec = pending.popleft()
            if connection.closed:
                continue
            result = run(spec, connection)
            if result is None or connection.closed:
                continue
            if not connection.results:
                connection.first_result = time.monotonic()
                waiting.append(connection)
            connection.results.append(result)
            if pending and time.monotonic() - connection.first_result > FLUSH_AFTER:
                self._flush(connection)
                waiting.remove(connection)
            if not pending:
                self._poll()  # tasks that arrived meanwhile join this round
        for connection in waiting:
            self._flush(connection)

    def _poll(self) -> None:
        for key, _ in self.selector.select(0):
            self._dispatch(key)
        if self.unwelcomed or not self.accepting:
            self._expire()

    def _flush(self, connection: _Connection) -> None:
        results = connection.results
        if not results or connection.closed:
            return
        connection.results = []
        # A task's output reaches the driver before its result, and the owners of refs it
        # kept know it borrows them before anyone can drop theirs.
        self.handler.before_reply()
        self._send(connection, pb.ExecuteReply(results=results))

    def idle(self) -> bool:
        return not self.pending


# ================================================================== owner side


class ChannelClient(asyncio.Protocol):
    """An owner's channel to one worker, on the owner's I/O thread."""

    def __init__(
        self,
        hello: pb.ChannelHello,
        on_reply: Callable[[ChannelClient, pb.ExecuteReply], None],
        on_lost: Callable[[ChannelClient, str], None],
    ) -> None:
        self.hello = hello
        self.on_reply = on_reply
        self.on_lost = on_lost
        self.reader = FrameReader(MAX_HELLO)  # until the welcome; then as large as replies need
        self.transport: asyncio.Transport | None = None
        self.welcome: pb.ChannelWelcome | None = None
        self.lost = False
        # Who sends on this channel: task leases and actor clients of the owner.
        self.leases: set[Any] = set()
        self.actors: set[Any] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family != socket.AF_UNIX:  # a Unix socket: via the relay
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport.write(encode(self.hello))

    def data_received(self, data: bytes) -> None:
        reader = self.reader
        try:
            reader.append(data)
            for frame in reader.frames():
                if self.welcome is None:
                    self.welcome = parse(pb.ChannelWelcome, frame)
                    if self.welcome.error:
                        self._fail(f"the worker refused the channel: {self.welcome.error}")
                        return
                    reader.max_frame = MAX_FRAME
                    continue
                self.on_reply(self, parse(pb.ExecuteReply, frame))
        except FrameError as error:
            self._fail(f"the worker sent garbage: {error}")

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(f"connection lost ({exc or 'closed by the worker'})")

    def _fail(self, reason: str) -> None:
        if self.lost:
            return
        self.lost = True
        if self.transport is not None:
            self.transport.close()
        self.on_lost(self, reason)

    def send(self, message: Any) -> None:
        if self.transport is not None and not self.lost:
            self.transport.write(encode(message))

    def close(self) -> None:
        self.lost = True
        if self.transport is not None:
            self.transport.close()


async def connect(
    address: str,
    hello: pb.ChannelHello,
    on_reply: Callable[[ChannelClient, pb.ExecuteReply], None],
    on_lost: Callable[[ChannelClient, str], None],
) -> ChannelClient:
    host, _, port = address.rpartition(":")
    loop = asyncio.get_running_loop()
    token = auth.token()
    if token and not hello.token:
        hello.token = token.encode()
    config = tls.current()
    secure: dict[str, Any] = {}
    if config is not None:
        secure = {"ssl": tls.shared_client_context(config), "server_hostname": config.server_name or host}
    routed = peer_route.local_socket(address)
    if routed is not None:
        _, client = await loop.create_unix_connection(
            lambda: ChannelClient(hello, on_reply, on_lost), routed, **secure
        )
        return client
    _, client = await loop.create_connection(
        lambda: ChannelClient(hello, on_reply, on_lost), host, int(port), **secure
    )
    return client
