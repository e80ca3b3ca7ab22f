"""The node agent: one per machine or pod. It leases workers against the node's resources.

The agent composes the parts of a node, each in a module of its own that knows nothing of the
agent: the leases it grants owners (``leases``), its warm pool of workers forked from the zygote
(``worker_pool``) and the runtime_envs set up for them (``runtime_envs``), its shared-memory
object store and the transfers between nodes (``object_store``, ``object_transfer``), its
session with the head (``head_link``), a drain
when the head orders one (``node_drain``), its metrics and logs. What is left here is the
gRPC service that fronts them, the workers' sessions, and what the head hears of the node.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Callable

import grpc

from ember.runtime.node import store_listing, worker_profiles, worker_stacks
from ember.runtime.node.bundles import Bundles
from ember.runtime.node.gpu_devices import GpuDevices
from ember.runtime.node.head_link import HeadLink
from ember.runtime.node.lease_records import LeaseState
from ember.runtime.node.leases import Leases
from ember.runtime.node.node_drain import NodeDrainer
from ember.runtime.node.node_logs import LogNotFound, NodeLogs
from ember.runtime.node.node_metrics import NodeMetrics
from ember.runtime.node.object_store import Lost, ObjectStore, StoreBroken, StoreFull
from ember.runtime.node.object_transfer import ObjectTransfer
from ember.runtime.node.runtime_envs import RuntimeEnvs
from ember.runtime.node.task_times import TaskTimesKept
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
from ember.runtime.wire import event_loop, package_format, package_transfer, resources, rpc
from ember.runtime.wire.protocol import ember_pb2 as pb
from ember.runtime.wire.protocol import ember_pb2_grpc as rpc_pb
from ember.runtime.wire.resources import Shape

log = logging.getLogger("ember.runtime.node.node_agent")

IDLE_WORKER_TIMEOUT = 2.0  # seconds an idle worker beyond the warm pool may live
ASK_WORKER_TIMEOUT = 4.0  # seconds a worker has to answer the state API (below the head's 5)
EXITING_WORKER_GRACE = 2.0  # seconds a worker that refused the question has to be seen exiting


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
        gpus: GpuDevices | None = None,
    ) -> None:
        self.node_id = node_id
        self.store = store
        self.transfer = ObjectTransfer(store, rpc.Channels(), node_id)
        self.host = host
        self.hostname = socket.gethostname()  # the pod's name in Kubernetes
        self.pool = pool
        self.warm_workers = warm_workers
        self.labels = labels or {}
        self.address = ""
        self.head_address = ""
        self.drain: NodeDrainer | None = None  # set once the head orders this node drained
        # Since the last report: workers that died, and failures said for people.
        self.dead_workers: list[str] = []
        self.failures: list[str] = []
        self._idle_since: float | None = None
        self.channels = rpc.Channels()
        self.stopping = False
        self.head_link = HeadLink(self)
        self.leases = Leases(self, total, pool, self.head_link.report_soon, gpus)
        self.runtime_envs = self.leases.envs = RuntimeEnvs(
            os.path.join(session_dir or os.environ.get("TMPDIR", "/tmp"), "runtime_envs", node_id.hex()[:8]),
            f"node {ids.short(node_id)}",
            self._fetch_package,
            self.leases.env_settled,
        )
        self.bundles = Bundles(self.leases)  # placement group bundles reserved here
        self.metrics = NodeMetrics(store, pool, self.leases)
        self.task_times = TaskTimesKept()
        self.metrics_port = 0
        self.logs = NodeLogs(session_dir)
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
        self.report_soon()

    async def _fetch_package(self, uri: str) -> bytes:
        """A runtime_env's package, from the head (or its http(s) URL)."""
        limit = package_format.max_bytes()
        if not package_format.is_package_uri(uri):
            return await package_transfer.fetch_url(uri, limit)
        try:
            return await package_transfer.download(
                rpc_pb.PackagesStub(self.channels.channel(self.head_address)), uri, limit
            )
        except grpc.aio.AioRpcError as error:
            raise package_format.PackageError(
                f"cannot fetch {uri} from the head at {self.head_address}: "
                f"{error.code().name}: {error.details()}"
            ) from None

    # ------------------------------------------------------------------ owners

    async def Leases(
        self, request_iterator: AsyncIterator[pb.LeaseClientMessage], context: grpc.aio.ServicerContext
    ) -> None:
        await self.leases.serve(request_iterator, context)

    # ------------------------------------------------------------------ workers

    def on_pool_restarted(self) -> None:
        self._top_up()
        self.leases.schedule()

    def on_pool_broken(self, reason: str) -> None:
        self.leases.reject_all(reason)

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
                    self.leases.schedule()
                elif kind == "blocked" and worker is not None:
                    self.leases.set_blocked(worker, message.blocked)
                elif kind == "busy" and worker is not None:
                    if worker.state == RETIRING:
                        worker.state = IDLE
                        worker.idle_since = time.monotonic()
                        self.leases.schedule()
        except (grpc.aio.AioRpcError, asyncio.CancelledError):
            pass
        finally:
            if writer is not None:
                writer.cancel()
            if worker is not None and worker.state != DEAD:
                # Not awaited here: gRPC may cancel this handler again while we wait.
                event_loop.detach(self._worker_gone(worker), "ending a worker's leases")

    async def _write_worker(self, worker: WorkerHandle, context: grpc.aio.ServicerContext) -> None:
        assert worker.outbox is not None
        while True:
            await context.write(await worker.outbox.get())

    def on_worker_exit(self, worker: WorkerHandle) -> None:
        """The zygote reaped a worker."""
        if worker.state != DEAD:
            event_loop.detach(self._worker_gone(worker), "ending a worker's leases")

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
        how = describe_exit(worker.returncode) if worker.exited.is_set() else "lost"
        if previous == STARTING and worker.setup is not None and not self.stopping:
            self.leases.env_worker_failed(worker.setup, _verb(how))
        failure = self.leases.worker_gone(worker, f"worker pid {worker.pid} on {self.host} {_verb(how)}")
        if failure:
            self.failures.append(failure)
        if previous == LEASED or worker.returncode not in (0, None):
            log.info("%s ended: %s", worker.describe(), describe_exit(worker.returncode))
        if worker.address:
            # Objects it owned or was writing go; actors it owned end (the head sees to it).
            self.free_everywhere(self.store.owner_gone(worker.address))
            self.store.creator_gone(worker.address)
            if worker.job_id is not None:
                self.dead_workers.append(worker.address)
                self.report_soon()
        self.pool.forget(worker)
        self._top_up()
        self.leases.schedule()

    def _top_up(self) -> None:
        """Keep the warm pool at its size, so the next lease needs no fork."""
        if self.stopping or self.drain is not None:
            return
        live = sum(
            1 for w in self.pool.workers.values()
            if w.state in (STARTING, IDLE, LEASED) and w.setup is None
        )
        for _ in range(self.warm_workers - live):
            self.pool.spawn()

    def _retire(self, worker: WorkerHandle) -> None:
        """Ask an idle worker to exit; it is not leased while it decides."""
        if worker.state == IDLE and worker.outbox is not None:
            worker.state = RETIRING
            worker.outbox.put_nowait(pb.AgentToWorker(exit_if_idle=pb.Empty()))

    async def reap_idle_workers(self) -> None:
        while not self.stopping:
            await asyncio.sleep(IDLE_WORKER_TIMEOUT / 2)
            if self.leases.orphans:
                self.leases.expire_orphans()
            released = self.store.release_idle_memory()
            if released:
                log.debug("gave %d bytes of idle object store memory back", released)
            self.store.audit()
            now = time.monotonic()
            idle = [w for w in self.pool.workers.values() if w.state == IDLE]
            # The warm pool is of the node's own environment; a runtime_env's idle workers go.
            spare = sum(1 for w in self.pool.workers.values() if w.setup is None) - self.warm_workers
            for worker in sorted(idle, key=lambda w: w.idle_since):
                if now - worker.idle_since < IDLE_WORKER_TIMEOUT:
                    continue
                if worker.setup is not None:
                    self._retire(worker)
                elif spare > 0:
                    self._retire(worker)
                    spare -= 1
            running = [w.setup for w in self.pool.workers.values() if w.setup is not None]
            try:
                await self.runtime_envs.collect(running)
            except OSError as error:
                log.warning("%s: cannot collect unused runtime_envs: %s", self.describe(), error)

    def job_finished(self, ended: pb.JobEnded) -> None:
        """The head says a driver is gone: its workers go too, and the objects it owned."""
        job_id = ended.job_id
        self.runtime_envs.job_finished(job_id)
        if ended.driver_address:
            self.free_everywhere(self.store.owner_gone(ended.driver_address))
        for worker in list(self.pool.workers.values()):
            if worker.job_id == job_id and worker.state in (IDLE, LEASED) and not worker.detached:
                self.pool.kill(worker)

    # ------------------------------------------------------------------ head

    def report_soon(self) -> None:
        """Changes the head should hear of go in a report within a few milliseconds."""
        self.head_link.report_soon()

    def node_info(self, pid: int) -> pb.NodeInfo:
        """How this node registers with a head (``head_link``)."""
        return pb.NodeInfo(
            node_id=self.node_id,
            address=self.address,
            host=self.host,
            hostname=self.hostname,
            total=pb.ResourceSet(quantities=resources.to_float(self.leases.total)),
            labels=self.labels,
            pid=pid,
            store_dir=self.store.directory,
            metrics_port=self.metrics_port,
            draining=self.drain is not None,
            bundles=self.bundles.listing(force=True),
        )

    def node_report(self) -> pb.NodeReport:
        """What the head hears of this node, at least every heartbeat (``head_link``): free
        resources, the demand waiting here, how long the node has been idle, and the workers
        that died and failures since the last report (each goes in one report only)."""
        dead, self.dead_workers = self.dead_workers, []
        failures, self.failures = self.failures, []
        bundles = self.bundles.listing()
        return pb.NodeReport(
            available=pb.ResourceSet(quantities=resources.to_float(self.leases.available)),
            num_workers=len(self.pool.workers),
            num_leases=self.leases.held(),
            dead_workers=dead,
            pending=self.leases.demand(),
            failures=failures,
            metrics_port=self.metrics_port,
            drain=self.drain.snapshot() if self.drain is not None else None,
            idle_seconds=self._idle_seconds(),
            store_broken=self.store.broken,
            bundles=bundles or [],
            bundles_listed=bundles is not None,
            usage=self.metrics.usage(),
        )

    def _idle_seconds(self) -> float:
        """How long nothing has needed this node: no lease, no waiting request, no detached
        actor kept for a head, no placement group bundle, no object whose only copy is here. An autoscaler removes only
        nodes idle for a while."""
        now = time.monotonic()
        if self.leases.busy() or self.bundles.busy() or self.store.holds_originals():
            self._idle_since = None
            return 0.0
        if self._idle_since is None:
            self._idle_since = now
        return now - self._idle_since

    def obey(self, order: pb.HeadToNode) -> None:
        """An order from the head (``head_link``): a job ended, a drain, owners that died."""
        kind = order.WhichOneof("kind")
        if kind == "job_finished":
            self.job_finished(order.job_finished)
        elif kind == "drain":
            self.start_drain(order.drain)
        elif kind == "owners_gone":
            self.free_everywhere(self.store.owners_gone(set(order.owners_gone.addresses)))

    def refused(self, reason: str) -> None:
        """The head refused this node (its token, or it declared the node dead): the agent
        stops, since no retry mends either."""
        self.stopping = True
        self.on_refused(reason)

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
            event_loop.detach(self.transfer.forward_frees(elsewhere), "forwarding frees to other nodes")

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

    # ------------------------------------------------------------------ placement groups

    async def PrepareBundles(
        self, request: pb.BundleReservations, context: grpc.aio.ServicerContext
    ) -> pb.BundleReplies:
        return pb.BundleReplies(errors=self.bundles.prepare_all(request.reservations))

    async def CommitBundles(
        self, request: pb.BundleReservations, context: grpc.aio.ServicerContext
    ) -> pb.BundleReplies:
        return pb.BundleReplies(errors=self.bundles.commit_all(request.reservations))

    async def ReleaseBundles(
        self, request: pb.BundleReleases, context: grpc.aio.ServicerContext
    ) -> pb.Empty:
        self.bundles.release(request.releases)
        return pb.Empty()

    async def ReportMetrics(
        self, request: pb.MetricsReport, context: grpc.aio.ServicerContext
    ) -> pb.Empty:
        self.metrics.add(request)
        if request.HasField("times"):
            self.task_times.add(request.times)
        return pb.Empty()

    async def ListTaskTimes(
        self, request: pb.TaskTimesRequest, context: grpc.aio.ServicerContext
    ) -> pb.NodeTaskTimes:
        return pb.NodeTaskTimes(
            node_id=self.node_id, node_address=self.address,
            times=self.task_times.select(request), dropped=self.task_times.dropped,
        )

    async def DumpStacks(
        self, request: pb.StackRequest, context: grpc.aio.ServicerContext
    ) -> pb.ClusterStacks:
        return await worker_stacks.dump(
            self.pool.workers.values(), request, self.channels, self.node_id, self.address,
            self.describe(),
        )

    async def Profile(
        self, request: pb.ProfileRequest, context: grpc.aio.ServicerContext
    ) -> pb.ClusterProfiles:
        return await worker_profiles.profile(
            self.pool.workers.values(), request, self.channels, self.node_id, self.address,
            self.describe(),
        )

    async def FindTasks(self, request: pb.TaskLookup, context: grpc.aio.ServicerContext) -> pb.TaskList:
        return self.metrics.find_tasks(request)

    async def GetTaskLog(self, request: pb.TaskLogRequest, context: grpc.aio.ServicerContext) -> pb.TaskLog:
        return await worker_profiles.task_log(self.pool.workers.values(), request, self.channels, self.describe())

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

    async def ListObjects(self, request: pb.Empty, context: grpc.aio.ServicerContext) -> pb.ClusterObjects:
        """Every worker of the node, asked at once what it holds references to (a worker that
        does not answer in time is listed with why), and what the node's store holds."""
        workers = [w for w in self.pool.workers.values() if w.address and w.state != DEAD]

        async def ask(worker: WorkerHandle) -> pb.ProcessObjects | None:
            try:
                reply: pb.ProcessObjects = await self.channels.core_worker(worker.address).ListObjects(
                    pb.Empty(), timeout=ASK_WORKER_TIMEOUT
                )
            except grpc.aio.AioRpcError as error:
                if error.code() == grpc.StatusCode.UNAVAILABLE and await _exits_soon(worker):
                    return None  # it was on its way out: a worker that has exited holds nothing
                return pb.ProcessObjects(
                    pid=worker.pid, kind="WORKER", address=worker.address, node_id=self.node_id,
                    error=f"worker pid {worker.pid} on {self.describe()} could not be asked: "
                    f"{error.code().name} {error.details()}",
                )
            reply.node_id = self.node_id
            return reply

        answers = await asyncio.gather(*(ask(w) for w in workers))
        return pb.ClusterObjects(
            processes=[answer for answer in answers if answer is not None],
            stores=[store_listing.store_view(self.store, self.node_id, self.address)],
        )

    def start_drain(self, order: pb.DrainOrder) -> None:
        """The head orders this node drained (see ``node_drain.py``); asked again, nothing new."""
        if self.drain is not None:
            return
        self.drain = self.leases.drain = NodeDrainer(self, order)
        self.drain.start()
        self.report_soon()


async def _exits_soon(worker: WorkerHandle) -> bool:
    """Whether a worker that refused a connection is exiting: its server closes before its
    process ends, so a worker released between the listing and the question refuses it."""
    try:
        await asyncio.wait_for(worker.exited.wait(), EXITING_WORKER_GRACE)
    except TimeoutError:
        return False
    return True


def _verb(how: str) -> str:
    if how.startswith("killed"):
        return f"was {how}"
    if how.startswith("exit code"):
        return f"exited with {how}"
    return "is gone (no exit status)"
