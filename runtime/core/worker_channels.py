"""An owner's task channels, one per worker, shared by task leases and actor calls."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ember.runtime.wire import task_channel
from ember.runtime.wire.protocol import ember_pb2 as pb
from ember.runtime.wire.task_channel import ChannelClient


class WorkerChannels:
    def __init__(
        self,
        hello: pb.ChannelHello,
        on_reply: Callable[[ChannelClient, pb.ExecuteReply], None],
        on_lost: Callable[[ChannelClient, str], None],
    ) -> None:
        self.hello = hello
        self.on_reply = on_reply
        self.on_lost = on_lost
        self.open_channels: dict[bytes, ChannelClient] = {}
        self._connecting: dict[bytes, asyncio.Future[ChannelClient]] = {}

    def cached(self, worker_id: bytes) -> ChannelClient | None:
        channel = self.open_channels.get(worker_id)
        if channel is not None and channel.lost:
            return None
        return channel

    async def open(self, worker_id: bytes, address: str) -> ChannelClient:
        """The channel to a worker, connecting once however many ask at the same time."""
        channel = self.cached(worker_id)
        if channel is not None:
            return channel
        pending = self._connecting.get(worker_id)
        if pending is None:
            pending = self._connecting[worker_id] = asyncio.ensure_future(
                task_channel.connect(address, self.hello, self.on_reply, self._lost)
            )
        try:
            channel = await asyncio.shield(pending)
        finally:
            if pending.done():
                self._connecting.pop(worker_id, None)
        self.open_channels[worker_id] = channel
        return channel

    def _lost(self, channel: ChannelClient, reason: str) -> None:
        for worker_id, known in list(self.open_channels.items()):
            if known is channel:
                del self.open_channels[worker_id]
        self.on_lost(channel, reason)

    def close(self) -> None:
        for channel in list(self.open_channels.values()):
            channel.close()
        self.open_channels.clear()
