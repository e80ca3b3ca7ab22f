"""The node agent grants GPU devices with its leases: disjoint whole devices, packed fractions,
a request that waits while no device fits it (even when the GPUs free add up), and a refusal
for a count that is no set of devices. Driven through the agent's gRPC handlers, with workers
the test starts (see test_leases)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ember.runtime.node.gpu_devices import GpuDevices
from ember.runtime.node.node_agent import NodeAgent
from ember.runtime.node.object_store import ObjectStore
from ember.runtime.wire import resources
from ember.runtime.wire.protocol import ember_pb2 as pb
from tests.unit.test_leases import Context, Pool, Stream

TOTAL = resources.to_fixed({"CPU": 8, "GPU": 2})


class Owner:
    """One owner's lease stream to the agent."""

    def __init__(self, agent: NodeAgent) -> None:
        self.stream, self.context = Stream(), Context()
        self.session = asyncio.ensure_future(agent.Leases(self.stream, self.context))
        self.stream.send(pb.LeaseClientMessage(owner=pb.LeaseOwner(
            job_id=b"j", owner_address="127.0.0.1:7000", pid=1,
        )))
        self.requests = 0

    def ask(self, gpus: float) -> int:
        self.requests += 1
        shape = pb.ResourceSet(quantities={"CPU": 1, "GPU": gpus})
        self.stream.send(pb.LeaseClientMessage(request=pb.LeaseRequest(
            request_id=self.requests, shape=shape, task_name="f",
        )))
        return self.requests

    async def grant(self) -> pb.LeaseGrant:
        message = await self.context.next()
        while message.WhichOneof("kind") == "reclaim_idle":  # asked while a request waits
            message = await self.context.next()
        assert message.WhichOneof("kind") == "grant", message
        return message.grant

    def release(self, grant: pb.LeaseGrant) -> None:
        self.stream.send(pb.LeaseClientMessage(release=pb.LeaseReturn(lease_id=grant.lease_id)))

    async def close(self) -> None:
        self.stream.close()
        await self.session


async def _node(tmp_path: Path, workers: int, device_ids: list[str]) -> tuple[NodeAgent, list[Stream]]:
    pool = Pool()
    store = ObjectStore(str(tmp_path / "store"), 1 << 20, str(tmp_path / "spill"))
    agent = NodeAgent(b"n" * 16, "127.0.0.1", TOTAL, pool, 0, store, gpus=GpuDevices(device_ids))
    streams = []
    for index in range(workers):
        worker = pool.add(bytes([index + 1]) * 16)
        stream = Stream()
        asyncio.ensure_future(agent.WorkerSession(stream, Context()))
        stream.send(pb.WorkerMessage(hello=pb.WorkerHello(
            worker_id=worker.worker_id, address=f"127.0.0.1:{7100 + index}", pid=4000 + index,
            channel_address=f"127.0.0.1:{7200 + index}",
        )))
        streams.append(stream)
    await asyncio.sleep(0.01)
    return agent, streams


def _gpu_free(agent: NodeAgent) -> float:
    return agent.node_report().available.quantities.get("GPU", 0.0)


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_whole_gpus_are_granted_disjoint_devices_and_come_back(tmp_path: Path) -> None:
    async def scenario() -> None:
        agent, _ = await _node(tmp_path, 4, ["3", "5"])
        owner = Owner(agent)
        owner.ask(1)
        owner.ask(1)
        first, second = await owner.grant(), await owner.grant()
        assert {tuple(first.gpu_ids), tuple(second.gpu_ids)} == {("3",), ("5",)}
        third = owner.ask(1)
        await _settle()
        assert [r.request_id for r in agent.leases.queue] == [third]  # no device left: it waits
        assert _gpu_free(agent) == 0
        owner.release(first)
        granted = await owner.grant()
        assert granted.request_id == third and list(granted.gpu_ids) == list(first.gpu_ids)
        await owner.close()
        assert _gpu_free(agent) == 2  # the owner's leases ended with its stream

    asyncio.run(scenario())


def test_fractions_pack_and_a_whole_gpu_waits_for_a_whole_device(tmp_path: Path) -> None:
    async def scenario() -> None:
        agent, _ = await _node(tmp_path, 5, ["0", "1"])
        owner = Owner(agent)
        halves = []
        for _ in range(3):
            owner.ask(0.5)
            halves.append(await owner.grant())
        assert [list(g.gpu_ids) for g in halves] == [["0"], ["0"], ["1"]]
        owner.release(halves[0])
        await _settle()
        assert _gpu_free(agent) == 1.0  # half of each device: one GPU in all, but no device
        whole = owner.ask(1)
        await _settle()
        assert [r.request_id for r in agent.leases.queue] == [whole]
        owner.release(halves[1])  # device 0 is whole again
        granted = await owner.grant()
        assert granted.request_id == whole and list(granted.gpu_ids) == ["0"]
        await owner.close()

    asyncio.run(scenario())


def test_more_than_one_gpu_that_is_not_whole_devices_is_refused(tmp_path: Path) -> None:
    async def scenario() -> None:
        agent, _ = await _node(tmp_path, 1, ["0", "1"])
        owner = Owner(agent)
        owner.ask(1.5)
        message = await owner.context.next()
        assert message.WhichOneof("kind") == "rejected" and message.rejected.infeasible
        assert "num_gpus=1.5: more than one GPU must be a whole number of devices" in message.rejected.reason
        await owner.close()

    asyncio.run(scenario())
