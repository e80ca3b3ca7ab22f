"""A busy node hands its waiting lease requests to a node that has room for them now.

A lease request waits at the node its owner asked: the owner's own node, or one the head chose
while the cluster was still growing. When that node stays full while another has the shape
free — a node that just joined, one whose work finished — the request moves there (a
spillback, which the owner follows) instead of waiting for this node's workers; Raylets do the
same. Without this, an autoscaled node that joins a moment after its siblings finds the work
already queued elsewhere and sits idle. Actor placements stay: the head chose their node; so
do requests with a node affinity (Ray's soft affinity too waits on its node while that node can
hold it). A label selector goes along, so a request moves only to a node it allows.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol

import grpc

from ember.runtime.node.lease_records import PendingRequest
from ember.runtime.node.leases import Leases
from ember.runtime.wire import resources, rpc
from ember.runtime.wire.protocol import ember_pb2 as pb

log = logging.getLogger("ember.runtime.node.node_agent")

INTERVAL = 0.25  # seconds between looks at the queue
PATIENCE = 0.25  # a request waits this long for this node before it may move
MOVES_PER_ROUND = 16  # head calls per round, at most


class BalancedNode(Protocol):
    """What the balancer needs of its node agent: its leases, and the way to its head."""

    node_id: bytes
    head_address: str
    channels: rpc.Channels
    stopping: bool
    leases: Leases

    def describe(self) -> str: ...


def waiting_too_long(leases: Leases, now: float) -> list[PendingRequest]:
    """Queued task requests this node cannot grant now, oldest first, that waited long enough.
    Requests that fit what is free (they are about to be granted) never move."""
    free = dict(leases.available)
    stuck = []
    for request in leases.queue:
        if request.env is not None and not request.env.ready:
            continue  # it waits for its runtime_env to be set up here, not for room
        if resources.fits(request.shape, free):
            resources.subtract(free, request.hold)
            continue
        pinned = request.constraints is not None and request.constraints.node_affinity
        if not request.actor_id and not pinned and now - request.queued_at >= PATIENCE:
            stuck.append(request)
    return stuck


async def move_waiting_requests(agent: BalancedNode) -> None:
    leases = agent.leases
    while not agent.stopping:
        await asyncio.sleep(INTERVAL)
        if leases.drain is not None or not agent.head_address or not leases.queue:
            continue  # a draining node redirects its requests itself
        for request in waiting_too_long(leases, time.monotonic())[:MOVES_PER_ROUND]:
            try:
                reply = await agent.channels.head(agent.head_address).FindNode(
                    pb.FindNodeRequest(
                        shape=pb.ResourceSet(quantities=resources.to_float(request.shape)),
                        exclude_node_id=agent.node_id,
                        free_only=True,
                        constraints=request.constraints,
                    ),
                    timeout=2.0,
                )
            except grpc.aio.AioRpcError:
                break  # the head will be asked again next round
            if not reply.node.address:
                continue  # no node has this shape free: it keeps its place here
            if request not in leases.queue:
                continue  # granted or cancelled while the head answered
            leases.queue.remove(request)
            log.debug(
                "%s: request %d of %s moves to %s, which has %s free",
                agent.describe(), request.request_id, request.task_name or "a task",
                reply.node.address, resources.describe(request.shape),
            )
            request.owner.send(pb.LeaseServerMessage(spillback=pb.LeaseSpillback(
                request_id=request.request_id,
                node_address=reply.node.address,
                node_id=reply.node.node_id,
            )))
