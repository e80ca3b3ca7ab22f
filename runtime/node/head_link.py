"""A node agent's session with its head: it registers, reports, and takes the head's orders.

Reports carry what the head needs about the node — free resources, waiting lease requests
(the cluster's demand), workers that died, how long the node has been idle — and go at least
every ``HEARTBEAT_INTERVAL`` seconds, changed or not: that is the heartbeat the head declares
silent nodes dead by. A broken session is opened again (the head restarted); a refused token,
or the head saying this node was declared dead, stops the agent, since no retry mends either.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Protocol

import grpc

from ember.runtime.wire import rpc
from ember.runtime.wire.protocol import ember_pb2 as pb

log = logging.getLogger("ember.runtime.node.node_agent")

HEARTBEAT_INTERVAL = float(os.environ.get("EMBER_HEARTBEAT_INTERVAL_S", "1"))
REPORT_DELAY = 0.005  # resource changes within this window travel to the head as one report
# A write the head has not taken by then means a dead session: a stream opened while the head
# was down can wait forever on grpc 1.85 instead of failing, so the agent gives up and redials.
WRITE_TIMEOUT = max(5.0, 5 * HEARTBEAT_INTERVAL)


class LinkedNode(Protocol):
    """What the session needs of the node agent it speaks for."""

    head_address: str
    channels: rpc.Channels
    stopping: bool

    def describe(self) -> str: ...

    def node_info(self, pid: int) -> pb.NodeInfo: ...

    def node_report(self) -> pb.NodeReport: ...

    def obey(self, order: pb.HeadToNode) -> None: ...

    def refused(self, reason: str) -> None: ...


class HeadLink:
    def __init__(self, agent: LinkedNode) -> None:
        self.agent = agent
        self._report_pending = False
        self._report_event = asyncio.Event()
        self._call: grpc.aio.StreamStreamCall | None = None
        self._joined = False  # registered with a head at least once
        self._away_since: float | None = None  # since when no session with the head works
        self._report_failures = 0

    def report_soon(self) -> None:
        if not self._report_pending:
            self._report_pending = True
            asyncio.get_running_loop().call_later(REPORT_DELAY, self._report_event.set)

    def report(self) -> pb.NodeReport:
        self._report_pending = False
        return self.agent.node_report()

    def _make_report(self) -> pb.NodeReport | None:
        """This beat's report, or None when making it failed: a bug in one report's making is
        said (with its traceback the first time) and the session goes on, where an exception
        here once ended it without a word and the head declared the node dead."""
        try:
            report = self.report()
        except Exception as error:
            self._report_failures += 1
            log.error(
                "%s: making the node's report failed (%d time(s)); the head hears nothing this beat: %r",
                self.agent.describe(), self._report_failures, error,
                exc_info=self._report_failures == 1,
            )
            return None
        return report

    async def run(self, registered: asyncio.Event) -> None:
        """Register with the head and stream reports; register again if it restarts."""
        agent = self.agent
        failures = 0
        while not agent.stopping:
            call = agent.channels.head(agent.head_address).NodeSession()
            self._call = call
            reader: asyncio.Future[str] | None = None
            why = ""
            try:
                await asyncio.wait_for(
                    call.write(pb.NodeMessage(register=agent.node_info(os.getpid()))), WRITE_TIMEOUT
                )
                reader = asyncio.ensure_future(self._read(call, registered))
                while not reader.done():
                    waiter = asyncio.ensure_future(self._report_event.wait())
                    await asyncio.wait(
                        {waiter, reader},
                        timeout=HEARTBEAT_INTERVAL,
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                    waiter.cancel()
                    if reader.done():
                        break
                    # A report goes at least every interval, changed or not: the heartbeat.
                    if self._report_event.is_set() or registered.is_set():
                        self._report_event.clear()
                        report = self._make_report()
                        if report is not None:
                            await asyncio.wait_for(call.write(pb.NodeMessage(report=report)), WRITE_TIMEOUT)
                why = reader.result()
                failures = 0 if registered.is_set() else failures
            except grpc.aio.AioRpcError as error:
                if self._unauthenticated(error):
                    return
                why = _why(error)
            except asyncio.InvalidStateError:
                # A write raced the end of the call: its status says why it ended.
                why = await _ended(call)
            except TimeoutError:
                why = f"it took no message in {WRITE_TIMEOUT:.0f}s"
            finally:
                call.cancel()
                if reader is not None:
                    reader.cancel()
                    await asyncio.wait([reader])
            if agent.stopping:
                return
            self._session_ended(why)
            failures += 1
            await asyncio.sleep(min(0.1 * 2**failures, 5.0))

    def _session_ended(self, why: str) -> None:
        """Say once that the head is away, however many tries it takes to reach it again."""
        agent = self.agent
        if self._away_since is not None:
            log.debug("%s: the head at %s is still away: %s", agent.describe(), agent.head_address, why)
            return
        self._away_since = time.monotonic()
        what = "lost the head" if self._joined else "cannot reach the head"
        log.warning("%s: %s at %s (%s); retrying", agent.describe(), what, agent.head_address, why)

    def _registered(self) -> None:
        agent = self.agent
        if self._away_since is not None:
            log.info(
                "%s: %s the head at %s after %.1fs", agent.describe(),
                "re-joined" if self._joined else "joined", agent.head_address,
                time.monotonic() - self._away_since,
            )
        self._away_since = None
        self._joined = True

    def _unauthenticated(self, error: grpc.aio.AioRpcError) -> bool:
        """A refused token is not something a retry mends: say so, and stop the agent."""
        if error.code() != grpc.StatusCode.UNAUTHENTICATED:
            return False
        agent = self.agent
        log.error("%s: the head at %s refused this node: %s", agent.describe(), agent.head_address, error.details())
        agent.refused(error.details() or "unauthenticated")
        return True

    async def say_leaving(self, why: str) -> None:
        """Tell the head this stop is on purpose, so it is not reported as a failure."""
        call = self._call
        if call is None or call.done():
            return
        try:
            await asyncio.wait_for(call.write(pb.NodeMessage(leaving=why)), 1.0)
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError, TimeoutError):
            pass

    async def _read(self, call: grpc.aio.StreamStreamCall, registered: asyncio.Event) -> str:
        """Take the head's orders until the session ends; returns why it ended."""
        agent = self.agent
        try:
            while True:
                message = await call.read()
                if message is grpc.aio.EOF:
                    return "it closed the session"
                kind = message.WhichOneof("kind")
                if kind == "registered":
                    registered.set()
                    self._registered()
                    self._report_event.set()
                elif kind in ("job_finished", "drain", "owners_gone"):
                    agent.obey(message)
                elif kind == "refused" and not agent.stopping:
                    log.error(
                        "%s: head %s declared this node dead (%s); exiting, so that it can "
                        "rejoin as a new node", agent.describe(), agent.head_address, message.refused
                    )
                    agent.refused(message.refused)
                    return f"it refused this node: {message.refused}"
        except grpc.aio.AioRpcError as error:
            self._unauthenticated(error)
            return _why(error)


def _why(error: grpc.aio.AioRpcError) -> str:
    details = error.details()
    return f"{error.code().name}: {details}" if details else error.code().name


async def _ended(call: grpc.aio.StreamStreamCall) -> str:
    """Why a call that has ended did."""
    code = await call.code()
    details = await call.details()
    return f"{code.name}: {details}" if details else str(code.name)
