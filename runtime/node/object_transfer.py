"""Moving objects between nodes: a node agent fetches copies for its node's processes.

A process that needs an object stored on another node asks its own node agent (``fetch``); the
agent pulls the object from the holder's agent straight into its arena — over the holder's bulk
transfer socket (``bulk_transfer``), or as gRPC chunks when it has none — and answers with where
the copy is. Pulls of the same object are shared: ten tasks that need
the same array on a node cause one transfer. The holder remembers who took copies, so that
freeing the object frees them too.

A node being drained pushes its objects to other nodes instead (``push``), from memory or from
its spill file, and hands the list of copies over with them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Iterable
from typing import TYPE_CHECKING, BinaryIO

import grpc

from ember.runtime.node import bulk_transfer
from ember.runtime.node.object_store import Lost, ObjectStore, StoreFull
from ember.runtime.node.store_entries import ON_DISK, Entry
from ember.runtime.wire import rpc
from ember.runtime.wire.protocol import ember_pb2 as pb

if TYPE_CHECKING:
    from ember.runtime.wire.rpc import Channels

log = logging.getLogger("ember.runtime.node.object_transfer")

CHUNK = 8 << 20


class ObjectTransfer:
    def __init__(self, store: ObjectStore, channels: Channels, node_id: bytes) -> None:
        self.store = store
        self.channels = channels
        self.node_id = node_id
        self.address = ""
        self.bulk_port = 0  # this node's bulk transfer socket, once it listens
        self._pulls: dict[bytes, asyncio.Future[pb.ObjectLocation]] = {}
        self._bulk_ports: dict[str, int] = {}

    def _here(self, object_id: bytes) -> pb.ObjectLocation | None:
        entry = self.store.location_of(object_id)
        if entry is None:
            return None
        return pb.ObjectLocation(
            node_id=self.node_id, node_address=self.address, size=entry.size, offset=entry.offset
        )

    async def fetch(self, request: pb.FetchRequest) -> pb.FetchReply:
        object_id = request.object_id
        try:
            here = self._here(object_id)
            if here is not None:
                here.offset = await self.store.restore(object_id)  # back from disk if spilled
                return pb.FetchReply(location=here)
            pull = self._pulls.get(object_id)
            if pull is None:
                pull = self._pulls[object_id] = asyncio.ensure_future(self._pull(request))
                pull.add_done_callback(lambda _: self._pulls.pop(object_id, None))
            return pb.FetchReply(location=await asyncio.shield(pull))
        except (Lost, StoreFull, ConnectionError) as error:
            return pb.FetchReply(lost_reason=str(error))

    async def _pull(self, request: pb.FetchRequest) -> pb.ObjectLocation:
        source = request.location.node_address
        port = await self._bulk_port(source)
        if port:
            try:
                return await self._pull_bulk(request, source, port)
            except bulk_transfer.BulkRefused as refused:
                raise ConnectionError(str(refused)) from None
            except bulk_transfer.BulkError as error:
                log.info("bulk pull of %s failed (%s); pulling over gRPC", request.object_id.hex(), error)
        return await self._pull_grpc(request)

    async def _bulk_port(self, source: str) -> int:
        """The source agent's bulk transfer port, asked once (0: it has none, or is unreachable)."""
        port = self._bulk_ports.get(source)
        if port is None:
            try:
                info = await self.channels.node_agent(source).GetStoreInfo(pb.Empty(), timeout=10)
                port = info.transfer_port
            except grpc.aio.AioRpcError:
                return 0
            self._bulk_ports[source] = port
        return port

    async def _pull_bulk(self, request: pb.FetchRequest, source: str, port: int) -> pb.ObjectLocation:
        object_id = request.object_id
        created: list[Entry] = []

        async def allocate(size: int) -> memoryview | None:
            offset = await self.store.create(object_id, size, request.owner_address, f"pull:{source}")
            if offset is None:
                return None
            created.append(self.store.start_writing(object_id))
            return self.store.arena.view[offset : offset + size]

        host = source.rpartition(":")[0]
        try:
            size = await bulk_transfer.pull(f"{host}:{port}", object_id, self.address, allocate)
            if size is None:  # another path stored it meanwhile
                location = self._here(object_id)
                assert location is not None
                return location
            return self._sealed(created[0], size)
        except BaseException:
            if created:
                self._abandon(created[0])
            raise
        finally:
            if created:
                self.store.stop_using(created[0])

    def _sealed(self, entry: Entry, size: int) -> pb.ObjectLocation:
        """A pulled copy is complete: sealed, unless it was freed while it came."""
        if entry.freed:
            raise Lost(f"{entry.describe()} was freed while it was pulled to this node")
        self.store.seal([entry.object_id])
        return pb.ObjectLocation(
            node_id=self.node_id, node_address=self.address, size=size, offset=entry.offset
        )

    def _abandon(self, entry: Entry) -> None:
        """A copy that did not arrive whole is garbage (if still this one, not a later copy)."""
        if self.store.entries.get(entry.object_id) is entry:
            self.store.free([entry.object_id])

    async def _pull_grpc(self, request: pb.FetchRequest) -> pb.ObjectLocation:
        object_id = request.object_id
        source = request.location.node_address
        call = self.channels.node_agent(source).PullObject(
            pb.PullRequest(object_id=object_id, requester=self.address)
        )
        try:
            first = await call.read()
            if first is grpc.aio.EOF:
                raise ConnectionError(f"node {source} has no copy of object {object_id.hex()}")
            size = first.size
            offset = await self.store.create(object_id, size, request.owner_address, f"pull:{source}")
            if offset is None:  # another path stored it meanwhile
                location = self._here(object_id)
                assert location is not None
                call.cancel()
                return location
            entry = self.store.start_writing(object_id)
            try:
                view = self.store.arena.view
                position = offset
                chunk = first
                while True:
                    data = chunk.data
                    if position + len(data) > offset + size:
                        raise ConnectionError(
                            f"node {source} sent more than the {size} bytes of object {object_id.hex()}"
                        )
                    view[position : position + len(data)] = data
                    position += len(data)
                    chunk = await call.read()
                    if chunk is grpc.aio.EOF:
                        break
                if position - offset != size:
                    raise ConnectionError(
                        f"node {source} sent {position - offset} of the {size} bytes of "
                        f"object {object_id.hex()}"
                    )
                return self._sealed(entry, size)
            except BaseException:
                self._abandon(entry)
                raise
            finally:
                self.store.stop_using(entry)
        except grpc.aio.AioRpcError as error:
            detail = error.details() or error.code().name
            raise ConnectionError(f"pulling object {object_id.hex()} from node {source} failed: {detail}") from None

    async def serve(self, request: pb.PullRequest) -> AsyncIterator[pb.ObjectChunk]:
        """PullObject: stream an object held here to another node."""
        entry = await self.store.start_reading_sealed(request.object_id)
        try:
            if request.requester:
                entry.copies.add(request.requester)
            view = self.store.arena.view
            start, end = entry.offset, entry.offset + entry.size
            first = True
            for position in range(start, end, CHUNK):
                data = bytes(view[position : min(position + CHUNK, end)])
                yield pb.ObjectChunk(size=entry.size if first else 0, data=data)
                first = False
        finally:
            self.store.stop_using(entry)

    async def receive(self, chunks: AsyncIterator[pb.ObjectChunk]) -> pb.PushReply:
        """PushObject: a driver on no node stores a value here."""
        first = None
        entry: Entry | None = None
        position = end = 0
        try:
            async for chunk in chunks:
                if first is None:
                    first = chunk
                    created = await self.store.create(
                        chunk.object_id, chunk.size, chunk.owner_address, chunk.owner_address
                    )
                    if created is None:
                        self._add_copies(chunk.object_id, chunk.copies)
                        here = self._here(chunk.object_id)
                        if here is not None:
                            here.owner_address = chunk.owner_address
                        return pb.PushReply(location=here)
                    entry = self.store.start_writing(chunk.object_id)
                    position, end = created, created + chunk.size
                data = chunk.data
                if position + len(data) > end:
                    self._abandon(entry)  # type: ignore[arg-type]
                    return pb.PushReply(error=f"more than the {first.size} bytes announced arrived")
                self.store.arena.view[position : position + len(data)] = data
                position += len(data)
            if first is None or entry is None:
                return pb.PushReply(error="an empty push")
            if position != end:
                self._abandon(entry)
                return pb.PushReply(error=f"{first.size - (end - position)} of {first.size} bytes arrived")
            if entry.freed:
                return pb.PushReply(error=f"{entry.describe()} was freed while it arrived")
            self.store.seal([entry.object_id])
            self._add_copies(entry.object_id, first.copies)
            location = self._here(entry.object_id)
            assert location is not None
            location.owner_address = first.owner_address
            return pb.PushReply(location=location)
        except StoreFull as full:
            return pb.PushReply(error=str(full), store_full=True)
        except Lost as lost:
            return pb.PushReply(error=str(lost))
        except BaseException:
            if entry is not None:
                self._abandon(entry)  # the sender went away half way
            raise
        finally:
            if entry is not None:
                self.store.stop_using(entry)

    def _add_copies(self, object_id: bytes, copies: Iterable[str]) -> None:
        """A pushed object is the first copy now: it frees the others with itself."""
        copies = [c for c in copies if c != self.address]
        entry = self.store.entries.get(object_id)
        if entry is None or not copies:
            return
        entry.copies.update(copies)
        if entry.creator.startswith("pull:"):
            # A copy pulled here before is the one the owner will know: no longer a mere copy
            # (a drain of this node must move it in turn).
            entry.creator = f"moved:{entry.creator[len('pull:'):]}"

    async def push(self, entry: Entry, target: str, copies: list[str]) -> pb.PushReply:
        """Copy an object held here into the store of the node agent at ``target``; the copy
        there frees ``copies`` with itself. Read from memory, or from disk when spilled."""
        if entry.state in ON_DISK:
            try:
                # Opened now: if the object is restored or freed meanwhile, the open file still
                # holds its bytes.
                spilled = open(entry.spill_path, "rb")  # noqa: SIM115 - closed by the generator
            except OSError as error:
                return pb.PushReply(error=f"its spill file could not be read: {error}")
            source = _file_chunks(spilled)
            reading = None
        else:
            spilled = None
            reading = self.store.start_reading(entry.object_id)  # not spilled while we read
            source = _arena_chunks(self.store, reading)

        async def chunks() -> AsyncGenerator[pb.ObjectChunk, None]:
            first = True
            async for data in source:
                if first:
                    first = False
                    yield pb.ObjectChunk(
                        size=entry.size,
                        data=data,
                        object_id=entry.object_id,
                        owner_address=entry.owner,
                        copies=copies,
                    )
                else:
                    yield pb.ObjectChunk(data=data)

        try:
            return await rpc.send_all(self.channels.node_agent(target).PushObject(timeout=600), chunks())
        except grpc.aio.AioRpcError as error:
            detail = error.details() or error.code().name
            return pb.PushReply(error=f"node {target} did not take it: {detail}")
        finally:
            if reading is not None:
                self.store.stop_using(reading)
            if spilled is not None:
                spilled.close()

    async def forward_frees(self, elsewhere: dict[str, list[bytes]]) -> None:
        for address, ids in elsewhere.items():
            try:
                await self.channels.node_agent(address).FreeObjects(pb.ObjectIds(ids=ids), timeout=30)
            except grpc.aio.AioRpcError as error:
                log.debug("could not free %d copies at %s: %s", len(ids), address, error.code().name)


async def _arena_chunks(store: ObjectStore, entry: Entry) -> AsyncIterator[bytes]:
    view = store.arena.view
    end = entry.offset + entry.size
    for position in range(entry.offset, end, CHUNK):
        yield bytes(view[position : min(position + CHUNK, end)])


async def _file_chunks(f: BinaryIO) -> AsyncIterator[bytes]:
    """A spilled object read back in chunks, off the event loop."""
    loop = asyncio.get_running_loop()
    with f:
        while True:
            data = await loop.run_in_executor(None, f.read, CHUNK)
            if not data:
                return
            yield data
