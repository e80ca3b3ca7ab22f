"""The head's relay: how a driver outside the cluster reaches it through the client port alone.

A laptop behind ``kubectl port-forward`` reaches one port of the cluster, the head's, and is
not reachable from it. Two designs were on the table:

- a per-client proxy process on the head pod acting as the driver's in-cluster owner (Ray
  Client's): every API call becomes an RPC to the proxy, which needs its own protocol for
  each of them, its own copy of the owner's state, and whose crash loses the driver's objects;
- a byte relay (this module): the driver stays the owner, with all of its logic unchanged, and
  only its *connections* change. Each one it would open to a cluster address (a node agent's
  gRPC, a worker's task channel or CoreWorker service) becomes a ``Tunnel`` stream to the head,
  which opens the TCP connection on its behalf and copies bytes both ways. Connections the
  cluster would open to the driver (workers pushing logs, borrowers asking for objects) land on
  a port the head listens on for it (``Reverse``) and are handed over as tunnels too; until its
  driver takes one, at most ``INBOUND_CAP`` of them wait, each with a small read-ahead buffer.

The relay was chosen because it touches the hot path least: no message is re-encoded, nothing
of the owner moves, TLS and the token still run end to end with each peer, and a process
inside the cluster never sees a difference. Only outside drivers pay, with an extra hop
through the head. Objects stream through in chunks as the peers send them; the head holds at
most a chunk of each direction (gRPC flow control on one side, socket backpressure on the
other), never an object whole.

The head dials only addresses of this cluster: a live node agent, a worker of one (asked of
that node's agent), a driver of a running job, or the head itself. Anything else is refused:
a relay that dialed anywhere would let any token holder reach the whole pod network. A driver's
address is what the driver declared, so it counts only as the head saw it: one of the head's
own reverse listeners, or an address on the host the driver's session came from (and, unless
the cluster itself runs on loopback, not a loopback one). Declaring someone else's address
gets nothing. Every call carries the cluster token, like every RPC of the head.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import socket
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import grpc

from ember.runtime.wire import accept_limits
from ember.runtime.wire.protocol import ember_pb2 as pb
from ember.runtime.wire.protocol import ember_pb2_grpc as rpc_pb

if TYPE_CHECKING:
    from ember.runtime.head.head import Head

log = logging.getLogger("ember.runtime.head.relay")

CHUNK = 4 << 20  # bytes per tunnel message, at most
CONNECT_TIMEOUT = 10.0
ACCEPT_TIMEOUT = 10.0  # an inbound connection its driver does not take by then is closed
ASK_TIMEOUT = 5.0
INBOUND_CAP = 64  # inbound connections one driver has not taken yet, at most
INBOUND_BUFFER = 64 << 10  # bytes read ahead of an inbound connection (twice this, at most)


class Relay(rpc_pb.RelayServicer):
    def __init__(self, head: Head, host: str) -> None:
        self.head = head
        self.host = host  # where the head listens for the cluster: reverse ports go there too
        # Inbound connections announced on a Reverse stream, waiting for their tunnel.
        self._inbound: dict[bytes, tuple[asyncio.StreamReader, asyncio.StreamWriter]] = {}
        # Where the head listens for drivers outside the cluster (Reverse streams open now).
        self.listening: set[str] = set()
        self._crowded = accept_limits.DropTally(
            "relay", f"{INBOUND_CAP} inbound connections already wait for their driver", log
        )

    # ------------------------------------------------------------------ tunnels

    async def Tunnel(
        self, request_iterator: AsyncIterator[pb.TunnelChunk], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.TunnelChunk]:
        try:
            first = await anext(aiter(request_iterator))
        except StopAsyncIteration:
            return
        if first.open.accept:
            taken = self._inbound.pop(first.open.accept, None)
            if taken is None:
                await context.abort(
                    grpc.StatusCode.NOT_FOUND,
                    "no inbound connection waits under that id (it was closed, or taken)",
                )
                return
            reader, writer = taken
            what = f"inbound connection from {_peer(writer)}"
        else:
            target = first.open.target
            if not await self.allows(target):
                log.warning("refused a tunnel to %s: not an address of this cluster", target)
                await context.abort(
                    grpc.StatusCode.PERMISSION_DENIED,
                    f"the head relays only to addresses of this cluster (its node agents, their "
                    f"workers, drivers); {target!r} is none of them",
                )
                return
            host, _, port = target.rpartition(":")
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(host, int(port), limit=CHUNK), CONNECT_TIMEOUT
                )
            except (OSError, TimeoutError) as error:
                await context.abort(
                    grpc.StatusCode.UNAVAILABLE, f"the head cannot connect to {target}: {error}"
                )
                return
            what = f"tunnel to {target}"
        if first.data:
            writer.write(first.data)
        upstream = asyncio.ensure_future(_copy_in(request_iterator, writer))
        try:
            while True:
                data = await reader.read(CHUNK)
                if not data:
                    break
                yield pb.TunnelChunk(data=data)
        except (ConnectionError, OSError) as error:
            log.debug("%s broke: %s", what, error)
        finally:
            upstream.cancel()
            writer.close()

    async def allows(self, target: str) -> bool:
        """Whether ``target`` is an address of this cluster the head may dial for a driver."""
        host, _, port = target.rpartition(":")
        if not host or not port.isdigit():
            return False
        head = self.head
        if target == head.actors.address:
            return True
        nodes = head.alive_nodes()
        if any(node.info.address == target for node in nodes):
            return True
        if target in self.listening:
            return True
        if any(job.alive and job.driver_address == target and self._observed(job.peer, host)
               for job in head.jobs.values()):
            return True
        # A worker: listed by the agent of a node on that host.
        there = [
            node for node in nodes
            if host in (node.info.host, node.info.address.rpartition(":")[0])
        ]
        for node in there:
            try:
                workers = await head.actors.channels.node_agent(node.info.address).ListWorkers(
                    pb.Empty(), timeout=ASK_TIMEOUT
                )
            except grpc.aio.AioRpcError as error:
                log.info("%s could not be asked for its workers: %s", node.describe(), error.code().name)
                continue
            if any(target in (w.address, w.channel_address) for w in workers.workers):
                return True
        return False

    def _observed(self, peer: str, host: str) -> bool:
        """Whether a driver whose session came from ``peer`` (gRPC's "ipv4:10.0.0.7:40000")
        may be reached at ``host``: the host it came from, and a loopback one only when the
        head itself is on loopback (else it would reach the head pod's own ports)."""
        kind, _, rest = peer.partition(":")
        if kind not in ("ipv4", "ipv6"):
            return False
        seen = rest.rpartition(":")[0].strip("[]")
        declared = host.strip("[]")
        try:
            same = _ip(seen) == _ip(declared)
            loopback = _ip(declared).is_loopback
        except ValueError:
            return False
        if loopback:
            head_host = self.head.actors.address.rpartition(":")[0].strip("[]")
            try:
                return same and ipaddress.ip_address(head_host).is_loopback
            except ValueError:
                return same and head_host == "localhost"
        return same

    # ------------------------------------------------------------------ the reverse path

    async def Reverse(
        self, request: pb.ReverseHello, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ReverseEvent]:
        """Listen for the cluster on a driver's behalf while the stream lasts; announce each
        connection that arrives, for the driver to take with a tunnel."""
        arrived: asyncio.Queue[bytes] = asyncio.Queue()
        mine: set[bytes] = set()

        def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            # Until its driver takes it, whoever connected is unauthenticated: few of them, and
            # little of what they send, are kept.
            mine.intersection_update(self._inbound)
            if len(mine) >= INBOUND_CAP:
                self._crowded.add(_peer(writer))
                writer.close()
                return
            connection_id = os.urandom(16)
            self._inbound[connection_id] = (reader, writer)
            mine.add(connection_id)
            arrived.put_nowait(connection_id)
            asyncio.get_running_loop().call_later(ACCEPT_TIMEOUT, self._expire, connection_id)

        server = await asyncio.start_server(on_connect, self.host, 0, limit=INBOUND_BUFFER)
        port = server.sockets[0].getsockname()[1]
        address = f"{advertised_host(self.host)}:{port}"
        log.info("driver pid %d outside the cluster is reached at %s, through the head", request.pid, address)
        self.listening.add(address)
        try:
            yield pb.ReverseEvent(listening=address)
            while True:
                yield pb.ReverseEvent(incoming=await arrived.get())
        finally:
            self.listening.discard(address)
            server.close()
            for connection_id in mine:
                taken = self._inbound.pop(connection_id, None)
                if taken is not None:
                    taken[1].close()
            log.info("driver pid %d left; stopped listening at %s for it", request.pid, address)

    def _expire(self, connection_id: bytes) -> None:
        taken = self._inbound.pop(connection_id, None)
        if taken is not None:
            log.warning("closed the inbound connection from %s: its driver did not take it", _peer(taken[1]))
            taken[1].close()


async def _copy_in(chunks: AsyncIterator[pb.TunnelChunk], writer: asyncio.StreamWriter) -> None:
    """The driver's bytes to the peer, as fast as the peer takes them; the driver ending its
    side closes the connection."""
    try:
        async for chunk in chunks:
            writer.write(chunk.data)
            await writer.drain()
    except (ConnectionError, OSError, grpc.aio.AioRpcError):
        pass
    finally:
        writer.close()


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An address, an IPv4 one seen through an IPv6 socket (``::ffff:10.0.0.7``) as IPv4."""
    address = ipaddress.ip_address(text)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def advertised_host(host: str) -> str:
    """The host the cluster reaches this head by: the one it listens on, or for a wildcard the
    pod's own address (``POD_IP``, as the operator sets it) or its hostname's."""
    if host not in ("", "0.0.0.0", "::"):
        return host
    pod_ip = os.environ.get("POD_IP")
    if pod_ip:
        return pod_ip
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"


def _peer(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    return f"{peer[0]}:{peer[1]}" if peer else "?"
