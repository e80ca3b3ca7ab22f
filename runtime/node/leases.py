"""Leases: the node agent grants its workers to owners, against the node's resources.

Owners ask for a lease of a resource shape on a ``Leases`` stream; the agent grants an idle
worker of its pool when the shape fits what is free, queues the request while it does not, and
sends the owner elsewhere (through the head) when the node could never hold it. A worker blocked
in ``get`` gives its CPU back while it waits. A detached actor's lease outlives the head that
held it for a while (``ORPHAN_GRACE``), so that a restarted head can take the actor back.

A request that names a runtime_env waits, holding nothing, while the node sets the environment
up (``runtime_envs``), and is granted only a worker of that environment; one whose environment
cannot be set up is refused saying why (``runtime_env_failed``).

This is the hot path of a node: when an idle worker fits, the grant is decided and sent in the
call that received the request, with no await in between. The agent composes it with its pool
(``worker_pool``); a drain under way redirects requests and counts the leases that end
(``LeaseDrain``); ``queue_balance`` moves requests that wait too long to a node with room.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from typing import Protocol

import grpc

from ember.runtime.node.gpu_devices import Assignment, GpuDevices, whole_devices_error
from ember.runtime.node.lease_records import LeaseState, OwnerSession, PendingRequest
from ember.runtime.node.runtime_envs import Environment, RuntimeEnvs
from ember.runtime.node.worker_pool import IDLE, LEASED, WorkerHandle, WorkerPool, WorkerSetup
from ember.runtime.wire import bundle_resources, event_loop, label_selector, resources, rpc
from ember.runtime.wire.protocol import ember_pb2 as pb
from ember.runtime.wire.resources import Shape

log = logging.getLogger("ember.runtime.node.node_agent")

# How long a detached actor's worker outlives its head's lease stream, for a restarted head.
ORPHAN_GRACE = float(os.environ.get("EMBER_HEAD_RESTART_GRACE_S", "60"))
RECLAIM_INTERVAL = 0.05  # how often owners are asked to give back idle leases
PLACEMENT_RETRY = 0.5  # seconds between asks for a node while only draining nodes fit a shape


class LeasingNode(Protocol):
    """What granting leases needs of its node agent: who it is, and the way to its head."""

    node_id: bytes
    head_address: str
    channels: rpc.Channels
    stopping: bool
    labels: dict[str, str]

    def describe(self) -> str: ...


class LeaseDrain(Protocol):
    """What granting needs of a drain under way (``node_drain.NodeDrainer``)."""

    def redirect(self, request: PendingRequest) -> None: ...

    def lease_ended(self, lease: LeaseState, returned: bool) -> None: ...


class Leases:
    """The node's leases, the requests waiting for one, and what is free to grant."""

    def __init__(
        self,
        node: LeasingNode,
        total: Shape,
        pool: WorkerPool,
        report_soon: Callable[[], None],
        gpus: GpuDevices | None = None,
    ) -> None:
        self.node = node
        self.total = dict(total)
        self.available = dict(total)
        # The GPUs one by one (``total`` counts them): by default numbered 0 .. N-1.
        if gpus is None:
            gpus = GpuDevices([str(i) for i in range(total.get("GPU", 0) // resources.UNIT)])
        self.gpus = gpus
        self.pool = pool
        # Told when the free resources change: they travel to the head in the next report.
        self.report_soon = report_soon
        self.queue: list[PendingRequest] = []
        # Requests this node will not grant, while the head finds them a node.
        self.placing: list[PendingRequest] = []
        self.drain: LeaseDrain | None = None  # set once the head orders this node drained
        self.owners: set[OwnerSession] = set()
        self._lease_ids = itertools.count(1)
        # Leases of detached actors whose head went away, by actor id, until a head adopts them.
        self.orphans: dict[bytes, LeaseState] = {}
        # The runtime_envs set up here (the agent gives them; None: requests naming one are refused).
        self.envs: RuntimeEnvs | None = None

    # ------------------------------------------------------------------ the owners' stream

    async def serve(
        self, request_iterator: AsyncIterator[pb.LeaseClientMessage], context: grpc.aio.ServicerContext
    ) -> None:
        """One owner's ``Leases`` stream, until it ends."""
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
        if not resources.fits(pending.shape, self.total) or not self._may_take(pending):
            event_loop.detach(self.place_elsewhere(pending), "finding a node for a lease request")
            return
        unfit = whole_devices_error(bundle_resources.amount(pending.hold, "GPU"))
        if unfit:
            owner.send(pb.LeaseServerMessage(rejected=pb.LeaseRejected(
                request_id=pending.request_id,
                infeasible=True,
                reason=f"{self.node.describe()}: {pending.task_name or 'the task'}: {unfit}",
            )))
            return
        if request.runtime_env:
            if self.envs is None:
                self._reject_env(pending, f"{self.node.describe()} sets up no runtime_envs")
                return
            env = pending.env = self.envs.environment(request.runtime_env, pending.job_id)
            if env.failure:
                self._reject_env(pending, env.failure)
                return
        self.queue.append(pending)
        self.schedule()

    def _may_take(self, request: PendingRequest) -> bool:
        """The request's node affinity and label selector allow this node. A request the head
        sent here (``spilled``) stays: the head chose this node knowing them (a soft affinity
        to a node that is gone, say)."""
        constraints = request.constraints
        if constraints is None or request.spilled:
            return True
        if constraints.node_affinity and constraints.node_affinity != self.node.node_id:
            return False
        return not constraints.label_selector or label_selector.matches(
            constraints.label_selector, self.node.labels
        )

    async def place_elsewhere(self, request: PendingRequest) -> None:
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
        node = self.node
        shape = describe = bundle_resources.describe(request.shape)
        while True:
            try:
                reply = await node.channels.head(node.head_address).FindNode(
                    pb.FindNodeRequest(
                        shape=pb.ResourceSet(quantities=resources.to_float(request.shape)),
                        exclude_node_id=node.node_id,
                        constraints=request.constraints,
                    ),
                    timeout=10.0,
                )
            except grpc.aio.AioRpcError as error:
                owner.send(pb.LeaseServerMessage(rejected=pb.LeaseRejected(
                    request_id=request.request_id,
                    reason=f"the head at {node.head_address} cannot be reached ({error.code().name})",
                )))
                return
            if request not in self.placing:
                return  # cancelled, or its owner is gone
            if reply.node.address or not reply.feasible:
                break
            if self._holds_now(request):
                # What it waited for came here meanwhile (its placement group's bundle was
                # committed on this node): it queues here; the head would not send it back.
                self.placing.remove(request)
                self.queue.append(request)
                self.schedule()
                return
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
            reason=reply.reason or (
                f"it needs {shape}, but no node of the cluster has that much "
                f"(largest node: {reply.largest or describe})"
            ),
        )))

    def _holds_now(self, request: PendingRequest) -> bool:
        return (
            self.drain is None and not self.pool.broken
            and resources.fits(request.shape, self.total) and self._may_take(request)
        )

    def _cancel(self, owner: OwnerSession, request_id: int) -> None:
        self.queue = [
            r for r in self.queue if not (r.owner is owner and r.request_id == request_id)
        ]
        self.placing = [
            r for r in self.placing if not (r.owner is owner and r.request_id == request_id)
        ]

    # ------------------------------------------------------------------ granting

    def schedule(self) -> None:
        """Grant every queued request that fits, starting workers where none is idle."""
        if not self.queue or self.drain is not None:
            return
        free = dict(self.available)
        devices = dict(self.gpus.free)
        needs_worker = 0
        waiting = False
        needs_setup: dict[WorkerSetup, int] | None = None
        for request in list(self.queue):
            env = request.env
            setup = None
            if env is not None:
                setup = env.setup
                if setup is None:
                    continue  # its runtime_env is being set up; it holds nothing meanwhile
            if not resources.fits(request.shape, free):
                waiting = True
                continue
            # Enough GPU in all is not enough: it must be on devices it can have (whole ones
            # free, or one with room for its share).
            chosen = self.gpus.choose(bundle_resources.amount(request.hold, "GPU"), devices)
            if chosen is None:
                waiting = True
                continue
            resources.subtract(free, request.hold)
            self.gpus.take(chosen, devices)
            worker = self._idle_worker(request.job_id, setup)
            if worker is None:
                if setup is None:
                    needs_worker += 1
                else:
                    needs_setup = needs_setup or {}
                    needs_setup[setup] = needs_setup.get(setup, 0) + 1
                continue
            self.queue.remove(request)
            self._grant(request, worker, chosen)
        starting = self.pool.starting()
        for _ in range(needs_worker - starting):
            self.pool.spawn()
        if needs_setup:
            for setup, count in needs_setup.items():
                for _ in range(count - self.pool.starting(setup)):
                    self.pool.spawn(setup)
        if waiting:
            self._reclaim_idle_leases()

    def _idle_worker(self, job_id: bytes, setup: WorkerSetup | None = None) -> WorkerHandle | None:
        """An idle worker of the runtime_env ``setup`` (None: the node's own), of the job's if
        there is one, else one bound to no job yet."""
        unbound = None
        for worker in self.pool.workers.values():
            if worker.state != IDLE or worker.setup is not setup:
                continue
            if worker.job_id == job_id:
                return worker
            if worker.job_id is None and unbound is None:
                unbound = worker
        return unbound

    def _grant(self, request: PendingRequest, worker: WorkerHandle, gpus: Assignment) -> None:
        resources.subtract(self.available, request.hold)
        self.gpus.take(gpus)
        lease = LeaseState(
            next(self._lease_ids), request.owner, worker, request.hold, request.actor_id, gpus
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
            node_id=self.node.node_id,
            worker_pid=worker.pid,
            worker_channel=worker.channel_address,
            gpu_ids=[device for device, _ in gpus],
        )))
        self.report_soon()

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
        self.schedule()

    def _free_lease(self, lease: LeaseState) -> None:
        total = self.total
        # Only what still exists goes back: a placement group's bundle may have been released
        # while the lease held some of it.
        shape = {name: amount for name, amount in lease.shape.items() if name in total}
        if lease.blocked:
            for name in _cpus(shape):
                shape.pop(name)  # already given back while blocked
        resources.add(self.available, shape)
        self.gpus.give_back(lease.gpus)
        lease.gpus = []
        self.report_soon()

    def stop_leases(self, holds: Callable[[Shape], bool], reason: str) -> int:
        """Stop the workers of the leases whose resources ``holds`` picks (a removed placement
        group's). Their owners hear why before the workers die: the lease ends now, so that
        what an owner tells its tasks' callers is ``reason``, not a broken connection."""
        stopped = 0
        for lease in [lease for owner in self.owners for lease in owner.leases.values()]:
            worker = lease.worker
            if not holds(lease.shape) or worker.state != LEASED:
                continue
            del lease.owner.leases[lease.lease_id]
            lease.owner.send(pb.LeaseServerMessage(lost=pb.LeaseLost(
                lease_id=lease.lease_id, reason=f"worker pid {worker.pid} was stopped: {reason}",
            )))
            self._free_lease(lease)
            if self.drain is not None:
                self.drain.lease_ended(lease, returned=False)
            worker.lease = None
            self.pool.kill(worker)
            stopped += 1
        return stopped

    def requeue_unfit(self) -> None:
        """Queued requests this node can no longer hold (a bundle went) ask the head anew."""
        unfit = [r for r in self.queue if not resources.fits(r.shape, self.total)]
        for request in unfit:
            self.queue.remove(request)
            event_loop.detach(self.place_elsewhere(request), "finding a node for a lease request")

    def _owner_gone(self, owner: OwnerSession) -> None:
        self.owners.discard(owner)
        self.queue = [r for r in self.queue if r.owner is not owner]
        self.placing = [r for r in self.placing if r.owner is not owner]
        for lease in list(owner.leases.values()):
            owner.leases.pop(lease.lease_id, None)
            if owner.head and lease.actor_id and lease.worker.detached and not self.node.stopping:
                # The head went away (a restart?): its successor may take this actor back.
                lease.orphaned_at = time.monotonic()
                self.orphans[lease.actor_id] = lease
                log.info(
                    "%s: keeping detached actor %s (worker pid %d) for %gs for a restarted head "
                    "to take back", self.node.describe(), lease.actor_id.hex()[:12], lease.worker.pid,
                    ORPHAN_GRACE,
                )
                continue
            # Whatever the worker runs was for an owner that can no longer take the result.
            self._free_lease(lease)
            lease.worker.lease = None
            self.pool.kill(lease.worker)
            if self.drain is not None:
                self.drain.lease_ended(lease, returned=False)
        self.schedule()

    def _reclaim_idle_leases(self) -> None:
        now = time.monotonic()
        for owner in self.owners:
            if owner.leases and now - owner.last_reclaim > RECLAIM_INTERVAL:
                owner.last_reclaim = now
                owner.send(pb.LeaseServerMessage(reclaim_idle=pb.Empty()))

    def reject_all(self, reason: str) -> None:
        """The pool cannot start workers: every queued request is told so."""
        queued, self.queue = self.queue, []
        for request in queued:
            self._reject_broken(request, reason)

    def env_settled(self, env: Environment) -> None:
        """A runtime_env's setup ended: its requests are granted, or refused saying why."""
        if env.failure:
            failed = [r for r in self.queue if r.env is env]
            if failed:
                self.queue = [r for r in self.queue if r.env is not env]
                for request in failed:
                    self._reject_env(request, env.failure)
        self.schedule()

    def env_worker_failed(self, setup: WorkerSetup, how: str) -> None:
        """A worker of a runtime_env ended before it was ready: the environment fails."""
        env = self.envs.worker_failed(setup, how) if self.envs is not None else None
        if env is not None:
            self.env_settled(env)

    def _reject_env(self, request: PendingRequest, reason: str) -> None:
        request.owner.send(pb.LeaseServerMessage(rejected=pb.LeaseRejected(
            request_id=request.request_id, reason=reason, runtime_env_failed=True,
        )))

    def _reject_broken(self, request: PendingRequest, reason: str) -> None:
        request.owner.send(pb.LeaseServerMessage(rejected=pb.LeaseRejected(
            request_id=request.request_id,
            reason=f"{self.node.describe()}: {reason}",
            worker_start_failed=True,
        )))

    # ------------------------------------------------------------------ detached actors

    def _adopt(self, owner: OwnerSession, request: pb.AdoptRequest) -> None:
        lease = self.orphans.get(request.actor_id)
        if lease is None or lease.worker.state != LEASED:
            # A worker that died is still among the orphans until its end is handled, which
            # gives its lease's resources back (``worker_gone``).
            owner.send(pb.LeaseServerMessage(rejected=pb.LeaseRejected(
                request_id=request.request_id,
                reason=f"{self.node.describe()} keeps no worker for actor {request.actor_id.hex()[:12]}",
            )))
            return
        del self.orphans[request.actor_id]
        lease.owner = owner
        lease.orphaned_at = 0.0
        owner.leases[lease.lease_id] = lease
        worker = lease.worker
        owner.send(pb.LeaseServerMessage(grant=pb.LeaseGrant(
            request_id=request.request_id,
            lease_id=lease.lease_id,
            worker_id=worker.worker_id,
            worker_address=worker.address,
            node_id=self.node.node_id,
            worker_pid=worker.pid,
            worker_channel=worker.channel_address,
            gpu_ids=[device for device, _ in lease.gpus],
        )))
        log.info("%s: the head took back actor %s", self.node.describe(), request.actor_id.hex()[:12])

    def expire_orphans(self) -> None:
        now = time.monotonic()
        for actor_id, lease in list(self.orphans.items()):
            if now - lease.orphaned_at >= ORPHAN_GRACE:
                del self.orphans[actor_id]
                log.warning(
                    "%s: no head took back actor %s within %gs; stopping its worker pid %d",
                    self.node.describe(), actor_id.hex()[:12], ORPHAN_GRACE, lease.worker.pid,
                )
                self._free_lease(lease)
                lease.worker.lease = None
                self.pool.kill(lease.worker)

    # ------------------------------------------------------------------ workers

    def set_blocked(self, worker: WorkerHandle, blocked: bool) -> None:
        """A leased worker waits in ``get`` (or stopped waiting): its CPU goes back meanwhile."""
        lease = worker.lease
        if not isinstance(lease, LeaseState) or lease.blocked == blocked:
            return
        lease.blocked = blocked
        # Its CPUs, or a placement group's CPUs when it runs in one.
        cpus = {name: lease.shape[name] for name in _cpus(lease.shape) if name in self.total}
        if not cpus:
            return
        if blocked:
            resources.add(self.available, cpus)
            self.schedule()
        else:
            resources.subtract(self.available, cpus)
        self.report_soon()

    def worker_gone(self, worker: WorkerHandle, reason: str) -> str:
        """A worker died: its lease ends, and its owner hears ``reason``. Returns what to tell
        the head ("" when the worker was not leased to an owner)."""
        lease = worker.lease
        if not isinstance(lease, LeaseState):
            return ""
        if self.orphans.get(lease.actor_id) is lease:
            del self.orphans[lease.actor_id]
            self._free_lease(lease)
            return ""
        if lease.lease_id not in lease.owner.leases:
            return ""
        del lease.owner.leases[lease.lease_id]
        lease.owner.send(pb.LeaseServerMessage(lost=pb.LeaseLost(
            lease_id=lease.lease_id, reason=reason
        )))
        failure = f"{reason} while leased to {lease.describe_holder()}"
        self._free_lease(lease)
        if self.drain is not None:
            self.drain.lease_ended(lease, returned=False)
        return failure

    # ------------------------------------------------------------------ what the head hears

    def held(self) -> int:
        """Leases held now."""
        return sum(len(owner.leases) for owner in self.owners)

    def busy(self) -> bool:
        """A lease held, a request waiting, or a detached actor kept for a head."""
        return bool(
            any(owner.leases for owner in self.owners) or self.orphans or self.queue or self.placing
        )

    def demand(self) -> list[pb.ResourceDemand]:
        """The shapes waiting here for a worker, or for a node (with the labels they need of
        one): the cluster's demand. (Not those waiting for their runtime_env to be set up: a
        long install is no call for nodes.)"""
        counts: collections.Counter[tuple[tuple[tuple[str, int], ...], tuple[tuple[str, str], ...]]] = (
            collections.Counter(
                (
                    tuple(sorted(request.shape.items())),
                    tuple(sorted(request.constraints.label_selector.items()))
                    if request.constraints is not None else (),
                )
                for request in self.queue + self.placing
                if request.env is None or request.env.ready
            )
        )
        return [
            pb.ResourceDemand(
                shape=pb.ResourceSet(quantities=resources.to_float(dict(shape))), count=count,
                label_selector=dict(selector),
            )
            for (shape, selector), count in counts.items()
        ]


def _cpus(shape: Shape) -> list[str]:
    """The CPU names in a lease's shape: ``CPU``, and a placement group's CPUs."""
    return [name for name in shape if name == "CPU" or bundle_resources.original(name) == "CPU"]
