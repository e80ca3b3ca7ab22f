"""The head's actor directory: it creates, restarts and kills actors, and says where they are.

An actor lives on a worker leased by the head, so that it can outlive its creator when it is
detached and be restarted when its worker dies. Callers never go through the head for a call:
they ask it where the actor is (waiting, if it is being created or restarted), then send their
calls straight to the actor's worker over a task channel.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import Protocol

from ember.runtime.head.actor_record import ActorRecord
from ember.runtime.head.events import EventLog
from ember.runtime.head.head_state import HeadState
from ember.runtime.head.membership import NodeState
from ember.runtime.objects import serialization
from ember.runtime.wire import event_loop, resources, rpc, task_channel
from ember.runtime.wire.lease_client import LeaseClient
from ember.runtime.wire.protocol import ember_pb2 as pb
from ember.runtime.wire.resources import Shape
from ember.runtime.wire.task_channel import ChannelClient

log = logging.getLogger("ember.runtime.head.actor_manager")

LOST_REASON_WAIT = 1.0
ADOPT_GRACE = 15.0  # seconds beyond the node timeout a restarted head waits for an actor's node
PLACEMENT_RETRY = 0.5  # seconds between attempts to find a node with room


class Choice(Protocol):
    """Where to place an actor (``lease_placement.Choice``): a node, or wait, or why not."""

    node: NodeState | None
    wait: bool
    reason: str


class Placement(Protocol):
    """What the directory needs of the head: the nodes, and where an actor may go."""

    node_timeout: float  # how long a node may be silent before it is declared dead

    def node_by_id(self, node_id: bytes) -> NodeState | None: ...

    def place_actor(self, shape: Shape, constraints: pb.SchedulingConstraints | None) -> Choice: ...

    async def placement_changed(self, seconds: float) -> None: ...


class ActorManager:
    def __init__(self, nodes: Placement, events: EventLog, state: HeadState | None) -> None:
        self.nodes = nodes
        self.events = events
        self.state = state  # where detached actors are written down, if anywhere
        self.address = ""  # the head's own address, set once it listens
        self.actors: dict[bytes, ActorRecord] = {}
        self.names: dict[tuple[str, str], bytes] = {}
        self.channels = rpc.Channels()
        self._agents: dict[str, LeaseClient] = {}
        self._request_ids = itertools.count(1)
        self._requests: dict[int, asyncio.Future[pb.LeaseServerMessage]] = {}

    # ------------------------------------------------------------------ API

    async def create(self, spec: pb.ActorSpec) -> pb.CreateActorReply:
        if spec.name:
            existing = self.names.get((spec.namespace, spec.name))
            if existing is not None and self.actors[existing].info.state != pb.DEAD:
                record = self.actors[existing]
                if spec.get_if_exists:
                    return pb.CreateActorReply(
                        actor_id=existing, handle_meta=record.spec.handle_meta
                    )
                return pb.CreateActorReply(
                    error=f"an actor named '{spec.name}' already exists in namespace "
                    f"'{spec.namespace}' ({record.describe()}); use get_if_exists=True "
                    f"or ember.get_actor()"
                )
        if spec.actor_id in self.actors:
            return pb.CreateActorReply(error=f"actor id {spec.actor_id.hex()} is taken")
        record = ActorRecord(spec, self._persist)
        self.actors[spec.actor_id] = record
        if spec.name:
            self.names[(spec.namespace, spec.name)] = spec.actor_id
        self._persist(record)
        record.runner = asyncio.ensure_future(self._run(record))
        return pb.CreateActorReply(actor_id=spec.actor_id, handle_meta=spec.handle_meta)

    # ------------------------------------------------------------------ surviving a restart

    def _persist(self, record: ActorRecord) -> None:
        state = self.state
        if state is None or not record.spec.detached:
            return
        if record.info.state == pb.DEAD:
            state.drop_actor(record.spec.actor_id)
        else:
            state.save_actor(record.spec, record.info)

    def restore(self) -> int:
        """Take back the detached actors a previous head wrote down.

        Those that were alive still run on their nodes (the agents keep a detached actor's
        worker a while when the head's lease stream breaks): they are adopted, state and all.
        The others are created again, as a restart of theirs would.
        """
        assert self.state is not None
        persisted = self.state.load_actors()
        for entry in persisted:
            record = ActorRecord(entry.spec, self._persist)
            record.info.CopyFrom(entry.info)
            self.actors[entry.spec.actor_id] = record
            if entry.spec.name:
                self.names[(entry.spec.namespace, entry.spec.name)] = entry.spec.actor_id
            adopt = entry.info.state == pb.ALIVE
            record.runner = asyncio.ensure_future(self._run(record, adopt=adopt))
        return len(persisted)

    async def _adopt(self, record: ActorRecord) -> str:
        """Lease the running worker back from its node; returns why not, or ''."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.nodes.node_timeout + ADOPT_GRACE
        node = self.nodes.node_by_id(record.info.node_id)
        while node is None and loop.time() < deadline:
            await asyncio.sleep(0.1)
            node = self.nodes.node_by_id(record.info.node_id)
        if node is None:
            return "its node did not come back after the head restarted"
        request_id = next(self._request_ids)
        future: asyncio.Future[pb.LeaseServerMessage] = loop.create_future()
        self._requests[request_id] = future
        client = self._agent(node.info.address)
        message = pb.LeaseClientMessage(
            adopt=pb.AdoptRequest(request_id=request_id, actor_id=record.spec.actor_id)
        )
        client.requests[request_id] = message
        client.send(message)
        try:
            reply = await asyncio.wait_for(future, self.nodes.node_timeout + ADOPT_GRACE)
        except TimeoutError:
            return f"its {node.describe()} did not answer the head's request to take it back"
        finally:
            self._requests.pop(request_id, None)
            client.requests.pop(request_id, None)
        if reply.WhichOneof("kind") != "grant":
            return f"its worker is gone ({reply.rejected.reason})"
        lease = reply.grant
        record.lease = (client, lease.lease_id)
        client.leases[lease.lease_id] = record

        incarnation = record.lease

        def on_lost(_: ChannelClient, why: str) -> None:
            event_loop.detach(self._channel_lost(record, why, incarnation), "handling an actor's lost channel")

        hello = pb.ChannelHello(job=record.spec.job, owner_address=self.address)
        try:
            record.channel = await task_channel.connect(
                lease.worker_channel, hello, lambda _c, _m: None, on_lost
            )
        except (OSError, ConnectionError) as error:
            return f"its worker (pid {lease.worker_pid}) cannot be reached: {error}"
        record.set_state(pb.ALIVE)  # same worker, same address: callers need not look again
        log.info("took back %s in worker pid %d", record.describe(), lease.worker_pid)
        return ""

    def find(self, request: pb.GetActorRequest) -> ActorRecord | None:
        if request.actor_id:
            return self.actors.get(request.actor_id)
        actor_id = self.names.get((request.namespace, request.name))
        return self.actors.get(actor_id) if actor_id else None

    async def find_or_wait(self, request: pb.GetActorRequest) -> ActorRecord | None:
        """By id, an actor may be asked for before its creator's registration arrives (its
        constructor waited for arguments): wait for it up to the request's timeout."""
        record = self.find(request)
        if record is not None or not request.actor_id or request.timeout <= 0:
            return record
        deadline = asyncio.get_running_loop().time() + min(request.timeout, 60.0)
        while record is None and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
            record = self.find(request)
        return record

    async def get(self, record: ActorRecord, after_version: int, timeout: float) -> pb.ActorInfo:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while after_version and not (
            record.info.version > after_version and record.info.state in (pb.ALIVE, pb.DEAD)
        ):
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                await asyncio.wait_for(record.changed.wait(), remaining)
            except TimeoutError:
                break
        return record.info

    def kill(self, request: pb.KillActorRequest) -> None:
        record = self.actors.get(request.actor_id)
        if record is None or record.info.state == pb.DEAD:
            return
        reason = request.reason or "it was killed with ember.kill()"
        if request.graceful:
            # Its owner let it go, every call made to it finished: its owner's last call makes
            # it exit, and nothing restarts it. One not placed yet never will be.
            record.stopping = reason
            if record.lease is None and record.runner is not None:
                record.runner.cancel()
                self._dead(record, reason)
            return
        if request.no_restart:
            record.stopping = reason
        log.info("killing %s: %s", record.describe(), reason)
        if record.lease is None:
            if request.no_restart and record.runner is not None:
                # Not placed yet: it will never be.
                record.runner.cancel()
                self._dead(record, reason)
            return
        self._discard_worker(record, reason)

    def job_finished(self, job_id: bytes, driver_pid: int) -> None:
        for record in list(self.actors.values()):
            if record.spec.job.job_id == job_id and not record.spec.detached:
                self.kill(pb.KillActorRequest(
                    actor_id=record.spec.actor_id,
                    no_restart=True,
                    reason=f"its owner, the driver of job {job_id.hex()} (pid {driver_pid}), exited",
                ))

    def owners_died(self, addresses: list[str]) -> None:
        gone = set(addresses)
        for record in list(self.actors.values()):
            if record.spec.owner_address in gone and not record.spec.detached:
                self.kill(pb.KillActorRequest(
                    actor_id=record.spec.actor_id,
                    no_restart=True,
                    reason=f"its owner, the worker at {record.spec.owner_address}, exited",
                ))

    def node_died(self, node_id: bytes, address: str, cause: str) -> None:
        """The actors there are lost; requests waiting on its agent are placed again."""
        client = self._agents.pop(address, None)
        if client is not None:
            for request_id in list(client.requests):
                future = self._requests.get(request_id)
                if future is not None and not future.done():
                    future.set_result(pb.LeaseServerMessage(
                        rejected=pb.LeaseRejected(request_id=request_id, reason=cause)
                    ))
            client.close()
        for record in list(self.actors.values()):
            on_node = record.info.node_id == node_id and record.info.state == pb.ALIVE
            leased_there = record.lease is not None and record.lease[0] is client
            if on_node or leased_there:
                record.lease = None  # the agent is gone: nothing to give back
                self._worker_lost(record, cause)

    def move_off(self, node_id: bytes, address: str, cause: str) -> list[ActorRecord]:
        """A node is drained: restart its actors elsewhere (those being created there too).
        Returns them, for the drain to watch."""
        moved = []
        for record in list(self.actors.values()):
            if record.info.state == pb.DEAD:
                continue
            on_node = record.info.state == pb.ALIVE and record.info.node_id == node_id
            leased_there = record.lease is not None and record.lease[0].address == address
            if not (on_node or leased_there):
                continue
            moved.append(record)
            record.drained = cause
            log.info("moving %s: %s", record.describe(), cause)
            if record.lease is not None:
                self._discard_worker(record, cause)
            else:
                self._worker_lost(record, cause)
        return moved

    def placement_group_removed(self, group_id: bytes, reason: str) -> None:
        """The group's actors die with it (``max_restarts`` notwithstanding), as in Ray."""
        for record in list(self.actors.values()):
            if record.spec.placement_group_id == group_id and record.info.state != pb.DEAD:
                self.kill(pb.KillActorRequest(
                    actor_id=record.spec.actor_id, no_restart=True,
                    reason=f"its {reason}",
                ))

    def demand(self) -> list[pb.ResourceDemand]:
        """Shapes of the actors waiting for a node: pending creation or restart."""
        counts: dict[tuple[tuple[tuple[str, float], ...], tuple[tuple[str, str], ...]], int] = {}
        for record in self.actors.values():
            if record.info.state in (pb.PENDING, pb.RESTARTING) and record.lease is None:
                key = (
                    tuple(sorted(record.spec.shape.quantities.items())),
                    tuple(sorted(record.spec.constraints.label_selector.items())),
                )
                counts[key] = counts.get(key, 0) + 1
        return [
            pb.ResourceDemand(
                shape=pb.ResourceSet(quantities=dict(shape)), count=count, label_selector=dict(selector)
            )
            for (shape, selector), count in counts.items()
        ]

    def list(self) -> pb.ActorList:
        return pb.ActorList(actors=[r.info for r in self.actors.values()])

    # ------------------------------------------------------------------ life of an actor

    async def _run(self, record: ActorRecord, adopt: bool = False) -> None:
        """Create the actor, and create it again each time its worker dies, while allowed."""
        spec = record.spec
        while True:
            if adopt:
                adopt = False
                missing = await self._adopt(record)
                if missing:
                    self._worker_lost(record, missing)
                error = ""
            else:
                try:
                    error = await self._incarnate(record)
                except Exception as failure:  # noqa: BLE001 - an actor that cannot start is dead
                    log.exception("could not start %s", record.describe())
                    error = f"it could not be started: {failure}"
            if error:
                self._dead(record, error)
                return
            await record.lost.wait()
            reason = record.lost_reason
            record.lost = asyncio.Event()
            record.lease = None
            if record.channel is not None:
                record.channel.close()
                record.channel = None
            if record.stopping:
                self._dead(record, record.stopping)
                return
            restarts = record.info.num_restarts
            drained, record.drained = record.drained, ""
            if drained and spec.max_restarts != 0:
                # Moved off a draining node: the cluster's choice, not the actor's failure, so
                # it does not count against max_restarts (as Ray treats preempted nodes).
                log.info("restarting %s elsewhere: %s", record.describe(), reason)
                record.set_state(
                    pb.RESTARTING,
                    num_restarts=restarts + 1,
                    num_restarts_due_to_drain=record.info.num_restarts_due_to_drain + 1,
                    death_cause=reason,
                )
                continue
            counted = restarts - record.info.num_restarts_due_to_drain
            if spec.max_restarts != -1 and counted >= spec.max_restarts:
                limit = f"max_restarts={spec.max_restarts}"
                self._dead(record, f"{reason} ({counted} restarts, {limit})")
                return
            log.info("restarting %s after %s", record.describe(), reason)
            self.events.add(f"{record.describe()} restarting: {reason}")
            record.set_state(pb.RESTARTING, num_restarts=restarts + 1, death_cause=reason)

    async def _incarnate(self, record: ActorRecord) -> str:
        """Lease a worker and run the constructor there; returns why not, or ''."""
        grant = await self._lease(record)
        if isinstance(grant, str):
            return grant
        client, lease = grant
        record.lease = (client, lease.lease_id)
        client.leases[lease.lease_id] = record
        if record.stopping:
            self._discard_worker(record, record.stopping)
            return record.stopping
        reply: asyncio.Future[pb.ExecuteReply] = asyncio.get_running_loop().create_future()

        def on_reply(_: ChannelClient, message: pb.ExecuteReply) -> None:
            if not reply.done():
                reply.set_result(message)

        incarnation = record.lease

        def on_lost(_: ChannelClient, why: str) -> None:
            if not reply.done():
                reply.set_exception(ConnectionError(why))
            event_loop.detach(self._channel_lost(record, why, incarnation), "handling an actor's lost channel")

        hello = pb.ChannelHello(job=record.spec.job, owner_address=self.address)
        try:
            record.channel = await task_channel.connect(
                lease.worker_channel, hello, on_reply, on_lost
            )
            creation = pb.TaskSpec()
            creation.CopyFrom(record.spec.creation)
            creation.attempt = record.info.num_restarts
            creation.gpu_ids[:] = lease.gpu_ids  # its devices, for its whole life
            record.channel.send(pb.ExecuteRequest(tasks=[creation]))
            result = (await reply).results[0]
        except (OSError, ConnectionError) as error:
            # The worker died under the constructor: treat it as any other death.
            await asyncio.sleep(0)
            if not record.lost.is_set():
                self._worker_lost(record, f"its worker (pid {lease.worker_pid}) died: {error}")
            return ""
        except asyncio.CancelledError:
            raise
        if result.application_error or (result.returns and result.returns[0].kind == pb.ERROR):
            self._discard_worker(record, "its constructor raised")
            try:
                text = str(serialization.loads(result.returns[0].data))
            except Exception:  # the error itself may not unpickle on the head
                text = "(the exception could not be read on the head)"
            record.stopping = f"its constructor raised:\n{text}"
            return record.stopping
        record.set_state(
            pb.ALIVE,
            address=lease.worker_address,
            channel=lease.worker_channel,
            worker_id=lease.worker_id,
            node_id=lease.node_id,
            pid=lease.worker_pid,
        )
        log.info("%s is alive in worker pid %d", record.describe(), lease.worker_pid)
        return ""

    async def _lease(self, record: ActorRecord) -> tuple[LeaseClient, pb.LeaseGrant] | str:
        spec = record.spec
        shape = resources.to_fixed(spec.shape.quantities)
        constraints = spec.constraints if spec.HasField("constraints") else None
        while True:
            choice = self.nodes.place_actor(shape, constraints)
            node = choice.node
            if node is None and choice.wait:
                # Only a draining node, or one an autoscaler may add, could hold it, or its
                # placement group is being placed: wait.
                await self.nodes.placement_changed(PLACEMENT_RETRY)
                continue
            if node is None:
                return choice.reason
            address = node.info.address
            while True:
                message = await self._request(record, address)
                kind = message.WhichOneof("kind")
                if kind == "grant":
                    return self._agent(address), message.grant
                if kind == "spillback":
                    address = message.spillback.node_address
                    continue
                if message.rejected.runtime_env_failed:
                    # Not retried: the same environment would fail the same way.
                    record.info.runtime_env_failed = True
                    return message.rejected.reason
                if message.rejected.infeasible or message.rejected.worker_start_failed:
                    return message.rejected.reason
                break  # the node could not take it (it left?): choose again
            await asyncio.sleep(PLACEMENT_RETRY)

    async def _request(self, record: ActorRecord, address: str) -> pb.LeaseServerMessage:
        spec = record.spec
        request_id = next(self._request_ids)
        future: asyncio.Future[pb.LeaseServerMessage] = asyncio.get_running_loop().create_future()
        self._requests[request_id] = future
        client = self._agent(address)
        message = pb.LeaseClientMessage(
            request=pb.LeaseRequest(
                request_id=request_id,
                shape=spec.shape,
                task_name=spec.class_name,
                hold=spec.hold,
                hold_set=True,
                job_id=spec.job.job_id,
                actor_id=spec.actor_id,
                detached=spec.detached,
                # The head chose the node knowing the constraints: the agent keeps it.
                spilled=True,
                constraints=spec.constraints if spec.HasField("constraints") else None,
                runtime_env=spec.runtime_env,
            )
        )
        client.requests[request_id] = message
        client.send(message)
        try:
            return await future
        finally:
            self._requests.pop(request_id, None)
            client.requests.pop(request_id, None)

    def _agent(self, address: str) -> LeaseClient:
        client = self._agents.get(address)
        if client is None:
            client = self._agents[address] = LeaseClient(
                address,
                self.channels,
                pb.LeaseOwner(owner_address=self.address, head=True),
                self._on_agent_message,
                lambda c: list(c.requests.values()),
                self._agent_unreachable,
            )
        return client

    def _on_agent_message(self, client: LeaseClient, message: pb.LeaseServerMessage) -> None:
        kind = message.WhichOneof("kind")
        if kind in ("grant", "spillback", "rejected"):
            request_id = getattr(message, kind).request_id
            future = self._requests.get(request_id)
            if future is not None and not future.done():
                future.set_result(message)
            elif kind == "grant":
                client.send(pb.LeaseClientMessage(
                    release=pb.LeaseReturn(lease_id=message.grant.lease_id, discard_worker=True)
                ))
        elif kind == "lost":
            record = client.leases.pop(message.lost.lease_id, None)
            if isinstance(record, ActorRecord):
                self._worker_lost(record, f"its worker died: {message.lost.reason}")

    def _agent_unreachable(self, client: LeaseClient, failures: int) -> None:
        if failures < 20:
            return
        for lease_id, record in list(client.leases.items()):
            client.leases.pop(lease_id, None)
            if isinstance(record, ActorRecord):
                self._worker_lost(record, f"its node ({client.address}) is unreachable")

    async def _channel_lost(
        self, record: ActorRecord, why: str, lease: tuple[LeaseClient, int] | None
    ) -> None:
        """The channel of the incarnation holding ``lease`` broke; once the agent has had a
        moment to say how the worker ended, that incarnation is over. A later incarnation
        (the actor restarted meanwhile, say because its node died) is left alone."""
        lost = record.lost
        try:
            await asyncio.wait_for(lost.wait(), LOST_REASON_WAIT)
        except TimeoutError:
            if record.lease is not lease or record.lost is not lost:
                return
            if record.lease is not None:
                self._discard_worker(record, why)
            self._worker_lost(record, f"the connection to its worker was lost ({why})")

    def _worker_lost(self, record: ActorRecord, reason: str) -> None:
        if record.lost.is_set():
            return
        record.lost_reason = reason
        record.lost.set()

    def _discard_worker(self, record: ActorRecord, reason: str) -> None:
        """Give the actor's lease back with its worker killed; the runner takes it from there."""
        if record.lease is None:
            return
        client, lease_id = record.lease
        client.leases.pop(lease_id, None)
        client.send(pb.LeaseClientMessage(
            release=pb.LeaseReturn(lease_id=lease_id, discard_worker=True)
        ))
        self._worker_lost(record, reason)

    def _dead(self, record: ActorRecord, cause: str) -> None:
        if record.info.state == pb.DEAD:
            return
        log.info("%s is dead: %s", record.describe(), cause)
        deliberate = cause == record.stopping and not cause.startswith("its constructor raised")
        if not deliberate:  # a kill, or its owner's exit, is no failure
            self.events.add(f"{record.describe()} died: {cause}")
        record.set_state(pb.DEAD, death_cause=cause)
        if record.lease is not None:
            client, lease_id = record.lease
            client.leases.pop(lease_id, None)
            client.send(pb.LeaseClientMessage(
                release=pb.LeaseReturn(lease_id=lease_id, discard_worker=True)
            ))
            record.lease = None
        if record.channel is not None:
            record.channel.close()
            record.channel = None
        key = (record.spec.namespace, record.spec.name)
        if record.spec.name and self.names.get(key) == record.spec.actor_id:
            del self.names[key]

    async def close(self) -> None:
        for record in self.actors.values():
            if record.runner is not None:
                record.runner.cancel()
        for client in self._agents.values():
            client.close()
        await self.channels.close()

