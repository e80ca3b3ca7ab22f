"""Objects between nodes on a plain socket, from one arena straight into the other.

gRPC carries an object as protobuf chunks: the sender copies arena bytes into a message, gRPC
copies the message into its buffers, and the receiver copies twice more on the way back into
its arena. For a gigabyte that is most of the cost. Here the sender hands the kernel a view of
its arena (``sendall``) and the receiver has the kernel write into its own (``recv_into``):
one copy on each side, the same as any TCP transfer. Each side's blocking socket work runs on a
thread of its own, off the agent's event loop; what touches the store runs on the loop.

The request carries the cluster token (compared in constant time), and with TLS configured the
socket is wrapped like every other connection of the cluster. Until the token has been checked a
connection costs little and not for long: at most ``SERVING`` connections are served at once
(more wait in the kernel's backlog), the TLS handshake and the request must arrive within
``REQUEST_TIMEOUT``, and ``accept()`` failing for lack of descriptors pauses the accept loop
instead of ending it (``accept_limits``).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import struct
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from google.protobuf.message import DecodeError

from ember.runtime.node.object_store import Lost, ObjectStore
from ember.runtime.wire import accept_limits, auth, tls
from ember.runtime.wire.listen_address import tcp_listener
from ember.runtime.wire.protocol import ember_pb2 as pb

log = logging.getLogger("ember.runtime.node.bulk_transfer")

HEADER = struct.Struct("<I")
MAX_CONTROL_FRAME = 64 << 10  # requests and headers are tiny; anything larger is not ours
TIMEOUT = 30.0  # seconds a stalled peer may hold a connection
REQUEST_TIMEOUT = 5.0  # seconds from accept to a complete request (the TLS handshake included)
SERVING = 16  # connections served at once


class BulkError(ConnectionError):
    pass


class BulkRefused(BulkError):
    """The holder answered, and will not send the object (it is gone, or cannot be restored):
    asking it again over gRPC would get the same answer."""


def _send_frame(sock: socket.socket, message: Any) -> None:
    data = message.SerializeToString()
    sock.sendall(HEADER.pack(len(data)) + data)


def _recv_exact(sock: socket.socket, size: int, deadline: float | None = None) -> bytes:
    """``size`` bytes; by ``deadline`` (a ``time.monotonic()``) when given, else within the
    socket's timeout per read."""
    buffer = bytearray(size)
    view = memoryview(buffer)
    got = 0
    while got < size:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BulkError(f"no complete request within {REQUEST_TIMEOUT:g}s")
            sock.settimeout(left)
        n = sock.recv_into(view[got:])
        if not n:
            raise BulkError("the peer closed the connection")
        got += n
    return bytes(buffer)


def _recv_frame(sock: socket.socket, message_type: Any, deadline: float | None = None) -> Any:
    (length,) = HEADER.unpack(_recv_exact(sock, HEADER.size, deadline))
    if length > MAX_CONTROL_FRAME:
        raise BulkError(f"a control frame of {length} bytes is not ember's")
    try:
        return message_type.FromString(_recv_exact(sock, length, deadline))
    except DecodeError:
        raise BulkError(f"not a {message_type.__name__}: not a frame of ember's") from None


