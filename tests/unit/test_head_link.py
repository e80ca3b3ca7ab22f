"""A node agent's session with its head goes on when making one report fails.

An exception while making a report once ended the session without a word, and the head
declared the node dead a few seconds later (a hostile metrics report made a sum overflow)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from ember.runtime.node import head_link
from ember.runtime.node.head_link import HeadLink
from ember.runtime.wire.protocol import ember_pb2 as pb


class FakeCall:
    """The head's side of a NodeSession: registers the node, then keeps what it is sent."""

    def __init__(self) -> None:
        self.sent: list[pb.NodeMessage] = []
        self.replies: asyncio.Queue[pb.HeadToNode] = asyncio.Queue()
        self.replies.put_nowait(pb.HeadToNode(registered=pb.Empty()))
        self.cancelled = False

    async def write(self, message: pb.NodeMessage) -> None:
        self.sent.append(message)

    async def read(self) -> pb.HeadToNode:
        return await self.replies.get()

    def cancel(self) -> bool:
        self.cancelled = True
        return True

    def done(self) -> bool:
        return self.cancelled


class FakeHead:
    def __init__(self) -> None:
        self.calls: list[FakeCall] = []

    def NodeSession(self) -> FakeCall:  # noqa: N802 - the stub's name
        self.calls.append(FakeCall())
        return self.calls[-1]


class FakeChannels:
    def __init__(self) -> None:
        self.stub = FakeHead()

    def head(self, address: str) -> FakeHead:
        return self.stub


class BrokenOnceAgent:
    """An agent whose second report cannot be made."""

    head_address = "127.0.0.1:1"

    def __init__(self) -> None:
        self.channels = FakeChannels()
        self.stopping = False
        self.made = 0

    def describe(self) -> str:
        return "node 5eed (127.0.0.1:2)"

    def node_info(self, pid: int) -> pb.NodeInfo:
        return pb.NodeInfo(address="127.0.0.1:2")

    def node_report(self) -> pb.NodeReport:
        self.made += 1
        if self.made == 2:
            raise OverflowError("a sum past 2**64")
        return pb.NodeReport()

    def obey(self, order: pb.HeadToNode) -> None:
        pass

    def refused(self, reason: str) -> None:
        self.stopping = True


def test_a_report_that_cannot_be_made_is_said_and_the_session_goes_on(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(head_link, "HEARTBEAT_INTERVAL", 0.01)
    agent = BrokenOnceAgent()

    async def main() -> None:
        link = HeadLink(agent)  # type: ignore[arg-type]
        runner = asyncio.ensure_future(link.run(asyncio.Event()))
        for _ in range(500):
            await asyncio.sleep(0.01)
            if agent.made >= 4:
                break
        agent.stopping = True
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)

    with caplog.at_level(logging.ERROR, logger="ember.runtime.node.node_agent"):
        asyncio.run(main())
    calls = agent.channels.stub.calls
    assert len(calls) == 1, "the session was opened again: it had ended"
    reports = [m for m in calls[0].sent if m.WhichOneof("kind") == "report"]
    assert agent.made >= 4 and len(reports) == agent.made - 1  # every beat but the broken one
    assert "node 5eed (127.0.0.1:2): making the node's report failed" in caplog.text
    assert "OverflowError" in caplog.text
