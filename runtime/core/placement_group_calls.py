"""A process's calls to the head about placement groups: create, look up, wait, remove, list.

Drivers and workers alike make them (a task may create a group), on the I/O thread where the
head's channel lives; the user's thread waits for the answer. ``ready`` is Ray's
``pg.ready()``: an ObjectRef owned here whose value, the group itself, arrives once the head
says every bundle is committed, or an error naming the group if it is removed first or no node
can ever hold it. The ready() calls made together wait in one call to the head.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
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
MAX_WAIT_IDS = 1000  # groups waited for in one call


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
        # ready() waiting, on the I/O thread: by group, and those not in a call yet.
        self._ready_waiters: dict[bytes, list[tuple[bytes, Callable[[StoredValue], None]]]] = {}
        self._ready_queued: list[bytes] = []
        self._ready_flush = False
        self._ready_calls: set[asyncio.Task[None]] = set()

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
        self.io.call_soon(self._await_ready, group_id, value, fulfil)
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

    def _await_ready(self, group_id: bytes, value: bytes, fulfil: Callable[[StoredValue], None]) -> None:
        """Wait for the group with the others asked for in this turn of the loop: a driver that
        waits for a hundred groups makes a call or two, not a hundred."""
        self._ready_waiters.setdefault(group_id, []).append((value, fulfil))
        self._ready_queued.append(group_id)
        if not self._ready_flush:
            self._ready_flush = True
            asyncio.get_running_loop().call_soon(self._send_ready_waits)

    def _send_ready_waits(self) -> None:
        self._ready_flush = False
        queued, self._ready_queued = list(dict.fromkeys(self._ready_queued)), []
        for start in range(0, len(queued), MAX_WAIT_IDS):
            task = asyncio.ensure_future(self._wait_ready(queued[start:start + MAX_WAIT_IDS]))
            self._ready_calls.add(task)
            task.add_done_callback(self._ready_calls.discard)

    async def _wait_ready(self, group_ids: Sequence[bytes]) -> None:
        failures = 0
        while group_ids:
            request = pb.PlacementGroupsWait(placement_group_ids=group_ids, wait_seconds=WAIT_SLICE)
            try:
                settled = await self._call("WaitPlacementGroups", request, timeout=WAIT_SLICE + 10)
            except grpc.aio.AioRpcError as error:
                failures += 1
                if failures >= HEAD_AWAY_LIMIT:
                    for group_id in group_ids:
                        self._settle(group_id, error_value(PlacementGroupError(
                            f"placement group {group_id.hex()[:12]}: the head at {self.head_address} "
                            f"cannot be reached ({error.code().name})"
                        )))
                    return
                await asyncio.sleep(HEAD_AWAY_RETRY)
                continue
            failures = 0
            done = set(settled.unknown)
            for group_id in settled.unknown:
                self._settle(group_id, error_value(PlacementGroupError(f"no placement group with id {group_id.hex()}")))
            for group in settled.groups:
                done.add(group.placement_group_id)
                name = f" '{group.name}'" if group.name else ""
                what = f"placement group{name} ({group.placement_group_id.hex()[:12]})"
                if group.state == pb.PG_CREATED:
                    self._settle(group.placement_group_id, None)
                elif group.state == pb.PG_REMOVED:
                    self._settle(group.placement_group_id, error_value(PlacementGroupError(
                        f"{what} was removed before it was ready ({group.why})"
                    )))
                else:
                    self._settle(group.placement_group_id, error_value(PlacementGroupError(
                        f"{what} cannot be placed: {group.why}"
                    )))
            # Those still waited for (and not by a later call) are asked for again.
            group_ids = tuple(g for g in group_ids if g not in done and g in self._ready_waiters)

    def _settle(self, group_id: bytes, error: StoredValue | None) -> None:
        """Fulfil every ready() of the group: with the group itself, or ``error``."""
        for value, fulfil in self._ready_waiters.pop(group_id, []):
            fulfil(StoredValue(value) if error is None else error)
