"""The node agent: one per machine or pod. It leases workers against the node's resources.

Owners ask for a lease of a resource shape on a ``Leases`` stream; the agent grants an idle
worker of its pool when the shape fits what is free, queues the request while it does not, and
sends the owner elsewhere (through the head) when the node could never hold it. A worker blocked
in ``get`` gives its CPU back while it waits. The agent reports its free resources to the head
and keeps a warm pool of workers forked from the zygote.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Callable

import grpc

from ember.runtime.node.head_link import HeadLink
from ember.runtime.node.node_drain import NodeDrainer
from ember.runtime.node.node_logs import LogNotFound, NodeLogs
from ember.runtime.node.node_metrics import NodeMetrics
from ember.runtime.node.object_store import Lost, ObjectStore, StoreBroken, StoreFull
from ember.runtime.node.object_transfer import ObjectTransfer
from ember.runtime.node.worker_pool import (
    DEAD,
    IDLE,
    LEASED,
    RETIRING,
    STARTING,
    WorkerHandle,
    WorkerPool,
)
from ember.runtime.objects import ids
from ember.runtime.objects.exceptions import describe_exit
from ember.runtime.wire import resources, rpc
from ember.runtime.wire.protocol import ember_pb2 as pb
from ember.runtime.wire.protocol import ember_pb2_grpc as rpc_pb
from ember.runtime.wire.resources import Shape

log = logging.getLogger("ember.runtime.node.node_agent")

IDLE_WORKER_TIMEOUT = 2.0  # seconds an idle worker beyond the warm pool may live
# How long a detached actor's worker outlives its head's lease stream, for a restarted head.
ORPHAN_GRACE = float(os.environ.get("EMBER_HEAD_RESTART_GRACE_S", "60"))
RECLAIM_INTERVAL = 0.05  # how often owners are asked to give back idle leases
PLACEMENT_RETRY = 0.5  # seconds between asks for a node while only draining nodes fit a shape


class OwnerSession:
    """One owner's Leases stream."""

    def __init__(self) -> None:
        self.job_id = b""
        self.address = ""
        self.pid = 0
        self.head = False
        self.outbox: asyncio.Queue[pb.LeaseServerMessage] = asyncio.Queue()
        self.leases: dict[int, LeaseState] = {}
        self.last_reclaim = 0.0

    def send(self, message: pb.LeaseServerMessage) -> None:
        self.outbox.put_nowait(message)

    def describe(self) -> str:
        return f"owner pid {self.pid} at {self.address} (job {self.job_id.hex()})"


class PendingRequest:
    __slots__ = (
        "owner", "request_id", "shape", "hold", "task_name", "spilled", "job_id", "detached",
        "actor_id", "queued_at",
    )

    def __init__(self, owner: OwnerSession, request: pb.LeaseRequest) -> None:
        self.owner = owner
        self.request_id = request.request_id
        self.shape = resources.to_fixed(request.shape.quantities)
        # What the lease keeps once granted (an actor is placed with a CPU but holds none).
        self.hold = resources.to_fixed(request.hold.quantities) if request.hold_set else self.shape
        self.task_name = request.task_name
        self.spilled = request.spilled
        self.job_id = request.job_id or owner.job_id
        self.detached = request.detached
        self.actor_id = request.actor_id
        self.queued_at = time.monotonic()


class LeaseState:
    __slots__ = ("lease_id", "owner", "worker", "shape", "blocked", "actor_id", "orphaned_at")

    def __init__(
        self, lease_id: int, owner: OwnerSession, worker: WorkerHandle, shape: Shape,
        actor_id: bytes = b"",
    ):
        self.lease_id = lease_id
        self.owner = owner
        self.worker = worker
        self.shape = shape
        self.blocked = False
        self.actor_id = actor_id  # the actor its worker hosts, if the head leased it for one
        self.orphaned_at = 0.0


