"""A process's way to its node's object store: values in, values out, frees batched.

``encode`` decides where a value travels: inline in messages when it is small, through the
node's shared-memory arena when its pickle and buffers exceed ``INLINE_THRESHOLD``. Writes
happen on the calling thread straight into the arena (no copy through the I/O thread); only the
request for a range and the seal go to the node agent. ``decode`` views an object in place,
asking the agent where it went if it was spilled and restored.

A driver that runs on no node of the cluster (``store_dir`` empty) has no arena: it pushes its
large values to its entry node's store in chunks, and pulls the objects it reads from the node
that holds them (the location says which) into its own memory.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any

import grpc

from ember.runtime.objects import serialization, shm_object
from ember.runtime.objects.arena import Arena
from ember.runtime.objects.exceptions import (
    ObjectLostError,
    ObjectStoreFullError,
    RuntimeConnectionError,
)
from ember.runtime.wire import event_loop, rpc
from ember.runtime.wire.protocol import ember_pb2 as pb

if TYPE_CHECKING:
    from ember.runtime.objects.object_ref import ObjectRef
    from ember.runtime.wire.event_loop import IoThread
    from ember.runtime.wire.rpc import Channels

log = logging.getLogger("ember.runtime.core.store_client")

CHUNK = 8 << 20
RESTORE_TRIES = 3  # answers from the agent a read trusts before it calls the object lost


class StoreClient:
    def __init__(
        self,
        io: IoThread,
        channels: Channels,
        agent_address: str,
        node_id: bytes,
        store_dir: str,
        creator: str,
    ) -> None:
        self.io = io
        self.channels = channels
        self.agent_address = agent_address
        self.node_id = node_id
        self.store_dir = store_dir
        self.creator = creator
        self._arena: Arena | None = None
        self._to_seal: list[bytes] = []
        self._to_free: dict[str, list[bytes]] = {}
        self._frees_in_flight: set[asyncio.Future[None]] = set()

    @property
    def on_a_node(self) -> bool:
        return bool(self.store_dir)

    @property
    def arena(self) -> Arena:
        """The node's arena, mapped on first use (most processes never touch it)."""
        if self._arena is None:
            self._arena = Arena(os.path.join(self.store_dir, "arena"))
        return self._arena

    # ------------------------------------------------------------------ writing (any thread but I/O)

    def encode(
        self, value: Any, object_id: bytes, owner: str
    ) -> tuple[bytes, pb.ObjectLocation | None, list[ObjectRef]]:
        """(inline pickle, or b"" with the location in the store, refs found inside)."""
        serialized = shm_object.serialize(value)
        if serialized.inline_size <= shm_object.INLINE_THRESHOLD:
            if serialized.buffers:
                data, _ = serialization.dumps(value)
                return data, None, serialized.refs
            return serialized.data, None, serialized.refs
        if not self.on_a_node:
            return b"", self._push(object_id, serialized, owner), serialized.refs
        return b"", self.write(object_id, serialized, owner), serialized.refs

    def _push(
        self, object_id: bytes, serialized: shm_object.Serialized, owner: str
    ) -> pb.ObjectLocation:
        image = bytearray(serialized.size)
        serialized.write_into(memoryview(image), object_id)
        reply = self.io.run(self._send_push(object_id, image, owner))
        if reply.error:
            if reply.store_full:
                raise ObjectStoreFullError(reply.error)
            raise ObjectLostError(reply.error)
        return reply.location

    async def _send_push(self, object_id: bytes, image: bytearray, owner: str) -> pb.PushReply:
        view = memoryview(image)

        async def chunks() -> AsyncGenerator[pb.ObjectChunk, None]:
            for start in range(0, len(image), CHUNK):
                data = bytes(view[start : start + CHUNK])
                if start == 0:
                    yield pb.ObjectChunk(
                        size=len(image), data=data, object_id=object_id, owner_address=owner
                    )
                else:
                    yield pb.ObjectChunk(data=data)

        try:
            return await rpc.send_all(
                self.channels.node_agent(self.agent_address).PushObject(timeout=600), chunks()
            )
        except grpc.aio.AioRpcError as error:
            # Nothing was lost: the value never got there (outside the cluster, the way there
            # runs through the head, and ends with it).
            raise RuntimeConnectionError(
                f"cannot store object {object_id.hex()}: the node agent at {self.agent_address} "
                f"cannot be reached ({error.code().name})"
            ) from None

    def write(
        self, object_id: bytes, serialized: shm_object.Serialized, owner: str
    ) -> pb.ObjectLocation:
        reply = self.io.run(self._create(object_id, serialized.size, owner))
        if reply.error:
            if reply.store_full:
                raise ObjectStoreFullError(reply.error)
            raise ObjectLostError(reply.error)
        if not reply.exists:
            offset = reply.offset
            serialized.write_into(self.arena.view[offset : offset + serialized.size], object_id)
            self.io.call_soon(self._seal, object_id)
        return pb.ObjectLocation(
            node_id=self.node_id,
            node_address=self.agent_address,
            size=serialized.size,
            offset=reply.offset,
            owner_address=owner,
        )

    async def _create(self, object_id: bytes, size: int, owner: str) -> pb.CreateObjectReply:
        # Frees this process queued go first: a put right after a drop reuses the memory
        # the dropped object had (no page faults) instead of taking fresh memory.
        if self._to_free.get(self.agent_address):
            await self._send_frees(self.agent_address)
        if self._frees_in_flight:
            await asyncio.wait(list(self._frees_in_flight))
        try:
            return await self.channels.node_agent(self.agent_address).CreateObject(
                pb.CreateObjectRequest(
                    object_id=object_id, size=size, owner_address=owner, creator=self.creator
                ),
                timeout=120,
            )
        except grpc.aio.AioRpcError as error:
            return pb.CreateObjectReply(
                error=f"the node agent at {self.agent_address} cannot store it ({error.code().name})"
            )

    def _seal(self, object_id: bytes) -> None:
        if not self._to_seal:
            event_loop.detach(self._send_seals(), "sending seals to the node's store")
        self._to_seal.append(object_id)

    async def _send_seals(self) -> None:
        await asyncio.sleep(0)  # let the seals of this turn of the loop join
        ids, self._to_seal = self._to_seal, []
        try:
            await self.channels.node_agent(self.agent_address).SealObjects(pb.ObjectIds(ids=ids))
        except grpc.aio.AioRpcError as error:
            log.debug("could not seal %d objects: %s", len(ids), error.code().name)

    # ------------------------------------------------------------------ reading

    def local(self, location: pb.ObjectLocation) -> bool:
        return location.node_id == self.node_id

    def decode(self, object_id: bytes, location: pb.ObjectLocation) -> Any:
        """The value of a stored object, viewed in place (any thread but the I/O thread).
        An object on another node is copied to this node's store first."""
        if not self.on_a_node:
            return self._pull_into_memory(object_id, location)
        if not self.local(location):
            location = self._copy_here(object_id, location)
        arena = self.arena
        view = arena.pinned_view(location.offset, location.size)
        if shm_object.holds(view, object_id):
            return shm_object.load(view, object_id)
        # Spilled (and maybe restored elsewhere in the arena) since the location was made.
        # Between the agent's answer and the pin it may be spilled again to make room for
        # another object: then it is asked for again.
        for _ in range(RESTORE_TRIES):
            del view
            reply = self.io.run(self._restore(object_id))
            if reply.lost_reason:
                raise ObjectLostError(f"object {object_id.hex()} is lost: {reply.lost_reason}")
            view = arena.pinned_view(reply.offset, location.size)
            if shm_object.holds(view, object_id):
                return shm_object.load(view, object_id)
        raise ObjectLostError(
            f"object {object_id.hex()} is lost: the store said where it is {RESTORE_TRIES} times, "
            f"and it was not there"
        )

    def _pull_into_memory(self, object_id: bytes, location: pb.ObjectLocation) -> Any:
        image = self.io.run(self._pull(object_id, location))
        return shm_object.load(memoryview(image).toreadonly(), object_id)

    async def _pull(self, object_id: bytes, location: pb.ObjectLocation) -> bytearray:
        image = bytearray()
        try:
            async for chunk in self.channels.node_agent(location.node_address).PullObject(
                pb.PullRequest(object_id=object_id), timeout=600
            ):
                image += chunk.data
        except grpc.aio.AioRpcError as error:
            raise ObjectLostError(
                f"object {object_id.hex()} could not be read from node "
                f"{location.node_address}: {error.details() or error.code().name}"
            ) from None
        return image

    def _copy_here(self, object_id: bytes, location: pb.ObjectLocation) -> pb.ObjectLocation:
        reply = self.io.run(self._fetch(object_id, location))
        if reply.lost_reason:
            raise ObjectLostError(
                f"object {object_id.hex()} on node {location.node_id.hex()[:12]} "
                f"({location.node_address}) could not be copied here: {reply.lost_reason}"
            )
        return reply.location

    async def _fetch(self, object_id: bytes, location: pb.ObjectLocation) -> pb.FetchReply:
        try:
            return await self.channels.node_agent(self.agent_address).FetchObject(
                pb.FetchRequest(
                    object_id=object_id, location=location, owner_address=location.owner_address
                ),
                timeout=600,
            )
        except grpc.aio.AioRpcError as error:
            return pb.FetchReply(
                lost_reason=f"the node agent at {self.agent_address} does not answer "
                f"({error.code().name})"
            )

    async def _restore(self, object_id: bytes) -> pb.RestoreObjectReply:
        try:
            return await self.channels.node_agent(self.agent_address).RestoreObject(
                pb.ObjectIds(ids=[object_id]), timeout=120
            )
        except grpc.aio.AioRpcError as error:
            return pb.RestoreObjectReply(
                lost_reason=f"the node agent at {self.agent_address} does not answer "
                f"({error.code().name})"
            )

    def release_dead_pins(self) -> None:
        if self._arena is not None:
            self._arena.release_pins()

    # ------------------------------------------------------------------ freeing (I/O thread)

    def free(self, object_id: bytes, location: pb.ObjectLocation) -> None:
        pending = self._to_free.setdefault(location.node_address, [])
        if not pending:
            flight = asyncio.ensure_future(self._send_frees(location.node_address))
            self._frees_in_flight.add(flight)
            flight.add_done_callback(self._frees_in_flight.discard)
        pending.append(object_id)
        if self._arena is not None:
            self._arena.release_pins()

    async def _send_frees(self, address: str) -> None:
        await asyncio.sleep(0)  # let the frees of this turn of the loop join
        ids = self._to_free.pop(address, [])
        if not ids:
            return
        try:
            await self.channels.node_agent(address).FreeObjects(pb.ObjectIds(ids=ids), timeout=30)
        except grpc.aio.AioRpcError as error:
            log.debug("could not free %d objects at %s: %s", len(ids), address, error.code().name)
