"""A driver outside the cluster: every connection it makes or takes goes through the head.

The driver keeps being the owner of its tasks and objects (see ``relay.py`` for why the relay
moves bytes, not API calls). What changes is only how connections are made:

- Each cluster address the driver dials (``peer_route``) is mapped to a Unix socket in a
  private directory; a connection made there is carried by a ``Tunnel`` stream to the head,
  which connects to the address. gRPC channels and task channels both dial these sockets, so
  the owner's code does not know it is outside.
- The driver's CoreWorker server listens on a Unix socket too, never on a TCP port. The head
  listens on the cluster's network in its stead (``Reverse``); each connection that arrives
  there is announced, and the driver takes it with a tunnel to its own server.

So the driver holds exactly one TCP connection, to the head's client port, and listens on no
TCP port at all: what a laptop behind ``kubectl port-forward`` can do.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import tempfile
from collections.abc import Coroutine
from typing import Any

import grpc

from ember.runtime.objects.exceptions import RuntimeConnectionError
from ember.runtime.wire import rpc
from ember.runtime.wire.protocol import ember_pb2 as pb
from ember.runtime.wire.protocol import ember_pb2_grpc as rpc_pb

log = logging.getLogger("ember.runtime.core.relay_client")

CHUNK = 4 << 20
# Tunnels carry objects: let a stream have several chunks in flight, not HTTP/2's 64 KiB.
TUNNEL_OPTIONS = [("grpc.http2.lookahead_bytes", 4 * CHUNK)]
CONNECT_TIMEOUT = 15.0
# How a stream ends when the head goes away (or this driver closes it).
_HEAD_GONE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)


class HeadRelay:
    """The driver's side of the head's relay; lives on the driver's I/O loop."""

    def __init__(self, head_address: str) -> None:
        self.head_address = head_address
        self.directory = tempfile.mkdtemp(prefix="ember-relay-")  # mode 0700: ours alone
        self.server_socket = os.path.join(self.directory, "driver.sock")
        self.address = ""  # where the cluster reaches this driver (a port of the head)
        self._sockets: dict[str, str] = {}
        self._servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Future[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._channel: Any = None  # a channel carrying the token (rpc.open_channel)
        self._reverse: Any = None

    async def start(self) -> str:
        """Ask the head to listen for us; returns the address the cluster reaches us by."""
        self._loop = asyncio.get_running_loop()
        self._channel = rpc.open_channel(self.head_address, TUNNEL_OPTIONS)
        self._stub = rpc_pb.RelayStub(self._channel)
        self._reverse = self._stub.Reverse(pb.ReverseHello(pid=os.getpid()), wait_for_ready=True)
        try:
            first = await asyncio.wait_for(self._reverse.read(), CONNECT_TIMEOUT)
        except (TimeoutError, grpc.aio.AioRpcError) as error:
            raise RuntimeConnectionError(
                f"the ember head at {self.head_address} does not relay for drivers outside the "
                f"cluster: {_why(error)}"
            ) from None
        if first is grpc.aio.EOF or not first.listening:
            raise RuntimeConnectionError(f"the ember head at {self.head_address} ended the relay")
        self.address = first.listening
        self._spawn(self._take_inbound())
        log.info(
            "outside the cluster: everything goes through the head at %s; the cluster reaches "
            "this driver at %s", self.head_address, self.address
        )
        return self.address

    # ------------------------------------------------------------------ outbound

    def route(self, address: str) -> str | None:
        """``peer_route``'s mapping: the Unix socket that reaches ``address`` (None for the
        head itself, which is dialed directly)."""
        if address == self.head_address:
            return None
        path = self._sockets.get(address)
        if path is None:
            path = os.path.join(self.directory, f"{len(self._sockets)}.sock")
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listener.bind(path)
            listener.listen(64)  # connections queue from now on, before the server runs
            listener.setblocking(False)
            self._sockets[address] = path
            assert self._loop is not None
            self._loop.call_soon_threadsafe(self._spawn, self._serve(listener, address))
        return path

    async def _serve(self, listener: socket.socket, address: str) -> None:
        opening = pb.TunnelOpen(target=address)

        def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self._spawn(self._forward(reader, writer, opening, f"the tunnel to {address}"))

        self._servers.append(await asyncio.start_unix_server(connected, sock=listener, limit=CHUNK))

    # ------------------------------------------------------------------ inbound

    async def _take_inbound(self) -> None:
        """Take each connection the head announces, into this driver's own server."""
        try:
            while True:
                event = await self._reverse.read()
                if event is grpc.aio.EOF:
                    break
                if event.incoming:
                    self._spawn(self._accept(event.incoming))
        except grpc.aio.AioRpcError as error:
            level = logging.DEBUG if error.code() in _HEAD_GONE else logging.WARNING
            log.log(level, "the head at %s stopped listening for this driver: %s", self.head_address, _why(error))

    async def _accept(self, connection_id: bytes) -> None:
        try:
            reader, writer = await asyncio.open_unix_connection(self.server_socket, limit=CHUNK)
        except OSError as error:
            log.warning("an inbound connection could not reach this driver's server: %s", error)
            return
        await self._forward(reader, writer, pb.TunnelOpen(accept=connection_id), "an inbound tunnel")

    # ------------------------------------------------------------------ the bytes

    async def _forward(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        opening: pb.TunnelOpen,
        what: str,
    ) -> None:
        """Copy bytes both ways between a local connection and a tunnel, until either ends."""
        call = self._stub.Tunnel()
        sender: asyncio.Future[None] | None = None
        try:
            await call.write(pb.TunnelChunk(open=opening))
            sender = asyncio.ensure_future(_send(reader, call))
            while True:
                chunk = await call.read()
                if chunk is grpc.aio.EOF:
                    break
                writer.write(chunk.data)
                await writer.drain()
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
            # Not a warning: the call or channel that used the tunnel fails and says so, and
            # when the head goes away every tunnel ends at once (the driver's session with it
            # says that, once). A head refusing a tunnel says why in its own log.
            log.debug("%s through the head at %s ended: %s: %s", what, self.head_address,
                      (await call.code()).name, await call.details())
        except (ConnectionError, OSError):
            pass
        finally:
            if sender is not None:
                sender.cancel()
            call.cancel()
            writer.close()

    def _spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        if self._reverse is not None:
            self._reverse.cancel()
        for server in self._servers:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=1.0)
        if self._channel is not None:
            await self._channel.close()
        shutil.rmtree(self.directory, ignore_errors=True)


async def _send(reader: asyncio.StreamReader, call: Any) -> None:
    try:
        while True:
            data = await reader.read(CHUNK)
            if not data:
                break
            await call.write(pb.TunnelChunk(data=data))
        await call.done_writing()
    except (ConnectionError, OSError, grpc.aio.AioRpcError, asyncio.InvalidStateError):
        pass


def _why(error: BaseException) -> str:
    if isinstance(error, grpc.aio.AioRpcError):
        return f"{error.code().name}: {error.details()}"
    if isinstance(error, TimeoutError):
        return "no answer in time"
    return str(error)