class NodeAgent(rpc_pb.NodeAgentServicer):
    def __init__(
        self,
        node_id: bytes,
        host: str,
        total: Shape,
        pool: WorkerPool,
        warm_workers: int,
        store: ObjectStore,
        labels: dict[str, str] | None = None,
        session_dir: str = "",
    ) -> None:
        self.node_id = node_id
        self.store = store
        self.transfer = ObjectTransfer(store, rpc.Channels(), node_id)
        self.host = host
        self.hostname = socket.gethostname()  # the pod's name in Kubernetes
        self.total = dict(total)
        self.available = dict(total)
        self.pool = pool
        self.warm_workers = warm_workers
        self.labels = labels or {}
        self.address = ""
        self.head_address = ""
        self.queue: list[PendingRequest] = []
        # Requests this node will not grant, while the head finds them a node.
        self.placing: list[PendingRequest] = []
        self.drain: NodeDrainer | None = None  # set once the head orders this node drained
        self.owners: set[OwnerSession] = set()
        self._lease_ids = itertools.count(1)
        self._finished_jobs: set[bytes] = set()
        # Leases of detached actors whose head went away, by actor id, until a head adopts them.
        self.orphans: dict[bytes, LeaseState] = {}
        # Since the last report: workers that died, and failures said for people.
        self.dead_workers: list[str] = []
        self.failures: list[str] = []
        self.channels = rpc.Channels()
        self.stopping = False
        self.metrics = NodeMetrics(self)
        self.metrics_port = 0
        self.logs = NodeLogs(session_dir)
        self.head_link = HeadLink(self)
        # Called with the reason when the head declares this node dead: the agent exits.
        self.on_refused: Callable[[str], None] = lambda reason: None
        store.on_broken = self._store_broke

    def describe(self) -> str:
        return f"node {ids.short(self.node_id)} ({self.address})"

    def _store_broke(self, reason: str) -> None:
        """Said once, to the head (a cluster event, and the node's reports from now on) and in
        this agent's log; the health check and the metrics read ``store.broken``."""
        log.error("%s: the object store is broken, it takes no new objects: %s", self.describe(), reason)
        self.failures.append(f"its object store is broken and takes no new objects: {reason}")
        self._report_soon()

    # ------------------------------------------------------------------ owners

    async def Leases(
        self, request_iterator: AsyncIterator[pb.LeaseClientMessage], context: grpc.aio.ServicerContext
    ) -> None:
        owner = OwnerSession()
        self.owners.add(owner)

        async def write() -> None:
            while True:
                await context.write(await owner.outbox.get())

        writer = asyncio.ensure_future(write())
        try:
            async for message in request_iterator:
                kind = message.WhichOneof("kind")
                if kind == "request":
                    self._on_request(owner, message.request)
                elif kind == "release":
                    self._release(owner, message.release.lease_id, message.release.discard_worker)
                elif kind == "cancel":
                    self._cancel(owner, message.cancel.request_id)
                elif kind == "owner":
                    owner.job_id = message.owner.job_id
                    owner.address = message.owner.owner_address
                    owner.pid = message.owner.pid
                    owner.head = message.owner.head
                elif kind == "adopt":
                    self._adopt(owner, message.adopt)
        except (grpc.aio.AioRpcError, asyncio.CancelledError):
            pass
        finally:
            writer.cancel()
            self._owner_gone(owner)

    def _on_request(self, owner: OwnerSession, request: pb.LeaseRequest) -> None:
        pending = PendingRequest(owner, request)
        if self.pool.broken:
            self._reject_broken(pending, self.pool.broken)
            return
        if self.drain is not None:
            self.drain.redirect(pending)
            return
        if not resources.fits(pending.shape, self.total):
            asyncio.ensure_future(self._place_elsewhere(pending))
            return
        self.queue.append(pending)
        self._schedule()

    async def _place_elsewhere(self, request: PendingRequest) -> None:
        """The shape can never fit here, or this node is draining: ask the head for a node,
        wait while only draining nodes could hold it (a node may join), or give up."""
        self.placing.append(request)
        try:
            await self._find_node(request)
        finally:
            if request in self.placing:
                self.placing.remove(request)

    async def _find_node(self, request: PendingRequest) -> None:
        owner = request.owner
        shape = describe = resources.describe(request.shape)
        while True:
            try:
                reply = await self.channels.head(self.head_address).FindNode(
                    pb.FindNodeRequest(
                        shape=pb.ResourceSet(quantities=resources.to_float(request.shape)),
                        exclude_node_id=self.node_id,
                    ),
                    timeout=10.0,
                )
            except grpc.aio.AioRpcError as error:
                owner.send(pb.LeaseServerMessage(rejected=pb.LeaseRejected(
                    request_id=request.request_id,
                    reason=f"the head at {self.head_address} cannot be reached ({error.code().name})",
                )))
                return
            if request not in self.placing:
                return  # cancelled, or its owner is gone
            if reply.node.address or not reply.feasible:
                break
            await asyncio.sleep(PLACEMENT_RETRY)
            if request not in self.placing:
                return
        if reply.node.address:
            owner.send(pb.LeaseServerMessage(spillback=pb.LeaseSpillback(
                request_id=request.request_id,
                node_address=reply.node.address,
                node_id=reply.node.node_id,
            )))
            return
        owner.send(pb.LeaseServerMessage(rejected=pb.LeaseRejected(
            request_id=request.request_id,
            infeasible=not reply.feasible,
            reason=(
                f"it needs {shape}, but no node of the cluster has that much "
                f"(largest node: {reply.largest or describe})"
            ),
        )))

    def _cancel(self, owner: OwnerSession, request_id: int) -> None:
        self.queue = [
            r for r in self.queue if not (r.owner is owner and r.request_id == request_id)
        ]
        self.placing = [
            r for r in self.placing if not (r.owner is owner and r.request_id == request_id)
        ]

    def _schedule(self) -> None:
        """Grant every queued request that fits, starting workers where none is idle."""
        if not self.queue or self.drain is not None:
            return
        free = dict(self.available)
        needs_worker = 0
        waiting = False
        for request in list(self.queue):
            if not resources.fits(request.shape, free):
                waiting = True
                continue
            resources.subtract(free, request.hold)
            worker = self._idle_worker(request.job_id)
            if worker is None:
                needs_worker += 1
                continue
            self.queue.remove(request)
            self._grant(request, worker)
        starting = self.pool.starting()
        for _ in range(needs_worker - starting):
            self._spawn()
        if waiting:
            self._reclaim_idle_leases()

    def _idle_worker(self, job_id: bytes) -> WorkerHandle | None:
        unbound = None
        for worker in self.pool.workers.values():
            if worker.state != IDLE:
                continue
            if worker.job_id == job_id:
                return worker
            if worker.job_id is None and unbound is None:
                unbound = worker
        return unbound

    def _grant(self, request: PendingRequest, worker: WorkerHandle) -> None:
        resources.subtract(self.available, request.hold)
        lease = LeaseState(
            next(self._lease_ids), request.owner, worker, request.hold, request.actor_id
        )
        worker.state = LEASED
        worker.lease = lease
        worker.detached = worker.detached or request.detached
        if worker.job_id is None:
            worker.job_id = request.job_id
        request.owner.leases[lease.lease_id] = lease
        request.owner.send(pb.LeaseServerMessage(grant=pb.LeaseGrant(
            request_id=request.request_id,
            lease_id=lease.lease_id,
            worker_id=worker.worker_id,
            worker_address=worker.address,
            node_id=self.node_id,
            worker_pid=worker.pid,
            worker_channel=worker.channel_address,
        )))
        self._report_soon()

    def _release(self, owner: OwnerSession, lease_id: int, discard: bool) -> None:
        lease = owner.leases.pop(lease_id, None)
        if lease is None:
            return
        self._free_lease(lease)
        if self.drain is not None:
            self.drain.lease_ended(lease, returned=True)
        worker = lease.worker
        if worker.state == LEASED:
            worker.lease = None
            if discard:
                self.pool.kill(worker)
            else:
                worker.state = IDLE
                worker.idle_since = time.monotonic()
        self._schedule()

    def _free_lease(self, lease: LeaseState) -> None:
        shape = dict(lease.shape)
        if lease.blocked:
            shape.pop("CPU", None)  # already given back while blocked
        resources.add(self.available, shape)
        self._report_soon()

    def _owner_gone(self, owner: OwnerSession) -> None:
        self.owners.discard(owner)
        self.queue = [r for r in self.queue if r.owner is not owner]
        self.placing = [r for r in self.placing if r.owner is not owner]
        for lease in list(owner.leases.values()):
            owner.leases.pop(lease.lease_id, None)
            if owner.head and lease.actor_id and lease.worker.detached and not self.stopping:
                # The head went away (a restart?): its successor may take this actor back.
                lease.orphaned_at = time.monotonic()
                self.orphans[lease.actor_id] = lease
                log.info(
                    "%s: keeping detached actor %s (worker pid %d) for %gs for a restarted head "
                    "to take back", self.describe(), lease.actor_id.hex()[:12], lease.worker.pid,
                    ORPHAN_GRACE,
                )
                continue
            # Whatever the worker runs was for an owner that can no longer take the result.
            self._free_lease(lease)
            lease.worker.lease = None
            self.pool.kill(lease.worker)
            if self.drain is not None:
                self.drain.lease_ended(lease, returned=False)
        self._schedule()

    def _adopt(self, owner: OwnerSession, request: pb.AdoptRequest) -> None:
        lease = self.orphans.pop(request.actor_id, None)
        if lease is None or lease.worker.state != LEASED:
            owner.send(pb.LeaseServerMessage(rejected=pb.LeaseRejected(
                request_id=request.request_id,
                reason=f"{self.describe()} keeps no worker for actor {request.actor_id.hex()[:12]}",
            )))
            return
        lease.owner = owner
        lease.orphaned_at = 0.0
        owner.leases[lease.lease_id] = lease
        worker = lease.worker
        owner.send(pb.LeaseServerMessage(grant=pb.LeaseGrant(
            request_id=request.request_id,
            lease_id=lease.lease_id,
            worker_id=worker.worker_id,
            worker_address=worker.address,
            node_id=self.node_id,
            worker_pid=worker.pid,
            worker_channel=worker.channel_address,
        )))
        log.info("%s: the head took back actor %s", self.describe(), request.actor_id.hex()[:12])

    def _expire_orphans(self) -> None:
        now = time.monotonic()
        for actor_id, lease in list(self.orphans.items()):
            if now - lease.orphaned_at >= ORPHAN_GRACE:
                del self.orphans[actor_id]
                log.warning(
                    "%s: no head took back actor %s within %gs; stopping its worker pid %d",
                    self.describe(), actor_id.hex()[:12], ORPHAN_GRACE, lease.worker.pid,
                )
                self._free_lease(lease)
                lease.worker.lease = None
                self.pool.kill(lease.worker)

    def _reclaim_idle_leases(self) -> None:
        now = time.monotonic()
        for owner in self.owners:
            if owner.leases and now - owner.last_reclaim > RECLAIM_INTERVAL:
                owner.last_reclaim = now
                owner.send(pb.LeaseServerMessage(reclaim_idle=pb.Empty()))

    # ------------------------------------------------------------------ workers

    def _spawn(self) -> WorkerHandle | None:
        return self.pool.spawn()

    def on_pool_restarted(self) -> None:
        self._top_up()
        self._schedule()

    def on_pool_broken(self, reason: str) -> None:
        queued, self.queue = self.queue, []
        for request in queued:
            self._reject_broken(request, reason)

    def _reject_broken(self, request: PendingRequest, reason: str) -> None:
        request.owner.send(pb.LeaseServerMessage(rejected=pb.LeaseRejected(
            request_id=request.request_id,
            reason=f"{self.describe()}: {reason}",
            worker_start_failed=True,
        )))

    async def WorkerSession(
        self, request_iterator: AsyncIterator[pb.WorkerMessage], context: grpc.aio.ServicerContext
    ) -> None:
        worker: WorkerHandle | None = None
        writer: asyncio.Task[None] | None = None
        try:
            async for message in request_iterator:
                kind = message.WhichOneof("kind")
                if kind == "hello":
                    worker = self.pool.workers.get(message.hello.worker_id)
                    if worker is None or worker.state != STARTING:
                        log.warning("unknown worker %s said hello", message.hello.worker_id.hex())
                        return
                    worker.address = message.hello.address
                    worker.channel_address = message.hello.channel_address
                    worker.pid = message.hello.pid
                    worker.state = IDLE
                    worker.idle_since = time.monotonic()
                    worker.outbox = asyncio.Queue()
                    writer = asyncio.ensure_future(self._write_worker(worker, context))
                    self._schedule()
                elif kind == "blocked" and worker is not None:
                    self._set_blocked(worker, message.blocked)
                elif kind == "busy" and worker is not None:
                    if worker.state == RETIRING:
                        worker.state = IDLE
                        worker.idle_since = time.monotonic()
                        self._schedule()
        except (grpc.aio.AioRpcError, asyncio.CancelledError):
            pass
        finally:
            if writer is not None:
                writer.cancel()
            if worker is not None and worker.state != DEAD:
                # Not awaited here: gRPC may cancel this handler again while we wait.
                asyncio.ensure_future(self._worker_gone(worker))

    async def _write_worker(self, worker: WorkerHandle, context: grpc.aio.ServicerContext) -> None:
        assert worker.outbox is not None
        while True:
            await context.write(await worker.outbox.get())

    def _set_blocked(self, worker: WorkerHandle, blocked: bool) -> None:
        lease = worker.lease
        if not isinstance(lease, LeaseState) or lease.blocked == blocked:
            return
        lease.blocked = blocked
        cpu = lease.shape.get("CPU", 0)
        if not cpu:
            return
        if blocked:
            self.available["CPU"] = self.available.get("CPU", 0) + cpu
            self._schedule()
        else:
            self.available["CPU"] = self.available.get("CPU", 0) - cpu
        self._report_soon()

    def on_worker_exit(self, worker: WorkerHandle) -> None:
        """The zygote reaped a worker."""
        if worker.state != DEAD:
            asyncio.ensure_future(self._worker_gone(worker))

    async def _worker_gone(self, worker: WorkerHandle) -> None:
        if worker.state == DEAD:
            return
        previous = worker.state
        worker.state = DEAD
        if not worker.exited.is_set():
            # The session broke first; the zygote's exit report carries the code.
            try:
                await asyncio.wait_for(worker.exited.wait(), 1.0)
            except TimeoutError:
                pass
        lease = worker.lease
        if isinstance(lease, LeaseState) and self.orphans.get(lease.actor_id) is lease:
            del self.orphans[lease.actor_id]
            self._free_lease(lease)
        elif isinstance(lease, LeaseState) and lease.lease_id in lease.owner.leases:
            del lease.owner.leases[lease.lease_id]
            how = describe_exit(worker.returncode) if worker.exited.is_set() else "lost"
            reason = f"worker pid {worker.pid} on {self.host} {_verb(how)}"
            lease.owner.send(pb.LeaseServerMessage(lost=pb.LeaseLost(
                lease_id=lease.lease_id, reason=reason
            )))
            self.failures.append(f"{reason} while leased to {lease.owner.describe()}")
            self._free_lease(lease)
            if self.drain is not None:
                self.drain.lease_ended(lease, returned=False)
        if previous == LEASED or worker.returncode not in (0, None):
            log.info("%s ended: %s", worker.describe(), describe_exit(worker.returncode))
        if worker.address:
            # Objects it owned or was writing go; actors it owned end (the head sees to it).
            self.free_everywhere(self.store.owner_gone(worker.address))
            self.store.creator_gone(worker.address)
            if worker.job_id is not None:
                self.dead_workers.append(worker.address)
                self._report_soon()
        self.pool.forget(worker)
        self._top_up()
        self._schedule()

    def _top_up(self) -> None:
        """Keep the warm pool at its size, so the next lease needs no fork."""
        if self.stopping or self.drain is not None:
            return
        live = sum(1 for w in self.pool.workers.values() if w.state in (STARTING, IDLE, LEASED))
        for _ in range(self.warm_workers - live):
            self._spawn()

    def _retire(self, worker: WorkerHandle) -> None:
        """Ask an idle worker to exit; it is not leased while it decides."""
        if worker.state == IDLE and worker.outbox is not None:
            worker.state = RETIRING
            worker.outbox.put_nowait(pb.AgentToWorker(exit_if_idle=pb.Empty()))

    async def reap_idle_workers(self) -> None:
        while not self.stopping:
            await asyncio.sleep(IDLE_WORKER_TIMEOUT / 2)
            if self.orphans:
                self._expire_orphans()
            released = self.store.release_idle_memory()
            if released:
                log.debug("gave %d bytes of idle object store memory back", released)
            self.store.audit()
            now = time.monotonic()
            idle = [w for w in self.pool.workers.values() if w.state == IDLE]
            spare = len(self.pool.workers) - self.warm_workers
            for worker in sorted(idle, key=lambda w: w.idle_since):
                if spare <= 0:
                    break
                if now - worker.idle_since >= IDLE_WORKER_TIMEOUT:
                    self._retire(worker)
                    spare -= 1

    def job_finished(self, ended: pb.JobEnded) -> None:
        """The head says a driver is gone: its workers go too, and the objects it owned."""
        job_id = ended.job_id
        self._finished_jobs.add(job_id)
        if ended.driver_address:
            self.free_everywhere(self.store.owner_gone(ended.driver_address))
        for worker in list(self.pool.workers.values()):
            if worker.job_id == job_id and worker.state in (IDLE, LEASED) and not worker.detached:
                self.pool.kill(worker)

    # ------------------------------------------------------------------ head

    def _report_soon(self) -> None:
        self.head_link.report_soon()

    def node_info(self, pid: int) -> pb.NodeInfo:
        return pb.NodeInfo(
            node_id=self.node_id,
            address=self.address,
            host=self.host,
            hostname=self.hostname,
            total=pb.ResourceSet(quantities=resources.to_float(self.total)),
            labels=self.labels,
            pid=pid,
            store_dir=self.store.directory,
            metrics_port=self.metrics_port,
            draining=self.drain is not None,
        )

    # ------------------------------------------------------------------ object store

    async def CreateObject(
        self, request: pb.CreateObjectRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateObjectReply:
        try:
            offset = await self.store.create(
                request.object_id, request.size, request.owner_address, request.creator
            )
        except StoreFull as full:
            return pb.CreateObjectReply(error=f"{self.describe()}: {full}", store_full=True)
        except StoreBroken as broken:
            return pb.CreateObjectReply(error=f"{self.describe()}: {broken}")
        if offset is None:
            return pb.CreateObjectReply(exists=True)
        return pb.CreateObjectReply(offset=offset)

    async def SealObjects(self, request: pb.ObjectIds, context: grpc.aio.ServicerContext) -> pb.Empty:
        self.store.seal(list(request.ids))
        return pb.Empty()

    async def FreeObjects(self, request: pb.ObjectIds, context: grpc.aio.ServicerContext) -> pb.Empty:
        self.free_everywhere(self.store.free(list(request.ids)))
        return pb.Empty()

    def free_everywhere(self, elsewhere: dict[str, list[bytes]]) -> None:
        if elsewhere:
            asyncio.ensure_future(self.transfer.forward_frees(elsewhere))

    async def FetchObject(self, request: pb.FetchRequest, context: grpc.aio.ServicerContext) -> pb.FetchReply:
        return await self.transfer.fetch(request)

    async def PushObject(
        self, request_iterator: AsyncIterator[pb.ObjectChunk], context: grpc.aio.ServicerContext
    ) -> pb.PushReply:
        return await self.transfer.receive(request_iterator)

    async def PullObject(
        self, request: pb.PullRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ObjectChunk]:
        try:
            async for chunk in self.transfer.serve(request):
                yield chunk
        except Lost as lost:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(lost))

    async def RestoreObject(
        self, request: pb.ObjectIds, context: grpc.aio.ServicerContext
    ) -> pb.RestoreObjectReply:
        try:
            offset = await self.store.restore(request.ids[0])
        except (Lost, StoreFull) as error:
            return pb.RestoreObjectReply(lost_reason=str(error))
        return pb.RestoreObjectReply(offset=offset)

    async def ReportMetrics(
        self, request: pb.MetricsReport, context: grpc.aio.ServicerContext
    ) -> pb.Empty:
        self.metrics.add(request)
        return pb.Empty()

    async def ListTasks(self, request: pb.Empty, context: grpc.aio.ServicerContext) -> pb.TaskList:
        return self.metrics.task_list()

    async def ListWorkers(self, request: pb.Empty, context: grpc.aio.ServicerContext) -> pb.WorkerList:
        now = time.monotonic()
        views = []
        for worker in self.pool.workers.values():
            lease = worker.lease
            view = pb.WorkerView(
                worker_id=worker.worker_id,
                pid=worker.pid,
                state=worker.state,
                job_id=worker.job_id or b"",
                age_seconds=now - worker.started_at,
                detached=worker.detached,
                address=worker.address,
                channel_address=worker.channel_address,
            )
            if isinstance(lease, LeaseState):
                view.actor_id = lease.actor_id
                view.owner = lease.owner.address if lease.owner is not None else ""
            views.append(view)
        return pb.WorkerList(workers=views)

    async def ListLogs(self, request: pb.Empty, context: grpc.aio.ServicerContext) -> pb.LogList:
        return self.logs.list()

    async def TailLog(self, request: pb.TailRequest, context: grpc.aio.ServicerContext) -> pb.TailReply:
        try:
            return self.logs.tail(request)
        except LogNotFound as missing:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"{self.describe()}: {missing}")
            raise

    async def GetStoreInfo(self, request: pb.Empty, context: grpc.aio.ServicerContext) -> pb.StoreInfo:
        info = self.store.info()
        return pb.StoreInfo(
            arena=self.store.arena.path, transfer_port=self.transfer.bulk_port,
            broken=self.store.broken, node_id=self.node_id, **info,
        )

    def start_drain(self, order: pb.DrainOrder) -> None:
        """The head orders this node drained (see ``node_drain.py``); asked again, nothing new."""
        if self.drain is not None:
            return
        self.drain = NodeDrainer(self, order)
        self.drain.start()
        self._report_soon()


def _verb(how: str) -> str:
    if how.startswith("killed"):
        return f"was {how}"
    if how.startswith("exit code"):
        return f"exited with {how}"
    return "is gone (no exit status)"
