"""The node agent's leases, driven through its gRPC handlers with a pool the test controls.

The pool stands in for the zygote: the test says when a worker says hello, when its session
breaks and when its exit is reported, so that a race between a worker's death and an owner's
request can be played in either order, every time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ember.runtime.node.node_agent import NodeAgent
from ember.runtime.node.object_store import ObjectStore
from ember.runtime.node.worker_pool import DEAD, STARTING, WorkerHandle
from ember.runtime.wire import resources
from ember.runtime.wire.protocol import ember_pb2 as pb

ACTOR = b"a" * 16
TOTAL = resources.to_fixed({"CPU": 2, "GPU": 1})


class Pool:
    """The pool's side the agent uses; workers start only when the test makes them."""

    def __init__(self) -> None:
        self.workers: dict[bytes, WorkerHandle] = {}
        self.broken = ""
        self.killed: list[WorkerHandle] = []

    def add(self, worker_id: bytes) -> WorkerHandle:
        worker = self.workers[worker_id] = WorkerHandle(worker_id)
        return worker

    def spawn(self) -> WorkerHandle | None:
        return None

    def starting(self) -> int:
        return sum(1 for w in self.workers.values() if w.state == STARTING)

    def kill(self, worker: WorkerHandle) -> None:
        self.killed.append(worker)

    def forget(self, worker: WorkerHandle) -> None:
        self.workers.pop(worker.worker_id, None)


class Stream:
    """One side of a gRPC stream: what the test sends, until it closes it."""

    def __init__(self) -> None:
        self._messages: asyncio.Queue[object] = asyncio.Queue()

    def send(self, message: object) -> None:
        self._messages.put_nowait(message)

    def close(self) -> None:
        self._messages.put_nowait(None)

    def __aiter__(self) -> AsyncIterator[object]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[object]:
        while (message := await self._messages.get()) is not None:
            yield message


class Context:
    """What the handler writes back."""

    def __init__(self) -> None:
        self.written: asyncio.Queue[pb.LeaseServerMessage] = asyncio.Queue()

    async def write(self, message: pb.LeaseServerMessage) -> None:
        self.written.put_nowait(message)

    async def next(self) -> pb.LeaseServerMessage:
        return await asyncio.wait_for(self.written.get(), 5)


def _free(agent: NodeAgent) -> dict[str, float]:
    """What the node reports free to the head."""
    available = agent.node_report().available.quantities
    return {name: available.get(name, 0.0) for name in ("CPU", "GPU")}


def _agent(tmp_path: Path, pool: Pool) -> NodeAgent:
    store = ObjectStore(str(tmp_path / "store"), 1 << 20, str(tmp_path / "spill"))
    return NodeAgent(b"n" * 16, "127.0.0.1", TOTAL, pool, 0, store)


async def _start_worker(agent: NodeAgent, pool: Pool) -> tuple[WorkerHandle, Stream, asyncio.Future[None]]:
    worker = pool.add(b"w" * 16)
    stream = Stream()
    session = asyncio.ensure_future(agent.WorkerSession(stream, Context()))
    stream.send(pb.WorkerMessage(hello=pb.WorkerHello(
        worker_id=worker.worker_id, address="127.0.0.1:7001", pid=4242, channel_address="127.0.0.1:7002",
    )))
    await asyncio.sleep(0.01)
    return worker, stream, session


def _head_session(agent: NodeAgent) -> tuple[Stream, Context, asyncio.Future[None]]:
    stream, context = Stream(), Context()
    session = asyncio.ensure_future(agent.Leases(stream, context))
    stream.send(pb.LeaseClientMessage(owner=pb.LeaseOwner(owner_address="127.0.0.1:6379", head=True)))
    return stream, context, session


async def _orphaned_actor(agent: NodeAgent, pool: Pool) -> tuple[WorkerHandle, Stream, asyncio.Future[None]]:
    """A detached actor holding a CPU and a GPU, whose head went away: its lease is kept."""
    worker, worker_stream, worker_session = await _start_worker(agent, pool)
    head, context, session = _head_session(agent)
    shape = pb.ResourceSet(quantities={"CPU": 1, "GPU": 1})
    head.send(pb.LeaseClientMessage(request=pb.LeaseRequest(
        request_id=1, shape=shape, hold=shape, hold_set=True, job_id=b"j", actor_id=ACTOR, detached=True,
    )))
    grant = await context.next()
    assert grant.WhichOneof("kind") == "grant"
    assert _free(agent) == {"CPU": 1, "GPU": 0}
    head.close()
    await session
    assert ACTOR in agent.leases.orphans
    return worker, worker_stream, worker_session


