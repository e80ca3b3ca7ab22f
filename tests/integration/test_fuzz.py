"""Hostile and malformed messages, with a valid token, to every RPC of the head, a node agent
and a driver, and to a worker's task channel: each gets an error, and nothing crashes.

The methods come from the protocol's descriptor, so an RPC added later is fuzzed too. The
messages are random bytes, valid messages cut short, messages with random field values (huge
sizes, unknown ids, strings of garbage) and, for the task channel, frames that lie about their
length. Afterwards every process of the cluster still runs, and the cluster still runs work.
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct
from collections.abc import Iterator
from typing import Any

import grpc
from google.protobuf import message_factory

import ember
from ember import connection
from ember.runtime.core import context
from ember.runtime.wire import auth, task_channel
from ember.runtime.wire.protocol import ember_pb2 as pb
from tests.conftest import processes_of_session

SEED = 20261122
ROUNDS = 4  # messages per method and kind
# Methods whose hostile inputs would take the cluster down by design, not by accident: a node
# session that registers a bogus node, or a worker session pretending to be a worker, is what
# the token exists to keep out. They are still sent garbage, but not well-formed lies.
SESSIONS = {"NodeSession", "WorkerSession"}
# A session stream (a driver's, a node's) that accepted a message stays open: cut it short.
STREAM_TIMEOUT = 0.5


def _random_message(cls: type, rng: random.Random, depth: int = 0) -> Any:
    message = cls()
    for field in cls.DESCRIPTOR.fields:
        if rng.random() < 0.4:
            continue
        repeated = field.is_repeated
        for _ in range(rng.randint(1, 3) if repeated else 1):
            value = _random_value(field, rng, depth)
            if value is None:
                continue
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                continue
            if repeated:
                if field.type == field.TYPE_MESSAGE:
                    getattr(message, field.name).add().CopyFrom(value)
                else:
                    getattr(message, field.name).append(value)
            elif field.type == field.TYPE_MESSAGE:
                getattr(message, field.name).CopyFrom(value)
            else:
                setattr(message, field.name, value)
    return message


def _random_value(field: Any, rng: random.Random, depth: int) -> Any:
    kind = field.type
    if kind == field.TYPE_MESSAGE:
        if depth > 3 or field.message_type.GetOptions().map_entry:
            return None
        return _random_message(message_factory.GetMessageClass(field.message_type), rng, depth + 1)
    if kind in (field.TYPE_BYTES,):
        return rng.choice([b"", rng.randbytes(rng.choice([1, 4, 16, 20, 200]))])
    if kind == field.TYPE_STRING:
        return rng.choice(["", "x" * rng.randint(1, 300), "127.0.0.1:1", "\u0000\uffff", "../../etc/passwd"])
    if kind == field.TYPE_BOOL:
        return rng.random() < 0.5
    if kind in (field.TYPE_DOUBLE, field.TYPE_FLOAT):
        return rng.choice([0.0, -1.0, 1e308, float("inf"), float("nan"), rng.random() * 1e6])
    if kind == field.TYPE_ENUM:
        return rng.choice([v.number for v in field.enum_type.values])
    if kind in (field.TYPE_UINT32, field.TYPE_FIXED32):
        return rng.choice([0, 1, 2**32 - 1, rng.randrange(2**32)])
    if kind in (field.TYPE_UINT64, field.TYPE_FIXED64):
        return rng.choice([0, 1, 2**63, 2**64 - 1, rng.randrange(2**40)])
    if kind in (field.TYPE_INT32, field.TYPE_SINT32, field.TYPE_SFIXED32):
        return rng.choice([0, -1, 2**31 - 1, -(2**31)])
    return rng.choice([0, -1, 2**63 - 1, -(2**63)])


def _payloads(method: Any, rng: random.Random) -> Iterator[bytes]:
    cls = message_factory.GetMessageClass(method.input_type)
    for _ in range(ROUNDS):
        yield rng.randbytes(rng.randint(1, 64))  # garbage
        whole = _random_message(cls, rng).SerializeToString()
        if whole:
            yield whole[: rng.randint(0, len(whole) - 1)]  # cut short
        if method.name not in SESSIONS:
            yield whole  # well-formed, with hostile values
    yield b"\x0a\xff\xff\xff\xff\x0f" + b"x" * 8  # a length prefix far beyond the message


def _targets() -> dict[str, str]:
    core = context.require_core()
    view = connection._view()
    return {
        "Head": core.head_address,
        "Relay": core.head_address,
        "Jobs": core.head_address,
        "Packages": core.head_address,
        "NodeAgent": view.nodes[0].info.address,
        "CoreWorker": core.address,
    }


async def _fuzz_method(channel: grpc.aio.Channel, service: str, method: Any, rng: random.Random) -> int:
    path = f"/ember.{service}/{method.name}"
    metadata = [("authorization", f"Bearer {auth.token()}")]
    errors = 0
    for payload in _payloads(method, rng):
        try:
            if method.client_streaming:
                call = (
                    channel.stream_stream(path) if method.server_streaming else channel.stream_unary(path)
                )(iter([payload, payload]), metadata=metadata, timeout=STREAM_TIMEOUT)
            elif method.server_streaming:
                call = channel.unary_stream(path)(payload, metadata=metadata, timeout=STREAM_TIMEOUT)
            else:
                await channel.unary_unary(path)(payload, metadata=metadata, timeout=3)
                continue
            if method.server_streaming:
                async for _ in call:
                    pass
            else:
                await call
        except grpc.aio.AioRpcError as error:
            assert error.code() != grpc.StatusCode.UNAUTHENTICATED, path
            errors += 1
    return errors


def test_hostile_messages_to_every_rpc_and_the_task_channel(cluster) -> None:
    rng = random.Random(SEED)
    session_processes = processes_of_session(cluster.session_dir)
    assert len(session_processes) >= 3
    targets = _targets()
    fuzzed: list[str] = []

    async def fuzz_all() -> int:
        errors = 0
        for service in pb.DESCRIPTOR.services_by_name.values():
            channel = grpc.aio.insecure_channel(targets[service.name])
            try:
                for method in service.methods:
                    errors += await _fuzz_method(channel, service.name, method, rng)
                    fuzzed.append(f"{service.name}.{method.name}")
            finally:
                await channel.close()
        return errors

    errors = asyncio.run(fuzz_all())
    total = sum(len(s.methods) for s in pb.DESCRIPTOR.services_by_name.values())
    assert len(fuzzed) == total and total >= 30
    assert errors > total, "hostile messages were mostly accepted"

    # The task channel of a worker: garbage, a lying length, a hello that is not one.
    @ember.remote
    class Target:
        def ping(self) -> str:
            return "pong"

    target = Target.remote()
    assert ember.get(target.ping.remote()) == "pong"
    core = context.require_core()

    async def actors() -> pb.ActorList:
        return await core.channels.head(core.head_address).ListActors(pb.Empty())

    address = next(a.channel for a in core.io.run(actors()).actors if a.class_name == "Target")
    host, _, port = address.rpartition(":")
    for frame in (
        rng.randbytes(100),
        struct.pack("<I", 2**31 - 1) + b"x" * 10,
        struct.pack("<I", 0xFFFFFFFF),
        task_channel.encode(pb.ExecuteRequest(tasks=[pb.TaskSpec()])),  # work before a hello
        struct.pack("<I", 5) + b"\xff" * 5,
    ):
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(frame)
            sock.settimeout(2)  # a frame that promises more keeps the connection open
            try:
                while sock.recv(65536):
                    pass
            except (ConnectionResetError, TimeoutError):
                pass

    # The agent's bulk transfer socket: garbage, a huge control frame, unknown objects.
    async def store_info() -> pb.StoreInfo:
        return await core.channels.node_agent(targets["NodeAgent"]).GetStoreInfo(pb.Empty())

    bulk_port = core.io.run(store_info()).transfer_port
    bulk_host = targets["NodeAgent"].rpartition(":")[0]
    for frame in (
        rng.randbytes(50),
        struct.pack("<I", 2**31) + b"x",
        task_channel.encode(pb.BulkRequest(token=auth.token().encode(), object_id=rng.randbytes(20))),
        task_channel.encode(pb.BulkRequest(token=auth.token().encode())),
    ):
        with socket.create_connection((bulk_host, bulk_port), timeout=10) as sock:
            sock.sendall(frame)
            sock.settimeout(2)
            try:
                while sock.recv(65536):
                    pass
            except (ConnectionResetError, TimeoutError):
                pass

    # Everyone is still there, and still works.
    alive = processes_of_session(cluster.session_dir)
    assert set(session_processes) <= set(alive), "a process of the cluster died"
    assert ember.get(target.ping.remote()) == "pong"

    @ember.remote
    def add(a: int, b: int) -> int:
        return a + b

    assert ember.get([add.remote(i, i) for i in range(50)]) == [2 * i for i in range(50)]
    assert len([n for n in ember.nodes() if n["Alive"]]) >= 1
