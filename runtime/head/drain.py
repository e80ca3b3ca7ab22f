"""Draining a node, the head's half: what the autoscaler asks for before it removes a node.

A node is removed for good once drained, so draining must lose nothing that was acknowledged.
The head's part is small: it stops placing anything there (``Head.place`` skips draining
nodes), orders the node's agent to drain (``HeadToNode.drain``), and moves the node's actors
itself, because it is the head that leases their workers. The agent does the rest
(``node_drain.py``): it grants no new leases, lets running tasks finish (until the deadline),
and copies the objects whose only copy is there to other nodes, telling their owners where.

The node is DRAINED once the agent says its part is over and no actor is left there. The head
only watches; ``ember drain`` and the autoscaler read the state from ``GetClusterView``.

Actor restarts caused by a drain do not count against ``max_restarts`` (Ray does the same for
preempted nodes): a move the cluster chose is no failure of the actor's. An actor with
``max_restarts=0`` may not run twice, so it dies, with a cause that names the drained node.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc

from ember.runtime.head.actor_manager import ActorManager
from ember.runtime.head.actor_record import ActorRecord
from ember.runtime.head.membership import NodeState
from ember.runtime.objects import ids
from ember.runtime.wire import resources
from ember.runtime.wire.protocol import ember_pb2 as pb

log = logging.getLogger("ember.runtime.head.head")

WATCH_INTERVAL = 0.2  # seconds between the head's looks at a drain, to log when it is over


@dataclass
class NodeDrain:
    """One node's drain as the head sees it."""

    node: NodeState
    deadline_seconds: float
    reason: str
    started: float = field(default_factory=time.monotonic)
    # The actors that were on the node (or being created there) when the drain began.
    actors: list[ActorRecord] = field(default_factory=list)
    # The agent's latest account (leases, objects), from its reports.
    progress: pb.DrainProgress = field(default_factory=pb.DrainProgress)
    watcher: asyncio.Task[None] | None = None

    def actors_remaining(self) -> list[ActorRecord]:
        """Actors still running on the node: not dead, not restarting, not alive elsewhere."""
        address = self.node.info.address
        return [
            record for record in self.actors
            if record.info.state != pb.DEAD
            and (
                (record.info.state == pb.ALIVE and record.info.node_id == self.node.node_id)
                or (record.lease is not None and record.lease[0].address == address)
            )
        ]

    def state(self) -> pb.NodeDrainState:
        if self.progress.done and not self.actors_remaining():
            return pb.DRAINED
        return pb.DRAINING

    def fill(self, view: pb.NodeView) -> None:
        """Put the drain's state and progress into the node's view."""
        view.drain_state = self.state()
        progress = view.drain
        progress.CopyFrom(self.progress)
        progress.seconds = time.monotonic() - self.started
        if not progress.deadline_seconds:
            progress.deadline_seconds = self.deadline_seconds
        remaining = self.actors_remaining()
        progress.actors_remaining = len(remaining)
        progress.actors_died = sum(1 for r in self.actors if r.info.state == pb.DEAD)
        progress.actors_restarted = len(self.actors) - progress.actors_died - len(remaining)
        progress.done = view.drain_state == pb.DRAINED
        if remaining:
            progress.waiting_for = f"{len(remaining)} actor(s) to move to other nodes"
        elif progress.done:
            progress.waiting_for = ""


