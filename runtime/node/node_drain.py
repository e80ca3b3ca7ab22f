"""Draining a node, the node agent's half: leave nothing behind that exists only here.

The head orders a drain (``head.py``/``drain.py``) before the node is removed. From then on:

- No lease is granted here. Queued lease requests, and new ones, are sent to other nodes
  through the head (``Leases.place_elsewhere``); when no other node could hold a shape they
  wait, counted as demand, so that the autoscaler adds a node instead of the owner failing.
- Owners holding leases here are told (``LeaseDrain``): they send no more tasks on them and give
  them back once the tasks running there finish. With a deadline, the tasks still running when it
  passes are taken back by their owners and run elsewhere (``deadline_passed``), and the workers
  of leases still held a little later are stopped: their owners see the worker die and retry.
- Objects whose only copy is here are pushed to other nodes, and their owners told where they
  went (``CoreWorker.ObjectsMoved``), so that a ``get`` after the node is gone finds them. A
  first pass runs at once, while tasks finish; the last runs after the last lease ended, when
  nothing can write here any more. Objects owned by this node's own workers are left: they end
  with their owners, whose borrowers would get ``OwnerDiedError`` anyway.

Actors are the head's: it leases their workers and restarts them elsewhere itself.

The agent's part is done when no lease is held and every object has a copy elsewhere; it says
so in its reports (``DrainProgress``), and the head declares the node DRAINED.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Protocol

import grpc

from ember.runtime.node.lease_records import LeaseState, PendingRequest
from ember.runtime.node.leases import Leases
from ember.runtime.node.object_store import Lost, ObjectStore
from ember.runtime.node.object_transfer import ObjectTransfer
from ember.runtime.node.store_entries import CREATING, Entry
from ember.runtime.node.worker_pool import WorkerPool
from ember.runtime.wire import event_loop, rpc
from ember.runtime.wire.protocol import ember_pb2 as pb

log = logging.getLogger("ember.runtime.node.node_agent")

# After the deadline, owners get this long to take their tasks back before the workers stop.
STOP_GRACE = 2.0
RETRY_INTERVAL = 1.0  # seconds between attempts to copy objects that found no node with room
PARALLEL_PUSHES = 4
OWNER_ATTEMPTS = 3  # tries to tell an owner where its objects went before deciding it is gone


@dataclass
class Target:
    """A node that may take objects, with the room its store has (as far as we know)."""

    address: str
    free: int


class DrainedNode(Protocol):
    """What a drain needs of its node agent: the node's parts, and the way to its head."""

    node_id: bytes
    address: str
    head_address: str
    channels: rpc.Channels
    leases: Leases
    pool: WorkerPool
    store: ObjectStore
    transfer: ObjectTransfer

    def describe(self) -> str: ...

    def report_soon(self) -> None: ...


