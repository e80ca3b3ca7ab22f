"""An owner's lease stream to one node agent, kept open and re-opened when it breaks.

Used by task owners (``task_submitter``) and by the head, which leases the workers that host
actors (``actor_manager``). Requests still outstanding when the stream breaks are sent again on
the next one; the caller decides what they are.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import grpc

from ember.runtime.wire import rpc
from ember.runtime.wire.protocol import ember_pb2 as pb

log = logging.getLogger("ember.runtime.wire.lease_client")


class LeaseClient:
    def __init__(
        self,
        address: str,
        channels: rpc.Channels,
        owner: pb.LeaseOwner,
        on_message: Callable[[LeaseClient, pb.LeaseServerMessage], None],
        resend: Callable[[LeaseClient], list[pb.LeaseClientMessage]],
        on_unreachable: Callable[[LeaseClient, int], None],
    ) -> None:
        self.address = address
        self.channels = channels
        self.owner = owner
        self.on_message = on_message
        self.resend = resend
        self.on_unreachable = on_unreachable
        self.outbox: asyncio.Queue[pb.LeaseClientMessage] = asyncio.Queue()
        # Kept for the caller: its outstanding requests and granted leases, by id.
        self.requests: dict[int, Any] = {}
        self.leases: dict[int, Any] = {}
        self.task: asyncio.Task[None] | None = None
        self.closed = False

    def send(self, message: pb.LeaseClientMessage) -> None:
        if self.task is None:
            self.task = asyncio.ensure_future(self._run())
        self.outbox.put_nowait(message)

    async def _run(self) -> None:
        failures = 0
        first = True
        while not self.closed:
            call = self.channels.node_agent(self.address).Leases()
            reader = asyncio.ensure_future(self._read(call))
            try:
                await call.write(pb.LeaseClientMessage(owner=self.owner))
                if first:
                    first = False  # what is outstanding is all in the outbox, once
                else:
                    # A new stream: the agent forgot the old one's leases and requests. Ask
                    # again for what is outstanding; the rest queued meanwhile (returns and
                    # cancels of the old stream's leases and requests) means nothing now.
                    while not self.outbox.empty():
                        self.outbox.get_nowait()
                    for message in self.resend(self):
                        await call.write(message)
                failures = 0
                while True:
                    writer = asyncio.ensure_future(self.outbox.get())
                    done, _ = await asyncio.wait(
                        {writer, reader}, return_when=asyncio.FIRST_COMPLETED
                    )
                    if reader in done:
                        writer.cancel()
                        break
                    await call.write(writer.result())
            except asyncio.CancelledError:
                call.cancel()
                raise
            except (grpc.aio.AioRpcError, asyncio.InvalidStateError) as error:
                # (InvalidStateError: a write raced the end of the stream.)
                log.debug("lease stream to node agent %s failed: %s", self.address, error)
            reader.cancel()
            call.cancel()
            if self.closed:
                return
            failures += 1
            self.on_unreachable(self, failures)
            await asyncio.sleep(min(0.05 * 2**failures, 2.0))

    async def _read(self, call: grpc.aio.StreamStreamCall) -> None:
        try:
            while True:
                message = await call.read()
                if message is grpc.aio.EOF:
                    return
                self.on_message(self, message)
        except grpc.aio.AioRpcError:
            return

    def close(self) -> None:
        self.closed = True
        if self.task is not None:
            self.task.cancel()