class BulkServer:
    """Serves the objects of this node's store to agents that pull them."""

    def __init__(self, store: ObjectStore, loop: asyncio.AbstractEventLoop, host: str) -> None:
        self.store = store
        self.loop = loop
        self.listener = tcp_listener(host)  # peers dial the node's advertised host
        self.port = int(self.listener.getsockname()[1])
        config = tls.current()
        self._tls = config.server_context() if config is not None else None
        self._stopping = False
        self._slots = threading.BoundedSemaphore(SERVING)
        self._backoff = accept_limits.AcceptBackoff(f"bulk transfer server on port {self.port}", log)
        self._refused = accept_limits.DropTally(
            f"bulk transfer server on port {self.port}", "no valid request with the cluster token", log
        )
        threading.Thread(target=self._accept_forever, name="ember-bulk", daemon=True).start()

    def stop(self) -> None:
        self._stopping = True
        try:
            self.listener.close()
        except OSError:
            pass

    def _accept_forever(self) -> None:
        while not self._stopping:
            self._slots.acquire()  # while all are busy, newcomers wait in the kernel's backlog
            try:
                sock, peer = self.listener.accept()
            except OSError as error:
                self._slots.release()
                if self._stopping:
                    return
                pause = self._backoff.failed(error)
                if pause is not None:
                    time.sleep(pause)
                continue
            self._backoff.succeeded()
            try:
                threading.Thread(
                    target=self._serve, args=(sock, f"{peer[0]}:{peer[1]}"), name="ember-bulk-send", daemon=True
                ).start()
            except RuntimeError as error:  # no thread to be had: the connection waits no longer
                log.warning("bulk transfer to %s:%s: cannot start a thread: %s", peer[0], peer[1], error)
                sock.close()
                self._slots.release()

    def _on_loop(self, make: Callable[[], Awaitable[Any]]) -> Any:
        async def run() -> Any:
            return await make()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(TIMEOUT)

    def _serve(self, sock: socket.socket, peer: str) -> None:
        try:
            deadline = time.monotonic() + REQUEST_TIMEOUT
            sock.settimeout(REQUEST_TIMEOUT)
            if self._tls is not None:
                sock = self._tls.wrap_socket(sock, server_side=True)
            request = _recv_frame(sock, pb.BulkRequest, deadline)
            expected = auth.token()
            if expected and not auth.matches(request.token, expected):
                self._refused.add(peer)
                _send_frame(sock, pb.BulkHeader(error=auth.REFUSED))
                return
            sock.settimeout(TIMEOUT)
            self._send_object(sock, request)
        except BulkError as error:
            self._refused.add(f"{peer} ({error})")
        except (OSError, ssl.SSLError, ValueError) as error:
            log.info("bulk transfer to %s ended: %s", peer, error)
        finally:
            sock.close()
            self._slots.release()

    def _send_object(self, sock: socket.socket, request: pb.BulkRequest) -> None:
        store = self.store

        async def start() -> Any:
            entry = await store.start_reading_sealed(request.object_id)
            if request.requester:
                entry.copies.add(request.requester)
            return entry

        try:
            entry = self._on_loop(start)
        except Lost as lost:
            _send_frame(sock, pb.BulkHeader(error=str(lost)))
            return
        try:
            _send_frame(sock, pb.BulkHeader(size=entry.size))
            view = store.arena.view
            sock.sendall(view[entry.offset : entry.offset + entry.size])
        finally:
            async def stop() -> None:
                store.stop_using(entry)

            self._on_loop(stop)


async def pull(
    address: str,
    object_id: bytes,
    requester: str,
    allocate: Callable[[int], Awaitable[memoryview | None]],
) -> int | None:
    """Pull an object from the bulk socket at ``address`` into the view ``allocate(size)``
    returns; returns the size, or None if ``allocate`` found it stored already."""
    loop = asyncio.get_running_loop()
    host, _, port = address.rpartition(":")
    config = tls.current()

    def connect() -> tuple[socket.socket, pb.BulkHeader]:
        sock = socket.create_connection((host, int(port)), timeout=TIMEOUT)
        try:
            if config is not None:
                sock = tls.shared_client_context(config).wrap_socket(sock, server_hostname=config.server_name or host)
            _send_frame(
                sock, pb.BulkRequest(token=auth.token().encode(), object_id=object_id, requester=requester)
            )
            return sock, _recv_frame(sock, pb.BulkHeader)
        except BaseException:
            sock.close()
            raise

    try:
        sock, header = await loop.run_in_executor(None, connect)
    except (OSError, ssl.SSLError) as error:
        raise BulkError(f"bulk transfer from {address}: {error}") from None
    try:
        if header.error:
            raise BulkRefused(f"{address}: {header.error}")
        view = await allocate(header.size)
        if view is None:
            return None

        def receive() -> None:
            got = 0
            while got < header.size:
                n = sock.recv_into(view[got:])
                if not n:
                    raise BulkError(f"{address} sent {got} of the {header.size} bytes of object {object_id.hex()}")
                got += n

        try:
            await loop.run_in_executor(None, receive)
        except (OSError, ssl.SSLError) as error:
            raise BulkError(f"bulk transfer from {address}: {error}") from None
        return int(header.size)
    finally:
        sock.close()
