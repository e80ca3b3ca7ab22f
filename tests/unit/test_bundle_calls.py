"""The head's placement groups over real node agents' bundles, in one process: the head's calls
to a node travel together (``head/bundle_calls``), yet each group in a call is done or refused
on its own and stays all or nothing; a release under way is not sent twice because a listing
made before it arrived still shows the bundle."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ember.runtime.head import placement_groups
from ember.runtime.head.membership import NodeState
from ember.runtime.head.placement_groups import PlacementGroups
from ember.runtime.node.node_agent import NodeAgent
from ember.runtime.node.object_store import ObjectStore
from ember.runtime.objects import ids
from ember.runtime.wire import resources
from ember.runtime.wire.protocol import ember_pb2 as pb
from tests.unit.test_leases import TOTAL, Pool


class AgentStub:
    """A node agent as the head's channel reaches it: its own handlers, each call written down
    with how many groups it carried; a release may be held until the test lets it through."""

    def __init__(self, agent: NodeAgent) -> None:
        self.agent = agent
        self.calls: list[tuple[str, int]] = []
        self.hold_releases: asyncio.Event | None = None

    async def PrepareBundles(self, request: pb.BundleReservations, timeout: float) -> pb.BundleReplies:
        self.calls.append(("prepare", len(request.reservations)))
        return await self.agent.PrepareBundles(request, None)  # type: ignore[arg-type]

    async def CommitBundles(self, request: pb.BundleReservations, timeout: float) -> pb.BundleReplies:
        self.calls.append(("commit", len(request.reservations)))
        return await self.agent.CommitBundles(request, None)  # type: ignore[arg-type]

    async def ReleaseBundles(self, request: pb.BundleReleases, timeout: float) -> pb.Empty:
        self.calls.append(("release", len(request.releases)))
        if self.hold_releases is not None:
            await self.hold_releases.wait()
        return await self.agent.ReleaseBundles(request, None)  # type: ignore[arg-type]

    def count(self, kind: str) -> int:
        return len([c for c in self.calls if c[0] == kind])


class Channels:
    def __init__(self, stubs: dict[str, AgentStub]) -> None:
        self.stubs = stubs

    def node_agent(self, address: str) -> AgentStub:
        return self.stubs[address]


class Cluster:
    node_types = None
    node_timeout = 30.0

    def __init__(self, nodes: list[NodeState]) -> None:
        self.nodes = {node.node_id: node for node in nodes}

    def alive_nodes(self) -> list[NodeState]:
        return list(self.nodes.values())

    def node_by_id(self, node_id: bytes) -> NodeState | None:
        return self.nodes.get(node_id)


class Setup:
    def __init__(self, tmp_path: Path, names: list[str]) -> None:
        self.agents: dict[str, NodeAgent] = {}
        self.stubs: dict[str, AgentStub] = {}
        nodes = []
        for i, name in enumerate(names):
            store = ObjectStore(str(tmp_path / name / "store"), 1 << 20, str(tmp_path / name / "spill"))
            agent = NodeAgent(bytes([i + 1]) * 16, "127.0.0.1", TOTAL, Pool(), 0, store)
            address = f"127.0.0.1:{7000 + i}"
            self.agents[name] = agent
            self.stubs[name] = AgentStub(agent)
            nodes.append(NodeState(pb.NodeInfo(
                node_id=agent.node_id, address=address,
                total=pb.ResourceSet(quantities=resources.to_float(TOTAL)),
            )))
        self.nodes = {name: node for name, node in zip(names, nodes, strict=True)}
        self.cluster = Cluster(nodes)
        channels = Channels({node.info.address: self.stubs[name] for name, node in self.nodes.items()})
        self.groups = PlacementGroups(self.cluster, channels)  # type: ignore[arg-type]

    def create(self, strategy: str, *bundles: dict[str, float]) -> bytes:
        group_id = ids.random_id()
        error = self.groups.create(pb.PlacementGroupSpec(
            placement_group_id=group_id, strategy=strategy,
            bundles=[pb.ResourceSet(quantities=b) for b in bundles],
        ))
        assert error == ""
        return group_id

    def state(self, group_id: bytes) -> int:
        return self.groups.groups[group_id].state

    def held(self, name: str) -> set[bytes]:
        return {group_id for group_id, _ in self.agents[name].bundles.held}

    def free_cpu(self, name: str) -> float:
        return resources.to_float(self.agents[name].leases.available)["CPU"]


async def _until(check: Callable[[], Any], what: str) -> None:
    for _ in range(2000):
        if check():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"gave up waiting for {what}")


def test_groups_placed_at_once_share_one_call_per_node_and_each_is_created(tmp_path: Path) -> None:
    async def scenario() -> None:
        setup = Setup(tmp_path, ["a"])
        made = [setup.create("PACK", {"CPU": 0.1}) for _ in range(10)]
        await _until(lambda: all(setup.state(g) == pb.PG_CREATED for g in made), "the groups created")
        stub = setup.stubs["a"]
        # One node each: prepared and committed in one request, and the ten requests asked for
        # in one turn went together.
        assert stub.count("commit") == 0
        assert stub.count("prepare") < 10
        assert sum(n for kind, n in stub.calls if kind == "prepare") == 10
        assert setup.held("a") == set(made)
        assert setup.free_cpu("a") == pytest.approx(1.0)
        await setup.groups.close()

    asyncio.run(scenario())


def test_a_group_refused_in_a_shared_call_gives_back_what_it_prepared_and_the_other_is_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(placement_groups, "RETRY_DELAYS", (60.0,))  # no retry within the test

    async def scenario() -> None:
        setup = Setup(tmp_path, ["a", "b"])
        # Node b has one CPU less free than the head believes (its report has not come yet).
        stray = pb.BundleReservations(reservations=[pb.BundleReservation(
            placement_group_id=b"s" * 16, group="a stray group", attempt=1, indexes=[0],
            bundles=[pb.ResourceSet(quantities={"CPU": 1})],
        )])
        assert list((await setup.agents["b"].PrepareBundles(stray, None)).errors) == [""]  # type: ignore[arg-type]
        first = setup.create("STRICT_SPREAD", {"CPU": 1}, {"CPU": 1})
        second = setup.create("STRICT_SPREAD", {"CPU": 1}, {"CPU": 1})
        record = setup.groups.groups[second]
        await _until(lambda: setup.state(first) == pb.PG_CREATED, "the first group created")
        await _until(lambda: "cannot reserve bundle" in record.info.waiting_for, "the second group refused")
        # Both groups' prepares to b went in one call; b took the first and refused the second.
        assert ("prepare", 2) in setup.stubs["b"].calls
        assert "node" in record.info.waiting_for and "CPU" in record.info.waiting_for
        # What the second group prepared on a is given back: it holds nothing anywhere.
        await _until(lambda: second not in setup.held("a"), "the second group's bundle on a released")
        assert setup.state(second) == pb.PG_PENDING
        assert second not in setup.held("b")
        assert setup.held("a") == {first}
        assert setup.free_cpu("a") == pytest.approx(1.0)
        assert setup.free_cpu("b") == pytest.approx(0.0)
        assert record.info.bundle_nodes == [b"", b""]
        await setup.groups.close()

    asyncio.run(scenario())


def test_a_listing_made_before_a_release_arrived_does_not_send_it_again(tmp_path: Path) -> None:
    async def scenario() -> None:
        setup = Setup(tmp_path, ["a"])
        group_id = setup.create("PACK", {"CPU": 1})
        await _until(lambda: setup.state(group_id) == pb.PG_CREATED, "the group created")
        stub = setup.stubs["a"]
        stub.hold_releases = asyncio.Event()
        listed = setup.agents["a"].bundles.listing(force=True)
        assert listed is not None and [b.placement_group_id for b in listed] == [group_id]
        setup.groups.remove(group_id, "the test removed it")
        await _until(lambda: stub.count("release") == 1, "the release sent")
        # The node's listing, made before the release reached it, still shows the bundle.
        setup.groups.reconcile(setup.nodes["a"], listed)
        await asyncio.sleep(0.05)
        assert stub.count("release") == 1
        stub.hold_releases.set()
        await _until(lambda: not setup.held("a"), "the bundle released")
        # Once the release was answered, a bundle still listed is released again (a release
        # that was lost is made good by the next listing).
        setup.groups.reconcile(setup.nodes["a"], listed)
        await _until(lambda: stub.count("release") == 2, "the listed bundle released again")
        await setup.groups.close()

    asyncio.run(scenario())
