"""The head's work that spans the whole cluster is done once per interval, not once per event.

A real ``Head`` in this process, with simulated nodes fed to ``Head.NodeSession`` as an agent's
stream would be; the head's writes to each node are recorded, not sent. What is counted is how
often the head did the cluster-wide work (file writes, messages), never how long it took.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from ember.runtime.head import head as head_module
from ember.runtime.head.head import Head
from ember.runtime.wire.protocol import ember_pb2 as pb


class SimulatedNode:
    def __init__(self, head: Head, i: int) -> None:
        self.i = i
        self.node_id = os.urandom(28)
        self.inbox: asyncio.Queue[pb.NodeMessage | None] = asyncio.Queue()
        self.received: list[pb.HeadToNode] = []
        self.session = asyncio.ensure_future(head.NodeSession(self._messages(), self))  # type: ignore[arg-type]

    async def write(self, message: pb.HeadToNode) -> None:  # the head's orders to this node
        self.received.append(message)

    async def _messages(self) -> AsyncIterator[pb.NodeMessage]:
        host = f"10.0.{self.i // 250}.{self.i % 250}"
        yield pb.NodeMessage(register=pb.NodeInfo(
            node_id=self.node_id, address=f"{host}:7000", host=host, hostname=f"node-{self.i}",
            total=pb.ResourceSet(quantities={"CPU": 4.0}),
        ))
        while (message := await self.inbox.get()) is not None:
            yield message
            self.inbox.task_done()
        self.inbox.task_done()

    def report(self, dead_workers: list[str] = ()) -> None:  # type: ignore[assignment]
        self.inbox.put_nowait(pb.NodeMessage(report=pb.NodeReport(
            available=pb.ResourceSet(quantities={"CPU": 4.0}), metrics_port=9000 + self.i,
            dead_workers=dead_workers,
        )))

    def gone_addresses(self) -> list[str]:
        return [a for m in self.received if m.HasField("owners_gone") for a in m.owners_gone.addresses]

    def gone_messages(self) -> int:
        return sum(1 for m in self.received if m.HasField("owners_gone"))


async def start(head: Head, size: int) -> list[SimulatedNode]:
    nodes = [SimulatedNode(head, i) for i in range(size)]
    while len(head.nodes) < size:
        await asyncio.sleep(0.001)
    return nodes


async def settle(nodes: list[SimulatedNode]) -> None:
    await asyncio.gather(*(node.inbox.join() for node in nodes))
    for _ in range(5):
        await asyncio.sleep(0)  # the head's writer tasks pass its orders on


async def leave(nodes: list[SimulatedNode]) -> None:
    for node in nodes:
        node.inbox.put_nowait(None)
    await asyncio.gather(*(node.session for node in nodes), return_exceptions=True)


def listed_ports(path: Path) -> set[int]:
    return {int(t["targets"][0].rsplit(":", 1)[1]) for t in json.loads(path.read_text())}


@pytest.fixture
def target_writes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every time the head replaces metrics_targets.json."""
    writes: list[str] = []
    replace = os.replace

    def counting(source: Any, destination: Any) -> None:
        if str(destination).endswith("metrics_targets.json"):
            writes.append(str(destination))
        replace(source, destination)

    monkeypatch.setattr(head_module.os, "replace", counting)
    return writes


def test_joins_and_departures_rewrite_the_targets_file_once_per_interval(
    tmp_path: Path, target_writes: list[str]
) -> None:
    size = 60
    path = tmp_path / "metrics_targets.json"

    async def scenario() -> None:
        head = Head(str(tmp_path))
        head.metrics_targets.interval = 3600.0  # no second run during the test: counts are exact
        nodes = await start(head, size)
        for node in nodes:
            node.report()  # a node's first report names its metrics port: it joins the file
        await settle(nodes)
        assert len(target_writes) <= 1, f"{len(target_writes)} writes for {size} joins"
        head.metrics_targets.close()  # what is owed is written at shutdown
        assert listed_ports(path) == {9000 + i for i in range(size)}
        written = len(target_writes)
        await leave(nodes)
        assert len(target_writes) <= written + 1, f"{len(target_writes) - written} writes for {size} departures"
        head.close()
        assert listed_ports(path) == set()

    asyncio.run(scenario())


def test_the_last_change_reaches_the_targets_file_without_a_shutdown(
    tmp_path: Path, target_writes: list[str]
) -> None:
    path = tmp_path / "metrics_targets.json"

    async def scenario() -> None:
        head = Head(str(tmp_path))
        head.metrics_targets.interval = 0.05
        nodes = await start(head, 20)
        for node in nodes:
            node.report()
            await asyncio.sleep(0)  # joins spread over several turns of the loop
        await settle(nodes)
        while not (path.exists() and listed_ports(path) == {9000 + i for i in range(20)}):
            await asyncio.sleep(0.01)  # the pending run writes the last joins
        await leave(nodes[10:])
        while listed_ports(path) != {9000 + i for i in range(10)}:
            await asyncio.sleep(0.01)
        writes = len(target_writes)
        for node in nodes[:10]:
            node.report()  # the same ports again: the set did not change
        await settle(nodes[:10])
        await asyncio.sleep(0.2)
        assert len(target_writes) == writes, "an unchanged set of targets was written again"
        await leave(nodes[:10])
        head.close()

    asyncio.run(scenario())


def test_dead_workers_are_announced_to_each_node_in_one_message_per_interval(tmp_path: Path) -> None:
    """A job's end: a third of the nodes report dead workers at once. Each other node must
    learn every one of them (its agent frees what they owned), in one message per interval,
    not one per reporting node."""
    size, reporters = 30, 10

    async def scenario() -> None:
        head = Head(str(tmp_path))
        head.owners_gone.interval = 3600.0
        nodes = await start(head, size)
        dead = {node.i: [f"10.9.0.{node.i}:{40000 + k}" for k in range(3)] for node in nodes[:reporters]}
        for node in nodes[:reporters]:
            node.report(dead[node.i])
        await settle(nodes)
        head.owners_gone.close()  # what is owed goes out now (at most one interval later)
        await settle(nodes)
        for node in nodes:
            expected = {a for i, addresses in dead.items() if i != node.i for a in addresses}
            assert set(node.gone_addresses()) == expected, f"node {node.i} missed dead owners"
            assert len(node.gone_addresses()) == len(expected), f"node {node.i} was told twice"
            assert node.gone_messages() <= 2, f"node {node.i}: {node.gone_messages()} messages"
        await leave(nodes)
        head.close()

    asyncio.run(scenario())
