"""The head: one per cluster. Membership, the resource view, jobs, placement across nodes.

The head is not on the path of any task. Node agents hold a session with it and report their
free resources when they change; drivers hold a session that ends when they do, which is how
the cluster learns that a driver died and stops its workers.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import AsyncIterator

import grpc

from ember.runtime import __version__, ids, resources
from ember.runtime.actor_manager import ActorManager, abort_not_found
from ember.runtime.protocol import ember_pb2 as pb
from ember.runtime.protocol import ember_pb2_grpc as rpc_pb
from ember.runtime.resources import Shape

log = logging.getLogger("ember.runtime.head")


class NodeState:
    def __init__(self, info: pb.NodeInfo) -> None:
        self.info = info
        self.node_id = info.node_id
        self.total: Shape = resources.to_fixed(info.total.quantities)
        self.available: Shape = dict(self.total)
        self.alive = True
        self.last_seen = time.monotonic()
        self.num_workers = 0
        self.outbox: asyncio.Queue[pb.HeadToNode] = asyncio.Queue()

    def describe(self) -> str:
        return f"node {ids.short(self.node_id)} ({self.info.address})"


class JobState:
    def __init__(self, job_id: bytes, hello: pb.DriverHello) -> None:
        self.job_id = job_id
        self.driver_address = hello.address
        self.namespace = hello.namespace
        self.pid = hello.pid
        self.alive = True
        self.started = time.time()

    def ended(self) -> pb.JobEnded:
        return pb.JobEnded(job_id=self.job_id, driver_address=self.driver_address)


class Head(rpc_pb.HeadServicer):
    def __init__(self, session_dir: str) -> None:
        self.session_dir = session_dir
        self.nodes: dict[bytes, NodeState] = {}
        self.jobs: dict[bytes, JobState] = {}
        self._job_counter = itertools.count(1)
        self.node_registered = asyncio.Event()
        self.actors = ActorManager(self)

    # ------------------------------------------------------------------ nodes

    async def NodeSession(
        self, request_iterator: AsyncIterator[pb.NodeMessage], context: grpc.aio.ServicerContext
    ) -> None:
        node: NodeState | None = None
        writer: asyncio.Task[None] | None = None
        try:
            async for message in request_iterator:
                kind = message.WhichOneof("kind")
                if kind == "register":
                    node = NodeState(message.register)
                    self.nodes[node.node_id] = node
                    log.info("%s joined with %s", node.describe(), resources.describe(node.total))
                    writer = asyncio.ensure_future(self._write_node(node, context))
                    node.outbox.put_nowait(pb.HeadToNode(registered=pb.Empty()))
                    for job in self.jobs.values():
                        if not job.alive:
                            node.outbox.put_nowait(pb.HeadToNode(job_finished=job.ended()))
                    self.node_registered.set()
                elif kind == "report" and node is not None:
                    node.available = resources.to_fixed(message.report.available.quantities)
                    node.num_workers = message.report.num_workers
                    node.last_seen = time.monotonic()
                    if message.report.dead_workers:
                        self.actors.owners_died(list(message.report.dead_workers))
        except (grpc.aio.AioRpcError, asyncio.CancelledError):
            pass
        finally:
            if writer is not None:
                writer.cancel()
            if node is not None and self.nodes.get(node.node_id) is node:
                node.alive = False
                log.info("%s left", node.describe())

    async def _write_node(self, node: NodeState, context: grpc.aio.ServicerContext) -> None:
        while True:
            await context.write(await node.outbox.get())

    def alive_nodes(self) -> list[NodeState]:
        return [node for node in self.nodes.values() if node.alive]

    # ------------------------------------------------------------------ drivers

    async def DriverSession(
        self, request: pb.DriverHello, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.HeadToDriver]:
        job_id = next(self._job_counter).to_bytes(4, "little")
        job = self.jobs[job_id] = JobState(job_id, request)
        log.info("job %s started by driver pid %d at %s", job_id.hex(), request.pid, request.address)
        try:
            yield pb.HeadToDriver(job_id=job_id)
            await asyncio.Event().wait()  # until the driver goes away
        finally:
            job.alive = False
            log.info("job %s ended (driver pid %d gone)", job_id.hex(), request.pid)
            # Actors first: their deaths must be known as kills before the nodes stop workers.
            self.actors.job_finished(job_id, request.pid)
            for node in self.alive_nodes():
                node.outbox.put_nowait(pb.HeadToNode(job_finished=job.ended()))

    # ------------------------------------------------------------------ views

    async def GetClusterView(
        self, request: pb.Empty, context: grpc.aio.ServicerContext
    ) -> pb.ClusterView:
        return pb.ClusterView(
            nodes=[
                pb.NodeView(
                    info=node.info,
                    available=pb.ResourceSet(quantities=resources.to_float(node.available)),
                    alive=node.alive,
                    num_workers=node.num_workers,
                )
                for node in self.nodes.values()
            ],
            session_dir=self.session_dir,
            version=__version__,
        )

    def place(self, shape: resources.Shape, exclude: bytes = b"") -> NodeState | None:
        """The node to send work of this shape to: one with it free, else one it fits at all."""
        candidates = [n for n in self.alive_nodes() if n.node_id != exclude]
        feasible = [n for n in candidates if resources.fits(shape, n.total)]
        free = [n for n in feasible if resources.fits(shape, n.available)]
        chosen = free or feasible
        if not chosen:
            return None
        return max(chosen, key=lambda n: n.available.get("CPU", 0))

    def largest_node(self) -> str:
        largest = max(self.alive_nodes(), key=lambda n: n.total.get("CPU", 0), default=None)
        return resources.describe(largest.total) if largest else "no nodes"

    async def FindNode(
        self, request: pb.FindNodeRequest, context: grpc.aio.ServicerContext
    ) -> pb.FindNodeReply:
        shape = resources.to_fixed(request.shape.quantities)
        node = self.place(shape, request.exclude_node_id)
        reply = pb.FindNodeReply(feasible=node is not None, largest=self.largest_node())
        if node is not None:
            reply.node.CopyFrom(node.info)
        return reply

    # ------------------------------------------------------------------ actors

    async def CreateActor(
        self, request: pb.ActorSpec, context: grpc.aio.ServicerContext
    ) -> pb.CreateActorReply:
        return await self.actors.create(request)

    async def GetActor(
        self, request: pb.GetActorRequest, context: grpc.aio.ServicerContext
    ) -> pb.ActorInfo:
        record = await self.actors.find_or_wait(request)
        if record is None:
            await abort_not_found(context, request)
            return pb.ActorInfo()
        return await self.actors.get(record, request.after_version, min(request.timeout, 60.0))

    async def KillActor(
        self, request: pb.KillActorRequest, context: grpc.aio.ServicerContext
    ) -> pb.Empty:
        self.actors.kill(request)
        return pb.Empty()

    async def ListActors(self, request: pb.Empty, context: grpc.aio.ServicerContext) -> pb.ActorList:
        return self.actors.list()
