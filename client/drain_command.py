"""``ember drain NODE``: drain a node as the autoscaler does before removing it, and wait.

It talks to the head over the wire protocol only (``DrainNode``, then ``GetClusterView`` until
the node is DRAINED), like ``ember status``: draining must not start a job on the cluster. NODE
is a node id, or a unique prefix of one as ``ember status`` prints it, or a node agent's
address. When it returns 0, the node runs nothing and holds no object that exists nowhere else:
it can be stopped.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import TextIO

import grpc

from ember.runtime.objects import ids
from ember.runtime.wire import rpc
from ember.runtime.wire.protocol import ember_pb2 as pb
from ember.runtime.wire.protocol import ember_pb2_grpc as rpc_pb

POLL_INTERVAL = 0.25


class DrainError(Exception):
    pass


def resolve(view: pb.ClusterView, node: str) -> pb.NodeView:
    """The node NODE names: an agent address, or a node id (hex, or a unique prefix of one)."""
    by_address = [n for n in view.nodes if n.info.address == node]
    if by_address:
        alive = [n for n in by_address if n.alive]
        return (alive or by_address)[-1]
    prefix = node.lower().removeprefix("node_")
    matches = [n for n in view.nodes if prefix and n.info.node_id.hex().startswith(prefix)]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(
        f"{ids.short(n.info.node_id)} ({n.info.address}{'' if n.alive else ', dead'})"
        for n in view.nodes
    )
    if not matches:
        raise DrainError(f"no node '{node}' in this cluster; its nodes: {known or 'none'}")
    raise DrainError(f"'{node}' names {len(matches)} nodes; give more of the id: {known}")


def run(
    head_address: str,
    node: str,
    deadline: float | None,
    timeout: float | None,
    out: TextIO = sys.stdout,
) -> int:
    try:
        return asyncio.run(_drain(head_address, node, deadline, timeout, out))
    except DrainError as error:
        print(f"ember drain: {error}", file=sys.stderr)
        return 1
    except grpc.aio.AioRpcError as error:
        print(
            f"ember drain: the head at {head_address} answered {error.code().name}: "
            f"{error.details()}",
            file=sys.stderr,
        )
        return 1


async def _drain(
    head_address: str, node: str, deadline: float | None, timeout: float | None, out: TextIO
) -> int:
    channels = rpc.Channels()
    try:
        head = channels.head(head_address)
        view = await head.GetClusterView(pb.Empty(), timeout=10)
        target = resolve(view, node)
        name = f"node {ids.short(target.info.node_id)} ({target.info.address})"
        reply = await head.DrainNode(
            pb.DrainRequest(
                node_id=target.info.node_id,
                deadline_seconds=deadline or 0.0,
                reason="ember drain",
            ),
            timeout=10,
        )
        if not reply.accepted:
            raise DrainError(f"the head refused to drain {name}: {reply.rejection_reason}")
        when = f"running tasks get {deadline:g}s" if deadline else "running tasks may finish"
        verb = "is already draining" if reply.already_draining else "is draining"
        print(f"{name} {verb}: nothing new goes there, {when}.", file=out, flush=True)
        return await _wait(head, target.info.node_id, name, timeout, out)
    finally:
        await channels.close()


async def _wait(
    head: rpc_pb.HeadStub, node_id: bytes, name: str, timeout: float | None, out: TextIO
) -> int:
    give_up = None if timeout is None else time.monotonic() + timeout
    said = ""
    while True:
        view = await head.GetClusterView(pb.Empty(), timeout=10)
        node = next((n for n in view.nodes if n.info.node_id == node_id), None)
        if node is None or not node.alive:
            cause = node.death_cause if node is not None else "it left the cluster"
            print(f"{name} is gone before it was drained: {cause}", file=sys.stderr)
            return 1
        if node.drain_state == pb.DRAINED:
            print(summary(name, node.drain), file=out, flush=True)
            return 0
        waiting = node.drain.waiting_for
        if waiting and waiting != said:
            print(f"  waiting for {waiting} ({node.drain.seconds:.1f}s)", file=out, flush=True)
            said = waiting
        if give_up is not None and time.monotonic() > give_up:
            print(
                f"ember drain: {name} is not drained after {timeout:g}s (waiting for "
                f"{waiting or 'its agent'}); the drain goes on",
                file=sys.stderr,
            )
            return 1
        await asyncio.sleep(POLL_INTERVAL)


def summary(name: str, progress: pb.DrainProgress) -> str:
    leases = f"{progress.leases_finished} worker lease(s) finished their tasks"
    if progress.leases_stopped:
        leases += (
            f", {progress.leases_stopped} stopped at the deadline (their tasks are retried on "
            f"other nodes)"
        )
    if progress.requests_redirected:
        leases += f"; {progress.requests_redirected} lease request(s) sent to other nodes"
    actors = f"{progress.actors_restarted} restarted on other nodes"
    if progress.actors_died:
        actors += f", {progress.actors_died} died (max_restarts=0)"
    objects = (
        f"{progress.objects_copied} copied to other nodes ({progress.bytes_copied / 2**20:.1f} MiB)"
    )
    if progress.objects_skipped:
        objects += f"; {progress.objects_skipped} owned by processes of the node, left to end with them"
    return "\n".join([
        f"{name} is drained ({progress.seconds:.1f}s):",
        f"  tasks:   {leases}",
        f"  actors:  {actors}",
        f"  objects: {objects}",
        "It runs nothing and holds no object that exists nowhere else: it can be stopped.",
    ])
