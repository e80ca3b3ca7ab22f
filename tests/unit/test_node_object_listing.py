"""A node's answer to "what does each worker hold": a worker released between the listing and
the question refuses the connection and has nothing to say, so it is left out, not reported as a
source that could not be asked (the state API turns those into errors); a live worker that
cannot be asked is still named."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import grpc
import pytest

from ember.runtime.node import node_agent
from ember.runtime.node.worker_pool import IDLE, WorkerHandle
from ember.runtime.wire.protocol import ember_pb2 as pb


class _Refusing:
    async def ListObjects(self, request: pb.Empty, timeout: float) -> pb.ProcessObjects:
        raise grpc.aio.AioRpcError(
            grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(),
            details="failed to connect to all addresses; Connection refused",
        )


class _Answering:
    def __init__(self, pid: int) -> None:
        self.pid = pid

    async def ListObjects(self, request: pb.Empty, timeout: float) -> pb.ProcessObjects:
        return pb.ProcessObjects(pid=self.pid, kind="WORKER")


def _worker(pid: int) -> WorkerHandle:
    worker = WorkerHandle(pid.to_bytes(16, "big"))
    worker.pid, worker.address, worker.state = pid, f"127.0.0.1:{pid}", IDLE
    return worker


async def _listing(workers: list[WorkerHandle], clients: dict[str, object]) -> pb.ClusterObjects:
    agent = SimpleNamespace(
        pool=SimpleNamespace(workers={w.worker_id: w for w in workers}),
        channels=SimpleNamespace(core_worker=lambda address: clients[address]),
        node_id=b"n" * 16,
        address="127.0.0.1:1",
        store=SimpleNamespace(entries={}, capacity=0, used=0, spilled_bytes=0),
        describe=lambda: "node 6e6e6e6e6e6e (127.0.0.1:1)",
    )
    return await node_agent.NodeAgent.ListObjects(agent, pb.Empty(), None)  # type: ignore[arg-type]


@pytest.mark.parametrize("repeat", range(3))
def test_a_worker_exiting_while_asked_is_left_out(repeat: int) -> None:
    async def run() -> pb.ClusterObjects:
        alive, leaving = _worker(101), _worker(102)

        async def exit_later() -> None:
            await asyncio.sleep(0.05 * repeat)
            leaving.exited.set()

        exiting = asyncio.ensure_future(exit_later())
        answer = await _listing([alive, leaving], {alive.address: _Answering(101), leaving.address: _Refusing()})
        await exiting
        return answer

    answer = asyncio.run(run())
    assert [(p.pid, p.error) for p in answer.processes] == [(101, "")]


def test_a_live_worker_that_refuses_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(node_agent, "EXITING_WORKER_GRACE", 0.05)
    worker = _worker(103)
    answer = asyncio.run(_listing([worker], {worker.address: _Refusing()}))
    [process] = answer.processes
    assert process.pid == 103
    assert "worker pid 103 on node 6e6e6e6e6e6e" in process.error and "UNAVAILABLE" in process.error