class NodeDrainer:
    def __init__(self, agent: DrainedNode, order: pb.DrainOrder) -> None:
        self.agent = agent
        self.deadline_seconds = order.deadline_seconds
        self.reason = order.reason
        self.started = time.monotonic()
        self.progress = pb.DrainProgress(deadline_seconds=order.deadline_seconds)
        self.deadline_passed = False
        # Objects copied elsewhere: their copies (the owner was told, or is being told).
        self.moved: dict[bytes, pb.ObjectLocation] = {}
        # Moves the owner did not acknowledge yet, by owner: told again on the next pass.
        self._untold: dict[str, dict[bytes, pb.ObjectLocation]] = {}
        self._changed = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def describe(self) -> str:
        return f"the drain of {self.agent.describe()}"

    # ------------------------------------------------------------------ events from the agent

    def start(self) -> None:
        agent = self.agent
        deadline = f"deadline {self.deadline_seconds:g}s" if self.deadline_seconds else "no deadline"
        log.info("%s: draining (%s): %s", agent.describe(), deadline, self.reason)
        leases = agent.leases
        queued, leases.queue = leases.queue, []
        for request in queued:
            self.redirect(request)
        self._tell_lease_holders(deadline_passed=False)
        self.task = asyncio.ensure_future(self._run())

    def redirect(self, request: PendingRequest) -> None:
        """A lease request this node will not grant: it goes to another node."""
        self.progress.requests_redirected += 1
        event_loop.detach(self.agent.leases.place_elsewhere(request), "finding a node for a draining node's lease request")

    def lease_ended(self, lease: LeaseState, returned: bool) -> None:
        """A lease ended: given back by its owner (``returned``), or its worker is gone."""
        if not lease.owner.head:  # the head's leases host actors; it counts those itself
            if returned and not self.deadline_passed:
                self.progress.leases_finished += 1
            else:
                self.progress.leases_stopped += 1
        self._changed.set()

    def snapshot(self) -> pb.DrainProgress:
        progress = pb.DrainProgress()
        progress.CopyFrom(self.progress)
        progress.seconds = time.monotonic() - self.started
        progress.leases_running = self._leases_running()
        return progress

    # ------------------------------------------------------------------ the drain

    async def _run(self) -> None:
        try:
            # Most bytes can move while tasks finish; what those tasks write moves after.
            await self._copy_objects()
            await self._wait_for_leases()
            while not await self._copy_objects():
                await asyncio.sleep(RETRY_INTERVAL)
        except Exception:  # noqa: BLE001 - a bug must not leave the node draining forever unseen
            log.exception("%s failed", self.describe())
            self.progress.waiting_for = "the drain failed on the node agent (see its log)"
            self.agent.report_soon()
            return
        self.progress.done = True
        self.progress.waiting_for = ""
        progress = self.snapshot()
        log.info(
            "%s: drained in %.1fs: %d leases finished, %d stopped, %d objects copied (%d bytes)",
            self.agent.describe(), progress.seconds, progress.leases_finished,
            progress.leases_stopped, progress.objects_copied, progress.bytes_copied,
        )
        self.agent.report_soon()

    def _leases_running(self) -> int:
        return self.agent.leases.held()

    def _tell_lease_holders(self, deadline_passed: bool) -> None:
        for owner in list(self.agent.leases.owners):
            if owner.head:
                continue  # actors: the head moves them
            for lease_id in list(owner.leases):
                owner.send(pb.LeaseServerMessage(drain=pb.LeaseDrain(
                    lease_id=lease_id,
                    deadline_passed=deadline_passed,
                    reason=f"{self.agent.describe()} is being drained ({self.reason})",
                )))

    async def _wait_for_leases(self) -> None:
        """Until no lease is held here; at the deadline, running tasks go elsewhere."""
        deadline = self.started + self.deadline_seconds if self.deadline_seconds else None
        while True:
            running = self._leases_running()
            if not running:
                return
            self.progress.waiting_for = f"{running} worker lease(s) running tasks"
            self.agent.report_soon()
            if deadline is not None and not self.deadline_passed and time.monotonic() >= deadline:
                await self._stop_running()
                continue
            self._changed.clear()
            wait = 1.0
            if deadline is not None and not self.deadline_passed:
                wait = max(0.0, min(1.0, deadline - time.monotonic()))
            try:
                await asyncio.wait_for(self._changed.wait(), wait)
            except TimeoutError:
                pass

    async def _stop_running(self) -> None:
        """The deadline passed: owners take back their running tasks; then workers stop."""
        self.deadline_passed = True
        log.warning(
            "%s: the deadline (%gs) passed with %d lease(s) running; their owners run the tasks "
            "elsewhere", self.agent.describe(), self.deadline_seconds, self._leases_running(),
        )
        self._tell_lease_holders(deadline_passed=True)
        grace_end = time.monotonic() + STOP_GRACE
        while self._leases_running() and time.monotonic() < grace_end:
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), grace_end - time.monotonic())
            except TimeoutError:
                pass
        for owner in list(self.agent.leases.owners):
            for lease in list(owner.leases.values()):
                log.warning(
                    "%s: stopping %s, still leased to %s after the drain's deadline",
                    self.agent.describe(), lease.worker.describe(), owner.describe(),
                )
                self.agent.pool.kill(lease.worker)  # its owner sees it die, and retries

    # ------------------------------------------------------------------ objects

    async def _copy_objects(self) -> bool:
        """Copy every object whose only copy is here; True once none is left to copy."""
        store = self.agent.store
        local = {w.address for w in self.agent.pool.workers.values() if w.address}
        todo: list[Entry] = []
        skipped = 0
        for entry in list(store.entries.values()):
            if entry.state == CREATING or entry.object_id in self.moved:
                continue
            if entry.creator.startswith("pull:"):
                continue  # a copy of an object whose first copy is on another node
            if entry.owner in local:
                skipped += 1  # its owner is a process of this node: they end together
                continue
            todo.append(entry)
        self.progress.objects_skipped = skipped
        self.progress.objects_remaining = len(todo)
        if todo:
            targets = await self._targets()
            if not targets:
                self.progress.waiting_for = (
                    f"no other live node to copy {len(todo)} object(s) to; "
                    f"waiting for one to join"
                )
                self.agent.report_soon()
                return False
            limit = asyncio.Semaphore(PARALLEL_PUSHES)
            await asyncio.gather(*(self._move(entry, targets, limit) for entry in todo))
        await self._tell_owners()
        left = [e for e in todo if e.object_id not in self.moved and store.entries.get(e.object_id) is e]
        self.progress.objects_remaining = len(left)
        if left:
            size = sum(e.size for e in left)
            self.progress.waiting_for = (
                f"{len(left)} object(s) ({size / 2**20:.1f} MiB) found no node with room; retrying"
            )
        self.agent.report_soon()
        return not left and not self._untold

    async def _targets(self) -> list[Target]:
        """The live nodes not being drained, with the free room of their stores."""
        agent = self.agent
        try:
            view = await agent.channels.head(agent.head_address).GetClusterView(
                pb.Empty(), timeout=10
            )
        except grpc.aio.AioRpcError as error:
            log.warning("%s: cannot ask the head for nodes: %s", self.describe(), error.code().name)
            return []
        nodes = [
            n.info.address for n in view.nodes
            if n.alive and n.drain_state == pb.NOT_DRAINING and n.info.node_id != agent.node_id
        ]

        async def room(address: str) -> Target | None:
            try:
                info = await agent.channels.node_agent(address).GetStoreInfo(pb.Empty(), timeout=5)
            except grpc.aio.AioRpcError:
                return None
            return Target(address, info.capacity - info.used)

        found = await asyncio.gather(*(room(address) for address in nodes))
        return sorted((t for t in found if t is not None), key=lambda t: -t.free)

    async def _move(self, entry: Entry, targets: list[Target], limit: asyncio.Semaphore) -> None:
        store = self.agent.store
        async with limit:
            # Nodes that pulled a copy already take it at no cost; then the roomiest.
            ordered = sorted(targets, key=lambda t: (t.address not in entry.copies, -t.free))
            for target in ordered:
                if store.entries.get(entry.object_id) is not entry:
                    return  # freed meanwhile: nothing to keep
                copies = sorted((entry.copies | {self.agent.address}) - {target.address})
                try:
                    reply = await self.agent.transfer.push(entry, target.address, copies)
                except Lost:
                    return  # freed (or found broken) as the push began
                if reply.error:
                    log.info(
                        "%s: object %s not copied to %s: %s", self.describe(),
                        entry.object_id.hex()[:12], target.address, reply.error,
                    )
                    continue
                if store.entries.get(entry.object_id) is not entry:
                    # Freed while it was copied: the new copy is garbage too.
                    await self.agent.transfer.forward_frees({target.address: [entry.object_id]})
                    return
                # Frees that still reach this node (the owner knows the old place) reach the
                # new copy too; and the new copy frees this one.
                entry.copies.add(target.address)
                target.free -= entry.size
                self.moved[entry.object_id] = reply.location
                self._untold.setdefault(entry.owner, {})[entry.object_id] = reply.location
                self.progress.objects_copied += 1
                self.progress.bytes_copied += entry.size
                return

    async def _tell_owners(self) -> None:
        """Tell owners where their objects went. An owner that does not hold one yet (its task's
        result is still on its way) is told again on the next pass; once the last lease ended,
        an owner that does not hold one has freed it, and the free reaches the new copy."""
        untold, self._untold = self._untold, {}
        final = not self._leases_running()
        replies = await asyncio.gather(*(self._tell(owner, moved) for owner, moved in untold.items()))
        for (owner, moved), unknown in zip(untold.items(), replies, strict=True):
            if unknown and not final:
                self._untold[owner] = {oid: moved[oid] for oid in unknown if oid in moved}

    async def _tell(self, owner: str, moved: dict[bytes, pb.ObjectLocation]) -> list[bytes]:
        request = pb.ObjectsMovedRequest(
            objects=[pb.MovedObject(id=oid, location=location) for oid, location in moved.items()]
        )
        stub = self.agent.channels.core_worker(owner)
        for attempt in range(OWNER_ATTEMPTS):
            try:
                reply = await stub.ObjectsMoved(request, timeout=10)
                return list(reply.ids)
            except grpc.aio.AioRpcError as error:
                if attempt + 1 < OWNER_ATTEMPTS:
                    await asyncio.sleep(0.5)
                    continue
                # Its owner is gone: the objects are garbage (they are freed with the job).
                log.info(
                    "%s: the owner of %d moved object(s) at %s cannot be reached (%s)",
                    self.describe(), len(moved), owner, error.code().name,
                )
        return []