def test_a_restarted_head_takes_back_a_detached_actor_and_its_resources_stay_held(tmp_path: Path) -> None:
    async def scenario() -> None:
        pool = Pool()
        agent = _agent(tmp_path, pool)
        await _orphaned_actor(agent, pool)

        head, context, session = _head_session(agent)
        head.send(pb.LeaseClientMessage(adopt=pb.AdoptRequest(request_id=7, actor_id=ACTOR)))
        reply = await context.next()
        assert reply.WhichOneof("kind") == "grant" and reply.grant.request_id == 7
        assert agent.leases.orphans == {}
        assert _free(agent) == {"CPU": 1, "GPU": 0}
        head.close()
        await session

    asyncio.run(scenario())


@pytest.mark.parametrize("exit_reported_first", [False, True])
def test_an_orphaned_actor_whose_worker_dies_as_a_head_asks_for_it_gives_its_resources_back(
    tmp_path: Path, exit_reported_first: bool
) -> None:
    # The worker's session breaks; the agent waits for the zygote's exit report to say how it
    # ended. A restarted head asking for the actor in that moment is refused, and the lease's
    # resources still come back once the worker is gone.
    async def scenario() -> None:
        pool = Pool()
        agent = _agent(tmp_path, pool)
        worker, worker_stream, worker_session = await _orphaned_actor(agent, pool)

        if exit_reported_first:
            worker.returncode = -9
            worker.exited.set()
        worker_stream.close()
        await worker_session
        await asyncio.sleep(0.01)
        assert worker.state == DEAD

        head, context, session = _head_session(agent)
        head.send(pb.LeaseClientMessage(adopt=pb.AdoptRequest(request_id=7, actor_id=ACTOR)))
        reply = await context.next()
        assert reply.WhichOneof("kind") == "rejected"
        assert "keeps no worker for actor" in reply.rejected.reason

        worker.returncode = -9
        worker.exited.set()
        for _ in range(100):
            if worker.worker_id not in pool.workers:
                break
            await asyncio.sleep(0.01)
        assert worker.worker_id not in pool.workers
        assert agent.leases.orphans == {}
        assert _free(agent) == {"CPU": 2, "GPU": 1}
        head.close()
        await session

    asyncio.run(scenario())


def test_a_worker_dying_under_the_heads_lease_is_reported_with_its_actor_and_job(tmp_path: Path) -> None:
    # The head's actor manager leases without a pid or job of its own: the failure the head
    # shows names the head, the actor and its job, never "owner pid 0 ... (job )".
    async def scenario() -> None:
        pool = Pool()
        agent = _agent(tmp_path, pool)
        worker, worker_stream, worker_session = await _start_worker(agent, pool)
        head, context, session = _head_session(agent)
        shape = pb.ResourceSet(quantities={"CPU": 1})
        head.send(pb.LeaseClientMessage(request=pb.LeaseRequest(
            request_id=1, shape=shape, job_id=b"\x07\x00\x00\x00", actor_id=ACTOR,
        )))
        assert (await context.next()).WhichOneof("kind") == "grant"
        worker.returncode = -9
        worker.exited.set()
        worker_stream.close()
        await worker_session
        for _ in range(100):
            if agent.failures:
                break
            await asyncio.sleep(0.01)
        (failure,) = agent.node_report().failures
        assert f"while leased to the head at 127.0.0.1:6379 for actor {ACTOR.hex()[:12]} of job 07000000" in failure
        assert "pid 0" not in failure and "(job )" not in failure
        head.close()
        await session

    asyncio.run(scenario())


def test_an_owner_names_only_what_it_said_of_itself() -> None:
    from ember.runtime.node.lease_records import OwnerSession

    owner = OwnerSession()
    assert owner.describe() == "an owner"
    owner.pid, owner.address, owner.job_id = 12, "127.0.0.1:5000", b"\x01\x00\x00\x00"
    assert owner.describe() == "owner pid 12 at 127.0.0.1:5000 (job 01000000)"