class DrainManager:
    def __init__(
        self,
        nodes: dict[bytes, NodeState],
        actors: ActorManager,
        on_drain: Callable[[NodeState], None] = lambda node: None,
    ) -> None:
        self.nodes = nodes  # the head's, by node id: the dead ones too
        self.actors = actors
        # Told first when a node begins draining: its placement group bundles move elsewhere,
        # so that the actors moved off it have their bundles to go to.
        self.on_drain = on_drain

    async def drain(
        self, request: pb.DrainRequest, context: grpc.aio.ServicerContext
    ) -> pb.DrainReply:
        """The DrainNode RPC: accept (or refuse) at once; the drain goes on in the background."""
        if not request.node_id and not request.address:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "DrainNode needs a node_id or an address"
            )
        node = self.find(request.node_id, request.address)
        if node is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, self._not_found(request))
            return pb.DrainReply()
        if not node.alive:
            return pb.DrainReply(
                accepted=False,
                node=node.info,
                rejection_reason=f"{node.describe()} is dead ({node.death_cause}): "
                f"there is nothing left to drain",
            )
        if node.drain is not None:
            return pb.DrainReply(accepted=True, already_draining=True, node=node.info)
        self.start(node, max(0.0, request.deadline_seconds), request.reason or "DrainNode")
        return pb.DrainReply(accepted=True, node=node.info)

    def find(self, node_id: bytes, address: str) -> NodeState | None:
        """The node by id, or by its agent's address (the live one, if a dead node had it)."""
        if node_id:
            return self.nodes.get(node_id)
        matches = [n for n in self.nodes.values() if n.info.address == address]
        alive = [n for n in matches if n.alive]
        chosen = alive or matches
        return chosen[-1] if chosen else None

    def _not_found(self, request: pb.DrainRequest) -> str:
        what = f"id {request.node_id.hex()}" if request.node_id else f"address {request.address}"
        known = ", ".join(
            f"{ids.short(n.node_id)} ({n.info.address})" for n in self._alive()
        )
        return f"no node with {what} in this cluster (its live nodes: {known or 'none'})"

    def start(self, node: NodeState, deadline_seconds: float, reason: str) -> None:
        drain = node.drain = NodeDrain(node, deadline_seconds, reason)
        node.info.draining = True
        deadline = f"deadline {deadline_seconds:g}s" if deadline_seconds else "no deadline"
        log.info("draining %s (%s): %s", node.describe(), deadline, reason)
        node.outbox.put_nowait(pb.HeadToNode(
            drain=pb.DrainOrder(deadline_seconds=deadline_seconds, reason=reason)
        ))
        self._move_actors(drain)

    def resume(self, node: NodeState) -> None:
        """An agent that was draining registered again (the head restarted): it goes on
        draining by itself; the head keeps off it and moves what actors it took back there."""
        node.drain = NodeDrain(node, 0.0, "it was draining when the head restarted")
        log.info("%s registered while draining; it stays out of placement", node.describe())
        self._move_actors(node.drain)

    def _move_actors(self, drain: NodeDrain) -> None:
        node = drain.node
        self.on_drain(node)
        drain.actors = self.actors.move_off(
            node.node_id,
            node.info.address,
            f"its {node.describe()} was drained ({drain.reason})",
        )
        drain.watcher = asyncio.ensure_future(self._watch(drain))

    async def _watch(self, drain: NodeDrain) -> None:
        node = drain.node
        while node.alive and node.drain is drain:
            if drain.state() == pb.DRAINED:
                view = pb.NodeView()
                drain.fill(view)
                progress = view.drain
                log.info(
                    "%s is drained after %.1fs: %d leases finished, %d stopped at the deadline, "
                    "%d actors restarted elsewhere, %d died, %d objects copied (%d bytes)",
                    node.describe(), progress.seconds, progress.leases_finished,
                    progress.leases_stopped, progress.actors_restarted, progress.actors_died,
                    progress.objects_copied, progress.bytes_copied,
                )
                return
            await asyncio.sleep(WATCH_INTERVAL)

    def could_hold(self, shape: resources.Shape) -> bool:
        """Some live node could hold the shape, were it not draining: work of that shape waits
        for a node to join (the autoscaler sees it as demand) instead of failing."""
        return any(
            node.drain is not None and resources.fits(shape, node.total)
            for node in self._alive()
        )

    def _alive(self) -> list[NodeState]:
        return [node for node in self.nodes.values() if node.alive]
