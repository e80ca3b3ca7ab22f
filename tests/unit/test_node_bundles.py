"""A node agent's placement group bundles (``node/bundles``), driven through its gRPC handlers
with a pool the test controls: all-or-nothing prepares, commits, releases that stop what runs
in a removed group, and late releases of an earlier attempt that must not take a later one's."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ember.runtime.node.node_agent import NodeAgent
from ember.runtime.wire import bundle_resources, resources
from ember.runtime.wire.protocol import ember_pb2 as pb
from tests.unit.test_leases import Context, Pool, Stream, _agent, _start_worker

GROUP = bytes(range(16))
HEX = GROUP.hex()


def _reservation(attempt: int, *bundles: dict[str, float]) -> pb.BundleReservation:
    return pb.BundleReservation(
        placement_group_id=GROUP, group="placement group 'g'", attempt=attempt,
        indexes=list(range(len(bundles))),
        bundles=[pb.ResourceSet(quantities=b) for b in bundles],
    )


async def _prepare(agent: NodeAgent, request: pb.BundleReservation) -> str:
    reply = await agent.PrepareBundles(pb.BundleReservations(reservations=[request]), None)  # type: ignore[arg-type]
    [error] = reply.errors
    return error


async def _commit(agent: NodeAgent, request: pb.BundleReservation) -> str:
    reply = await agent.CommitBundles(pb.BundleReservations(reservations=[request]), None)  # type: ignore[arg-type]
    [error] = reply.errors
    return error


async def _release(agent: NodeAgent, **fields: object) -> None:
    request = pb.BundleReleases(releases=[pb.BundleRelease(placement_group_id=GROUP, **fields)])
    await agent.ReleaseBundles(request, None)  # type: ignore[arg-type]


def _free(agent: NodeAgent) -> dict[str, float]:
    return resources.to_float(agent.leases.available)


def test_a_prepare_takes_all_of_its_bundles_or_none(tmp_path: Path) -> None:
    async def scenario() -> None:
        agent = _agent(tmp_path, Pool())
        error = await _prepare(agent, _reservation(1, {"CPU": 1}, {"CPU": 2}))
        assert "cannot reserve bundles 0, 1 of placement group 'g'" in error
        assert "{CPU: 3} needed, {CPU: 2} free" in error
        assert _free(agent)["CPU"] == 2 and agent.bundles.held == {}
        assert await _prepare(agent, _reservation(1, {"CPU": 1}, {"CPU": 1})) == ""
        assert _free(agent)["CPU"] == 0
        listed = agent.node_report().bundles
        assert [(b.index, b.committed) for b in listed] == [(0, False), (1, False)]
        assert agent._idle_seconds() == 0.0  # a node holding bundles is not idle

    asyncio.run(scenario())


def test_committed_bundles_are_leased_and_a_removal_stops_their_workers(tmp_path: Path) -> None:
    async def scenario() -> None:
        pool = Pool()
        agent = _agent(tmp_path, pool)
        reservation = _reservation(1, {"CPU": 1})
        assert await _prepare(agent, reservation) == ""
        assert await _commit(agent, reservation) == ""
        assert _free(agent)[f"CPU_group_0_{HEX}"] == 1
        worker, _, _ = await _start_worker(agent, pool)
        owner, context = Stream(), Context()
        session = asyncio.ensure_future(agent.Leases(owner, context))
        owner.send(pb.LeaseClientMessage(owner=pb.LeaseOwner(owner_address="127.0.0.1:6000", job_id=b"j")))
        shape = bundle_resources.in_group(resources.to_fixed({"CPU": 1}), HEX, 0)
        owner.send(pb.LeaseClientMessage(request=pb.LeaseRequest(
            request_id=1, shape=pb.ResourceSet(quantities=resources.to_float(shape)),
        )))
        assert (await context.next()).WhichOneof("kind") == "grant"
        assert _free(agent)[f"CPU_group_0_{HEX}"] == 0

        await _release(agent, reason="placement group 'g' was removed", stop_workers=True)
        assert pool.killed == [worker]
        assert _free(agent)["CPU"] == 2  # the bundle's CPU is the node's again
        assert not any("_group_" in name for name in agent.leases.total)
        # The worker's end reaches its owner with the reason, and gives back nothing that is gone.
        worker.returncode = -9
        worker.exited.set()
        agent.on_worker_exit(worker)
        lost = await context.next()
        assert lost.WhichOneof("kind") == "lost"
        assert "was stopped: placement group 'g' was removed" in lost.lost.reason
        await asyncio.sleep(0.01)
        assert not any("_group_" in name for name in agent.leases.available)
        assert _free(agent)["CPU"] == 2
        owner.close()
        await session

    asyncio.run(scenario())


def test_a_late_release_of_an_earlier_attempt_leaves_a_later_one_alone(tmp_path: Path) -> None:
    async def scenario() -> None:
        agent = _agent(tmp_path, Pool())
        assert await _prepare(agent, _reservation(1, {"CPU": 1})) == ""
        # The head gave attempt 1 up (another node refused), then tried again here: attempt 2
        # takes the bundle over and commits it; attempt 1's release arrives only now.
        second = _reservation(2, {"CPU": 1})
        assert await _prepare(agent, second) == ""
        assert _free(agent)["CPU"] == 1  # taken once, not twice
        assert await _commit(agent, second) == ""
        await _release(agent, indexes=[0], attempt=1, reason="attempt 1 failed")
        assert _free(agent)[f"CPU_group_0_{HEX}"] == 1
        # A commit of an attempt the node no longer holds is refused, naming the bundle.
        await _release(agent, attempt=2)
        error = await _commit(agent, second)
        assert "holds no bundle 0 of placement group 'g' for attempt 2" in error
        assert _free(agent)["CPU"] == 2

    asyncio.run(scenario())


def test_a_draining_node_reserves_nothing(tmp_path: Path) -> None:
    async def scenario() -> None:
        agent = _agent(tmp_path, Pool())
        agent.start_drain(pb.DrainOrder(reason="test"))
        assert "is being drained" in await _prepare(agent, _reservation(1, {"CPU": 1}))
        assert _free(agent)["CPU"] == 2

    asyncio.run(scenario())


def test_a_bundles_gpu_counts_once_as_gpu():
    # What a node hands out devices by: num_gpus=1 in bundle 0 asks for GPU under two names
    # (the bundle's and the group's), which stand for one GPU.
    in_bundle = bundle_resources.in_group({"CPU": 1000, "GPU": 1000}, HEX, 0)
    assert bundle_resources.amount(in_bundle, "GPU") == 1000
    assert bundle_resources.amount(bundle_resources.in_group({"GPU": 500}, HEX, -1), "GPU") == 500
    assert bundle_resources.amount({"GPU": 2000, "CPU": 1000}, "GPU") == 2000
    assert bundle_resources.amount(in_bundle, "memory") == 0


def test_one_call_does_each_groups_request_on_its_own(tmp_path: Path) -> None:
    async def scenario() -> None:
        agent = _agent(tmp_path, Pool())
        other, third = bytes([7]) * 16, bytes([8]) * 16
        alone_here = _reservation(1, {"CPU": 1})
        alone_here.commit = True  # the attempt's only node: prepared and committed at once
        too_big = pb.BundleReservation(
            placement_group_id=other, group="placement group 'big'", attempt=1, indexes=[0],
            bundles=[pb.ResourceSet(quantities={"CPU": 2})],
        )
        fits = pb.BundleReservation(
            placement_group_id=third, group="placement group 'c'", attempt=1, indexes=[0],
            bundles=[pb.ResourceSet(quantities={"CPU": 1})],
        )
        reply = await agent.PrepareBundles(pb.BundleReservations(reservations=[alone_here, too_big, fits]), None)  # type: ignore[arg-type]
        first, refused, last = reply.errors
        assert first == "" and last == ""
        assert "cannot reserve bundle 0 of placement group 'big'" in refused
        assert {group_id for group_id, _ in agent.bundles.held} == {GROUP, third}
        assert _free(agent)["CPU"] == 0
        assert _free(agent)[f"CPU_group_0_{HEX}"] == 1  # committed with its prepare
        assert not any(third.hex() in name for name in agent.leases.available)  # prepared only
        # One release call gives back several groups' bundles, each by its own rules.
        await agent.ReleaseBundles(pb.BundleReleases(releases=[
            pb.BundleRelease(placement_group_id=GROUP, attempt=1),
            pb.BundleRelease(placement_group_id=third, attempt=1),
        ]), None)  # type: ignore[arg-type]
        assert agent.bundles.held == {} and _free(agent)["CPU"] == 2
        assert not any("_group_" in name for name in agent.leases.available)

    asyncio.run(scenario())
