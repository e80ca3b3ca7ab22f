"""Leases of a runtime_env at the node agent, with a pool and a package fetch the test controls:
a request waits for its environment's setup holding nothing, is granted only a worker of that
environment (never an idle default one), and is refused saying why when the setup fails."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ember.runtime.node.node_agent import NodeAgent
from ember.runtime.node.object_store import ObjectStore
from ember.runtime.node.worker_pool import STARTING, WorkerHandle, WorkerSetup
from ember.runtime.wire import package_format, resources
from ember.runtime.wire import runtime_env as env_spec
from ember.runtime.wire.protocol import ember_pb2 as pb
from tests.unit.test_leases import Context, Stream

TOTAL = resources.to_fixed({"CPU": 2})
SHAPE = pb.ResourceSet(quantities={"CPU": 1})


class Pool:
    """The pool's side the agent uses; the test says when a started worker is ready."""

    def __init__(self) -> None:
        self.workers: dict[bytes, WorkerHandle] = {}
        self.broken = ""
        self.spawned: list[WorkerSetup | None] = []

    def add(self, setup: WorkerSetup | None = None) -> WorkerHandle:
        worker = WorkerHandle(bytes([len(self.workers) + 1]) * 16)
        worker.setup = setup
        self.workers[worker.worker_id] = worker
        return worker

    def spawn(self, setup: WorkerSetup | None = None) -> WorkerHandle | None:
        self.spawned.append(setup)
        return self.add(setup)

    def starting(self, setup: WorkerSetup | None = None) -> int:
        return sum(1 for w in self.workers.values() if w.state == STARTING and w.setup is setup)

    def kill(self, worker: WorkerHandle) -> None:
        pass

    def forget(self, worker: WorkerHandle) -> None:
        self.workers.pop(worker.worker_id, None)


class Fetch:
    """Packages the head holds; a fetch waits until the test lets it finish."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.error = ""
        self.data = package_format.pack_mapping({"mod.py": "X = 1\n"})
        self.uri = package_format.uri_of(self.data)

    async def __call__(self, uri: str) -> bytes:
        await self.release.wait()
        if self.error:
            raise package_format.PackageError(self.error)
        return self.data


# The sessions' tasks: asyncio keeps only weak references to tasks, so a session nobody holds
# can be collected mid-test by the cyclic collector (its worker then "ends").
_sessions: set[asyncio.Future[None]] = set()


def _keep(session: asyncio.Future[None]) -> None:
    _sessions.add(session)
    session.add_done_callback(_sessions.discard)


async def _hello(agent: NodeAgent, worker: WorkerHandle) -> None:
    stream = Stream()
    _keep(asyncio.ensure_future(agent.WorkerSession(stream, Context())))
    stream.send(pb.WorkerMessage(hello=pb.WorkerHello(
        worker_id=worker.worker_id, address=f"127.0.0.1:{7000 + worker.worker_id[0]}", pid=4000 + worker.worker_id[0],
        channel_address="127.0.0.1:1",
    )))
    await asyncio.sleep(0.01)


def _setup(tmp_path: Path) -> tuple[NodeAgent, Pool, Fetch]:
    pool = Pool()
    store = ObjectStore(str(tmp_path / "store"), 1 << 20, str(tmp_path / "spill"))
    agent = NodeAgent(b"n" * 16, "127.0.0.1", TOTAL, pool, 0, store, session_dir=str(tmp_path))  # type: ignore[arg-type]
    fetch = Fetch()
    agent.runtime_envs.fetch = fetch
    return agent, pool, fetch


def _owner(agent: NodeAgent) -> tuple[Stream, Context]:
    stream, context = Stream(), Context()
    _keep(asyncio.ensure_future(agent.Leases(stream, context)))
    stream.send(pb.LeaseClientMessage(owner=pb.LeaseOwner(job_id=b"j", owner_address="127.0.0.1:6000", pid=1)))
    return stream, context


def test_a_request_waits_for_its_environment_holding_nothing_and_gets_only_its_workers(tmp_path: Path) -> None:
    async def scenario() -> None:
        agent, pool, fetch = _setup(tmp_path)
        default_worker = pool.add()
        await _hello(agent, default_worker)
        owner, context = _owner(agent)
        env = env_spec.to_json({"working_dir": fetch.uri})
        owner.send(pb.LeaseClientMessage(request=pb.LeaseRequest(request_id=1, shape=SHAPE, runtime_env=env)))
        await asyncio.sleep(0.05)
        # Being set up: the idle default worker is not given to it, and it holds no CPU.
        assert context.written.empty()
        assert agent.leases.available == TOTAL
        owner.send(pb.LeaseClientMessage(request=pb.LeaseRequest(request_id=2, shape=SHAPE)))
        grant = await context.next()
        assert grant.grant.request_id == 2 and grant.grant.worker_id == default_worker.worker_id

        fetch.release.set()  # the setup ends: a worker of the environment is started for it
        for _ in range(100):
            if any(setup is not None for setup in pool.spawned):
                break
            await asyncio.sleep(0.01)
        setup = next(setup for setup in pool.spawned if setup is not None)
        assert setup.paths == (setup.cwd,) and setup.python == ""
        assert context.written.empty()
        env_worker = next(w for w in pool.workers.values() if w.setup is setup)
        await _hello(agent, env_worker)
        grant = await context.next()
        assert grant.grant.request_id == 1 and grant.grant.worker_id == env_worker.worker_id

        # Both returned: a new default request gets the default worker, not the environment's.
        owner.send(pb.LeaseClientMessage(release=pb.LeaseReturn(lease_id=1)))
        owner.send(pb.LeaseClientMessage(release=pb.LeaseReturn(lease_id=2)))
        owner.send(pb.LeaseClientMessage(request=pb.LeaseRequest(request_id=3, shape=SHAPE)))
        grant = await context.next()
        assert grant.grant.request_id == 3 and grant.grant.worker_id == default_worker.worker_id
        owner.close()

    asyncio.run(scenario())


def test_a_request_whose_environment_fails_is_refused_saying_why(tmp_path: Path) -> None:
    async def scenario() -> None:
        agent, pool, fetch = _setup(tmp_path)
        owner, context = _owner(agent)
        env = env_spec.to_json({"working_dir": fetch.uri, "env_vars": {"A": "1"}})
        for request_id in (1, 2):
            owner.send(pb.LeaseClientMessage(request=pb.LeaseRequest(request_id=request_id, shape=SHAPE, runtime_env=env)))
        await asyncio.sleep(0.05)
        fetch.error = "the head has no such package"
        fetch.release.set()
        refused = [await context.next(), await context.next()]
        assert {r.rejected.request_id for r in refused} == {1, 2}
        for reply in refused:
            assert reply.rejected.runtime_env_failed and not reply.rejected.infeasible
            assert "cannot set up runtime_env" in reply.rejected.reason
            assert "the head has no such package" in reply.rejected.reason
        assert pool.spawned == [] and agent.leases.queue == []
        # Asked again soon after: refused at once, not set up again.
        owner.send(pb.LeaseClientMessage(request=pb.LeaseRequest(request_id=3, shape=SHAPE, runtime_env=env)))
        again = await context.next()
        assert again.rejected.request_id == 3 and again.rejected.runtime_env_failed
        owner.close()

    asyncio.run(scenario())
