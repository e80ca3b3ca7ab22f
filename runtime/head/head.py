"""The head: one per cluster. Membership, the resource view, jobs, placement across nodes.

Where work goes when a node will not take it is ``lease_placement``'s choice; placement groups
(``placement_groups``) and actors (``actor_manager``) have modules of their own.

The head is not on the path of any task. Node agents hold a session with it and report their
free resources when they change; drivers hold a session that ends when they do, which is how
the cluster learns that a driver died and stops its workers.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import random
import sys
import time
from collections.abc import AsyncIterator

import grpc

from ember.runtime import __version__
from ember.runtime.head import cluster_inspection, cluster_queries, worker_profiles
from ember.runtime.head.actor_manager import ActorManager
from ember.runtime.head.actor_record import abort_not_found
from ember.runtime.head.bundle_placement import NodeType
from ember.runtime.head.coalesced import Coalesced
from ember.runtime.head.drain import DrainManager
from ember.runtime.head.events import EventLog
from ember.runtime.head.head_state import HeadState
from ember.runtime.head.lease_placement import Choice, LeasePlacement
from ember.runtime.head.membership import JobState, NodeState
from ember.runtime.head.placement_groups import PlacementGroups
from ember.runtime.objects import ids
from ember.runtime.wire import bundle_resources, profile_formats, resources
from ember.runtime.wire.protocol import ember_pb2 as pb
from ember.runtime.wire.protocol import ember_pb2_grpc as rpc_pb
from ember.runtime.wire.resources import Shape

log = logging.getLogger("ember.runtime.head.head")

# The file of metrics endpoints is rewritten at most this often, however many nodes come and go.
METRICS_TARGETS_INTERVAL = 1.0
# Dead workers reported by nodes are announced to the other nodes in one message per node at
# most this often: a job's end, reported by every node it ran on, is not nodes x nodes messages.
OWNERS_GONE_INTERVAL = 1.0
# A node silent this long is declared dead. Agents report at least every second
# (head_link.HEARTBEAT_INTERVAL); a broken session is noticed sooner, by gRPC.
NODE_TIMEOUT = float(os.environ.get("EMBER_NODE_TIMEOUT_S", "15"))
FIND_NODE_WAIT = 5.0  # seconds FindNode waits for a placement group being placed
PYTHON_VERSION = "{}.{}".format(*sys.version_info[:2])


class Head(rpc_pb.HeadServicer):
    def __init__(
        self,
        session_dir: str,
        node_timeout: float = NODE_TIMEOUT,
        state: HeadState | None = None,
        autoscaler: bool = False,
    ) -> None:
        self.session_dir = session_dir
        self.node_timeout = node_timeout
        self.state = state
        self.nodes: dict[bytes, NodeState] = {}
        self.jobs: dict[bytes, JobState] = {}
        # Without a state directory a restarted head cannot know the ids its predecessor gave
        # out; starting anywhere in a large range makes meeting one of them unlikely.
        self._job_counter = itertools.count(random.randrange(1, 1 << 30))
        self.node_registered = asyncio.Event()
        self.events = EventLog()
        self.actors = ActorManager(self, self.events, state)
        self.placement_groups = PlacementGroups(self, self.actors.channels, state)
        self.placement = LeasePlacement(self, self.placement_groups)
        # A removed group's actors die first, so that they are not restarted in it.
        self.placement_groups.on_removed = self.actors.placement_group_removed
        self.drains = DrainManager(self.nodes, self.actors, self._draining)
        # Node shapes an autoscaler may add, and what a program asked for ahead of its work.
        # None: an autoscaler is coming but has not said yet, so no work is infeasible until
        # it does (work submitted the moment a cluster is up must wait, not fail).
        self.node_types: list[NodeType] | None = None if autoscaler else []
        self.requested: list[pb.ResourceSet] = []
        self.metrics_address = ""  # HOST:PORT of its Prometheus endpoint, once it serves
        self.dashboard_address = ""
        # Rewriting the file lists every node: once per join or departure, 4,000 nodes joining
        # cost the head 90 s. Once a second at most, it costs as much as a handful of nodes.
        self.metrics_targets = Coalesced(
            self.write_metrics_targets, METRICS_TARGETS_INTERVAL, "writing metrics_targets.json"
        )
        self._targets_written: list[dict[str, object]] | None = None
        # Workers reported dead and not yet announced to the other nodes, by reporting node.
        self._owners_gone: dict[bytes, list[str]] = {}
        self.owners_gone = Coalesced(self._announce_owners_gone, OWNERS_GONE_INTERVAL, "announcing dead owners")

    def close(self) -> None:
        """The head stops: what it still owes the session directory and the nodes goes now."""
        self.metrics_targets.close()
        self.owners_gone.close()

    def _new_job_id(self) -> bytes:
        number = self.state.next_job_number() if self.state else next(self._job_counter)
        return number.to_bytes(4, "little")

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
                    known = self.nodes.get(message.register.node_id)
                    if known is not None and not known.alive:
                        # Its work was retried elsewhere and its actors restarted: taking it
                        # back would run them twice. Restarted, the agent joins as a new node.
                        log.warning("%s came back after it was declared dead; refused", known.describe())
                        await context.write(pb.HeadToNode(refused=known.death_cause))
                        return
                    node = NodeState(message.register)
                    self.nodes[node.node_id] = node
                    verb = "rejoined" if known is not None else "joined"
                    log.info("%s %s with %s", node.describe(), verb, resources.describe(node.total))
                    writer = asyncio.ensure_future(self._write_node(node, context))
                    node.outbox.put_nowait(pb.HeadToNode(registered=pb.Empty()))
                    for job in self.jobs.values():
                        if not job.alive:
                            node.outbox.put_nowait(pb.HeadToNode(job_finished=job.ended()))
                    self.node_registered.set()
                    if message.register.draining:
                        self.drains.resume(node)
                    self.placement_groups.reconcile(node, list(message.register.bundles))
                    self.placement_groups.wake()
                elif kind == "report" and node is not None:
                    report = message.report
                    node.available = resources.to_fixed(report.available.quantities)
                    node.num_workers = report.num_workers
                    node.pending = list(report.pending)
                    node.idle_seconds = report.idle_seconds
                    node.store_broken = report.store_broken
                    if report.HasField("usage"):
                        node.usage = report.usage
                    if report.metrics_port and node.info.metrics_port != report.metrics_port:
                        node.info.metrics_port = report.metrics_port
                        self.metrics_targets.changed()
                    node.last_seen = time.monotonic()
                    if report.HasField("drain") and node.drain is not None:
                        node.drain.progress.CopyFrom(report.drain)
                    if report.bundles_listed:
                        self.placement_groups.reconcile(node, list(report.bundles))
                    self.placement_groups.wake()  # room may have opened for a waiting group
                    for failure in report.failures:
                        self.events.add(f"{node.describe()}: {failure}")
                    if report.dead_workers:
                        self.actors.owners_died(list(report.dead_workers))
                        # Objects they owned may be stored on other nodes: free them there too.
                        self._owners_gone.setdefault(node.node_id, []).extend(report.dead_workers)
                        self.owners_gone.changed()
                elif kind == "leaving" and node is not None and node.alive:
                    self.node_died(node, f"it stopped ({message.leaving})", failure=False)
        except (grpc.aio.AioRpcError, asyncio.CancelledError):
            pass
        finally:
            if writer is not None:
                writer.cancel()
            if node is not None and node.alive and self.nodes.get(node.node_id) is node:
                self.node_died(node, "its session with the head closed (the agent exited, or the network broke)")

    async def _write_node(self, node: NodeState, context: grpc.aio.ServicerContext) -> None:
        while True:
            await context.write(await node.outbox.get())

    def write_metrics_targets(self) -> None:
        """``metrics_targets.json`` in the session directory, in Prometheus's file_sd format:
        point a local Prometheus at it and it scrapes whatever nodes the cluster has.

        Called through ``self.metrics_targets`` (at most once a second); a set equal to the
        one last written (a node came and went in between) is not written again."""
        targets: list[dict[str, object]] = []
        if self.metrics_address:
            targets.append({"targets": [self.metrics_address], "labels": {"component": "head"}})
        for node in self.alive_nodes():
            if node.info.metrics_port:
                targets.append({
                    "targets": [f"{node.info.host}:{node.info.metrics_port}"],
                    "labels": {"component": "node_agent", "node": ids.short(node.node_id)},
                })
        if targets == self._targets_written:
            return
        path = os.path.join(self.session_dir, "metrics_targets.json")
        try:
            with open(path + ".tmp", "w") as f:
                json.dump(targets, f, indent=1)
            os.replace(path + ".tmp", path)
            self._targets_written = targets
        except OSError as error:
            log.warning("cannot write %s: %s", path, error)

    def _announce_owners_gone(self) -> None:
        """Tell every node the workers that died elsewhere since the last announcement, in one
        message: results are stored where the tasks ran, not beside their owners, and the head
        does not see where tasks run (owners lease workers from the agents), so every node may
        hold objects of a dead owner. Its own dead workers a node freed itself."""
        gone, self._owners_gone = self._owners_gone, {}
        if not gone:
            return
        everyone = pb.HeadToNode(owners_gone=pb.OwnersGone(
            addresses=[address for addresses in gone.values() for address in addresses]
        ))
        for node in self.alive_nodes():
            if node.node_id not in gone:
                node.outbox.put_nowait(everyone)
                continue
            others = [a for origin, addresses in gone.items() if origin != node.node_id for a in addresses]
            if others:
                node.outbox.put_nowait(pb.HeadToNode(owners_gone=pb.OwnersGone(addresses=others)))

    def node_by_id(self, node_id: bytes) -> NodeState | None:
        node = self.nodes.get(node_id)
        return node if node is not None and node.alive else None

    def node_died(self, node: NodeState, cause: str, failure: bool = True) -> None:
        """Take the node out of the view; its actors restart elsewhere, as max_restarts allows.

        Tasks need nothing from here: their owners see the workers' channels break and retry
        them, and rebuild lost objects from lineage when they are needed.
        """
        node.alive = False
        node.death_cause = cause
        node.pending = []
        if failure:
            log.warning("%s is dead: %s", node.describe(), cause)
            self.events.add(f"{node.describe()} died: {cause}")
            # If it still listens (a partition, a pause), it must stop: its work runs elsewhere.
            node.outbox.put_nowait(pb.HeadToNode(refused=cause))
        else:
            log.info("%s left: %s", node.describe(), cause)
        self.actors.node_died(node.node_id, node.info.address, f"its {node.describe()} died: {cause}")
        self.placement_groups.node_lost(node, "died" if failure else "left")
        if node.info.metrics_port:
            self.metrics_targets.changed()

    async def watch_heartbeats(self) -> None:
        """Declare dead the nodes that fell silent (a partition, a frozen machine)."""
        while True:
            await asyncio.sleep(min(1.0, self.node_timeout / 4))
            now = time.monotonic()
            for node in self.alive_nodes():
                silent = now - node.last_seen
                if silent > self.node_timeout:
                    self.node_died(node, f"no report for {silent:.1f}s (timeout {self.node_timeout:g}s)")

    def alive_nodes(self) -> list[NodeState]:
        return [node for node in self.nodes.values() if node.alive]

    # ------------------------------------------------------------------ drivers

    async def DriverSession(
        self, request: pb.DriverHello, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.HeadToDriver]:
        job_id = self._new_job_id()
        job = self.jobs[job_id] = JobState(job_id, request, context.peer())
        log.info("job %s started by driver pid %d at %s", job_id.hex(), request.pid, request.address)
        try:
            yield pb.HeadToDriver(job_id=job_id)
            await asyncio.Event().wait()  # until the driver goes away
        finally:
            job.alive = False
            log.info("job %s ended (driver pid %d gone)", job_id.hex(), request.pid)
            # Actors first: their deaths must be known as kills before the nodes stop workers.
            self.actors.job_finished(job_id, request.pid)
            self.placement_groups.job_finished(job_id)
            for node in self.alive_nodes():
                node.outbox.put_nowait(pb.HeadToNode(job_finished=job.ended()))

    # ------------------------------------------------------------------ views

    async def GetClusterView(
        self, request: pb.Empty, context: grpc.aio.ServicerContext
    ) -> pb.ClusterView:
        return pb.ClusterView(
            nodes=[node.view() for node in self.nodes.values()],
            session_dir=self.session_dir,
            version=__version__,
            actor_demand=self.actors.demand(),
            events=self.events.recent(),
            metrics_address=self.metrics_address,
            dashboard_address=self.dashboard_address,
            python_version=PYTHON_VERSION,
            head_address=self.actors.address,
            placement_group_demand=self.placement_groups.demand(),
        )

    def _draining(self, node: NodeState) -> None:
        """A node began draining: its placement group bundles are placed again elsewhere (what
        runs in them there finishes), so that the groups' work has somewhere to go."""
        self.placement_groups.node_lost(node, "is being drained", release=True)

    def place_actor(self, shape: Shape, constraints: pb.SchedulingConstraints | None) -> Choice:
        """Where the actor directory places an actor (see ``lease_placement``)."""
        return self.placement.choose(shape, constraints)

    async def placement_changed(self, seconds: float) -> None:
        """Until a placement group changes (an actor's group placed), at most ``seconds``."""
        await self.placement_groups.changed_within(seconds)

    async def FindNode(
        self, request: pb.FindNodeRequest, context: grpc.aio.ServicerContext
    ) -> pb.FindNodeReply:
        shape = resources.to_fixed(request.shape.quantities)
        constraints = request.constraints if request.HasField("constraints") else None
        choice = self.placement.choose(shape, constraints, request.exclude_node_id, request.free_only)
        groups = bundle_resources.groups_of(shape)
        if choice.node is None and choice.wait and groups and not request.free_only:
            # Work in a group being placed: answer once it is, not a poll later.
            await self.placement_groups.settled(groups, FIND_NODE_WAIT)
            choice = self.placement.choose(shape, constraints, request.exclude_node_id)
        reply = pb.FindNodeReply(
            feasible=choice.node is not None or choice.wait,
            largest=self.placement.largest_node(),
            reason=choice.reason,
        )
        node = choice.node
        if node is not None:
            reply.node.CopyFrom(node.info)
            # Count it as taken until the node's next report: requests asking at the same
            # moment (a burst waiting for new nodes) spread out instead of all going here.
            if resources.fits(shape, node.available):
                resources.subtract(node.available, shape)
        return reply

    # ------------------------------------------------------------------ autoscaling

    async def SetNodeTypes(self, request: pb.NodeTypes, context: grpc.aio.ServicerContext) -> pb.Empty:
        labels = [dict(entry.labels) for entry in request.labels]
        self.node_types = [
            NodeType(resources.to_fixed(shape.quantities), labels[i] if i < len(labels) else {})
            for i, shape in enumerate(request.shapes)
        ]
        self.placement_groups.wake()  # a group may fit (or never fit) the new node types
        log.info(
            "an autoscaler may add nodes of %s",
            ", ".join(resources.describe(t.shape) for t in self.node_types) or "no shape",
        )
        return pb.Empty()

    async def RequestResources(
        self, request: pb.ResourceRequest, context: grpc.aio.ServicerContext
    ) -> pb.Empty:
        self.requested = list(request.bundles)
        return pb.Empty()

    async def GetDemand(self, request: pb.Empty, context: grpc.aio.ServicerContext) -> pb.Demand:
        tasks: dict[tuple[tuple[tuple[str, float], ...], tuple[tuple[str, str], ...]], int] = {}
        nodes = []
        for node in self.alive_nodes():
            for entry in node.pending:
                if bundle_resources.in_any_group(entry.shape.quantities):
                    continue  # work in a placement group: the group is the demand
                key = (tuple(sorted(entry.shape.quantities.items())), tuple(sorted(entry.label_selector.items())))
                tasks[key] = tasks.get(key, 0) + entry.count
            nodes.append(pb.NodeLoad(
                node_id=node.node_id,
                address=node.info.address,
                total=pb.ResourceSet(quantities=resources.to_float(node.total)),
                available=pb.ResourceSet(quantities=resources.to_float(node.available)),
                idle_seconds=node.idle_seconds,
                draining=node.drain is not None,
                labels=node.info.labels,
            ))
        return pb.Demand(
            tasks=[
                pb.ResourceDemand(
                    shape=pb.ResourceSet(quantities=dict(shape)), count=count, label_selector=dict(selector)
                )
                for (shape, selector), count in tasks.items()
            ],
            actors=[
                entry for entry in self.actors.demand()
                if not bundle_resources.in_any_group(entry.shape.quantities)
            ],
            requested=self.requested,
            nodes=nodes,
            placement_groups=self.placement_groups.demand(),
        )

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

    # ------------------------------------------------------------------ placement groups

    async def CreatePlacementGroup(
        self, request: pb.PlacementGroupSpec, context: grpc.aio.ServicerContext
    ) -> pb.CreatePlacementGroupReply:
        return pb.CreatePlacementGroupReply(error=self.placement_groups.create(request))

    async def GetPlacementGroup(
        self, request: pb.PlacementGroupRequest, context: grpc.aio.ServicerContext
    ) -> pb.PlacementGroupInfo:
        record = self.placement_groups.find(request)
        if record is None:
            what = (
                f"id {request.placement_group_id.hex()}" if request.placement_group_id
                else f"name '{request.name}' in namespace '{request.namespace}'"
            )
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no placement group with {what}")
            return pb.PlacementGroupInfo()
        if request.wait_seconds > 0:
            await self.placement_groups.wait(record, min(request.wait_seconds, 60.0), request.until_infeasible)
        return record.info

    async def WaitPlacementGroups(
        self, request: pb.PlacementGroupsWait, context: grpc.aio.ServicerContext
    ) -> pb.PlacementGroupsSettled:
        return await self.placement_groups.wait_any(
            list(request.placement_group_ids), min(request.wait_seconds, 60.0)
        )

    async def RemovePlacementGroup(
        self, request: pb.PlacementGroupRequest, context: grpc.aio.ServicerContext
    ) -> pb.Empty:
        self.placement_groups.remove(
            request.placement_group_id, request.reason or "remove_placement_group() was called"
        )
        return pb.Empty()

    async def ListPlacementGroups(
        self, request: pb.Empty, context: grpc.aio.ServicerContext
    ) -> pb.PlacementGroupList:
        return self.placement_groups.table()

    # ------------------------------------------------------------------ logs

    async def ListClusterLogs(
        self, request: pb.Empty, context: grpc.aio.ServicerContext
    ) -> pb.ClusterLogs:
        return await cluster_queries.cluster_logs(self)

    async def TailNodeLog(
        self, request: pb.NodeTailRequest, context: grpc.aio.ServicerContext
    ) -> pb.TailReply:
        try:
            return await cluster_queries.tail(self, request)
        except cluster_queries.NodeNotFound as missing:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(missing))
        except grpc.aio.AioRpcError as error:
            await context.abort(error.code(), error.details() or error.code().name)
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------ the state API

    async def ListTasks(self, request: pb.Empty, context: grpc.aio.ServicerContext) -> pb.ClusterTasks:
        return await cluster_queries.cluster_tasks(self)

    async def ListObjects(
        self, request: pb.Empty, context: grpc.aio.ServicerContext
    ) -> pb.ClusterObjects:
        return await cluster_queries.cluster_objects(self)

    async def ListTaskTimes(
        self, request: pb.TaskTimesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ClusterTaskTimes:
        return await cluster_inspection.task_times(self, request)

    async def DumpStacks(
        self, request: pb.StackRequest, context: grpc.aio.ServicerContext
    ) -> pb.ClusterStacks:
        try:
            return await cluster_inspection.stacks(self, request)
        except cluster_queries.NodeNotFound as missing:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(missing))
            raise

    async def Profile(
        self, request: pb.ProfileRequest, context: grpc.aio.ServicerContext
    ) -> pb.ClusterProfiles:
        try:
            return await worker_profiles.profile(self, request)
        except profile_formats.BadProfileRequest as bad:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(bad))
            raise
        except cluster_queries.NodeNotFound as missing:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(missing))
            raise

    # ------------------------------------------------------------------ draining

    async def DrainNode(
        self, request: pb.DrainRequest, context: grpc.aio.ServicerContext
    ) -> pb.DrainReply:
        return await self.drains.drain(request, context)
