"""A process's calls to the head about placement groups: create, look up, wait, remove, list.

Drivers and workers alike make them (a task may create a group), on the I/O thread where the
head's channel lives; the user's thread waits for the answer. ``ready`` is Ray's
``pg.ready()``: an ObjectRef owned here whose value, the group itself, arrives once the head
says every bundle is committed, or an error naming the group if it is removed first or no node
can ever hold it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import grpc

from ember.runtime.core.memory_store import StoredValue, error_value
from ember.runtime.objects.exceptions import PlacementGroupError
from ember.runtime.objects.object_ref import ObjectRef
from ember.runtime.wire.event_loop import IoThread
from ember.runtime.wire.protocol import ember_pb2 as pb
from ember.runtime.wire.rpc import Channels

log = logging.getLogger("ember.runtime.core.placement_group_calls")

WAIT_SLICE = 30.0  # seconds per head call while waiting (the head waits at most 60 per call)
HEAD_AWAY_RETRY = 0.5  # seconds between calls while the head cannot be reached
HEAD_AWAY_LIMIT = 120  # calls before a ready() gives up on an unreachable head


def describe(info: pb.PlacementGroupInfo) -> str:
    name = f" '{info.spec.name}'" if info.spec.name else ""
    return f"placement group{name} ({info.spec.placement_group_id.hex()[:12]})"


class PlacementGroupCalls:
    def __init__(
        self,
        io: IoThread,
        channels: Channels,
        head_address: str,
        promise: Callable[[], tuple[ObjectRef, Callable[[StoredValue], None]]],
    ) -> None:
        self.io = io
        self.channels = channels
        self.head_address = head_address
        self.promise = promise

    # ---------------------------------------------------------------- user thread

    def create(self, spec: pb.PlacementGroupSpec) -> None:
        reply = self.io.run(self._call("CreatePlacementGroup", spec))
        if reply.error:
            raise ValueError(reply.error)

    def remove(self, group_id: bytes) -> None:
        self.io.run(self._call("RemovePlacementGroup", pb.PlacementGroupRequest(placement_group_id=group_id)))

    def info(self, request: pb.PlacementGroupRequest) -> pb.PlacementGroupInfo | None:
        """The group's record at the head, or None if it has none."""
        try:
            info: pb.PlacementGroupInfo = self.io.run(self._call("GetPlacementGroup", request))
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise
        return info

    def wait(self, group_id: bytes, timeout: float) -> bool:
        """Whether the group is created within ``timeout`` seconds (Ray's ``pg.wait``)."""
        return bool(self.io.run(self._wait_created(group_id, timeout)))

    def list(self) -> pb.PlacementGroupList:
        listed: pb.PlacementGroupList = self.io.run(self._call("ListPlacementGroups", pb.Empty()))
        return listed

    def ready(self, group_id: bytes, value: bytes) -> ObjectRef:
        """A ref to ``value`` (the pickled group), ready once the group is created."""
        ref, fulfil = self.promise()
        self.io.call_soon(lambda: asyncio.ensure_future(self._fulfil_when_ready(group_id, value, fulfil)))
        return ref

    # ---------------------------------------------------------------- I/O thread

    async def _call(self, method: str, request: Any, timeout: float = 30.0) -> Any:
        return await getattr(self.channels.head(self.head_address), method)(request, timeout=timeout)

    async def _wait_created(self, group_id: bytes, timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, timeout)
        while True:
            remaining = deadline - loop.time()
            request = pb.PlacementGroupRequest(
                placement_group_id=group_id, wait_seconds=max(0.0, min(remaining, WAIT_SLICE))
            )
            info = await self._call("GetPlacementGroup", request, timeout=WAIT_SLICE + 10)
            if info.state == pb.PG_CREATED:
                return True
            if info.state == pb.PG_REMOVED or loop.time() >= deadline:
                return False

    async def _fulfil_when_ready(
        self, group_id: bytes, value: bytes, fulfil: Callable[[StoredValue], None]
    ) -> None:
        request = pb.PlacementGroupRequest(
            placement_group_id=group_id, wait_seconds=WAIT_SLICE, until_infeasible=True
        )
        failures = 0
        while True:
            try:
                info = await self._call("GetPlacementGroup", request, timeout=WAIT_SLICE + 10)
            except grpc.aio.AioRpcError as error:
                if error.code() == grpc.StatusCode.NOT_FOUND:
                    fulfil(error_value(PlacementGroupError(error.details() or "no such placement group")))
                    return
                failures += 1
                if failures >= HEAD_AWAY_LIMIT:
                    fulfil(error_value(PlacementGroupError(
                        f"placement group {group_id.hex()[:12]}: the head at {self.head_address} "
                        f"cannot be reached ({error.code().name})"
                    )))
                    return
                await asyncio.sleep(HEAD_AWAY_RETRY)
                continue
            failures = 0
            if info.state == pb.PG_CREATED:
                fulfil(StoredValue(value))
                return
            if info.state == pb.PG_REMOVED:
                fulfil(error_value(PlacementGroupError(
                    f"{describe(info)} was removed before it was ready ({info.removal_reason})"
                )))
                return
            if info.infeasible:
                fulfil(error_value(PlacementGroupError(
                    f"{describe(info)} cannot be placed: {info.waiting_for}"
                )))
                return
