"""A node's bulk transfer socket, reached without the token: a flood of idle connections and
garbage cost it nothing lasting, and authenticated pulls go on."""

from __future__ import annotations

import os
import selectors
import socket
import time

import ember
from ember import connection
from ember.runtime.core import context
from ember.runtime.node import bulk_transfer
from ember.runtime.wire import auth
from ember.runtime.wire.protocol import ember_pb2 as pb
from tests.security.conftest import (
    CLUSTER_DESCRIPTORS,
    alive,
    close_all,
    cluster_pids,
    flood,
    usage,
)


def _bulk_address() -> str:
    core = context.require_core()
    agent = connection._view().nodes[0].info.address

    async def info() -> pb.StoreInfo:
        return await core.channels.node_agent(agent).GetStoreInfo(pb.Empty())

    return f"{agent.rpartition(':')[0]}:{core.io.run(info()).transfer_port}"


def _pull(address: str, object_id: bytes) -> pb.BulkHeader:
    host, _, port = address.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        bulk_transfer._send_frame(sock, pb.BulkRequest(token=auth.token().encode(), object_id=object_id))
        return bulk_transfer._recv_frame(sock, pb.BulkHeader)


def test_a_flood_of_idle_connections_does_not_stop_the_bulk_server(few_descriptors: object) -> None:
    """Before: one thread per connection, without bound, until accept() failed with EMFILE and
    the accept loop ended for good: no pull from that node was ever served again."""
    _, agent = cluster_pids()
    address = _bulk_address()
    ref = ember.put(os.urandom(1 << 20))  # in the store
    before = usage(agent)
    idle = flood(address, 3 * CLUSTER_DESCRIPTORS)
    selector = selectors.DefaultSelector()
    for sock in idle:
        selector.register(sock, selectors.EVENT_READ)
    most_threads, most_descriptors, dropped = before.threads, before.descriptors, 0
    try:
        deadline = time.monotonic() + 90
        # Until the node drops a connection of ours that sent no request.
        while not dropped and alive(agent) and time.monotonic() < deadline:
            now = usage(agent)
            most_threads = max(most_threads, now.threads)
            most_descriptors = max(most_descriptors, now.descriptors)
            for key, _ in selector.select(0.2):
                dropped += 1
                selector.unregister(key.fileobj)
        print(f"node agent threads: {before.threads} before, at most {most_threads} under {len(idle)} idle "
              f"connections; descriptors {before.descriptors} -> at most {most_descriptors}")
        assert dropped, "no idle connection was ever dropped"
        assert most_threads <= before.threads + bulk_transfer.SERVING + 4, (before, most_threads)
    finally:
        selector.close()
        close_all(idle)
    assert alive(agent)
    header = _pull(address, ref.binary())
    assert header.error == "" and header.size >= 1 << 20


def test_garbage_is_refused_in_one_line(few_descriptors: object) -> None:
    """Before: a request that was no protobuf raised DecodeError in the serving thread, whose
    traceback went into the node agent's log."""
    address = _bulk_address()
    host, _, port = address.rpartition(":")
    for garbage in (b"\x10\x00\x00\x00" + b"\xff" * 16, b"\x03\x00\x00\x00\x0a\xff\xff"):
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            sock.sendall(garbage)
            assert sock.recv(1) == b""
    ref = ember.put(os.urandom(1 << 20))
    assert _pull(address, ref.binary()).error == ""  # served on, and its log is written
    log = os.path.join(few_descriptors.session_dir, "logs", "node-agent.log")  # type: ignore[attr-defined]
    with open(log) as f:
        text = f.read()
    assert "Traceback" not in text and "DecodeError" not in text, text[-3000:]
