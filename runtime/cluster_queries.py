"""What the head asks of every node agent at once, for the dashboard and ``ember logs``.

The head keeps the cluster's membership, not each node's workers, tasks or files: those are
asked for when someone looks, concurrently, with a short timeout, so that one slow or dead node
costs its own entry ("could not be asked"), never the whole answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import grpc

from ember.runtime import ids
from ember.runtime.protocol import ember_pb2 as pb

if TYPE_CHECKING:
    from ember.runtime.head import Head, NodeState
    from ember.runtime.protocol import ember_pb2_grpc as rpc_pb

T = TypeVar("T")
ASK_TIMEOUT = 5.0


class NodeNotFound(Exception):
    pass


async def ask_all(
    head: Head, ask: Callable[[rpc_pb.NodeAgentStub], Awaitable[T]]
) -> list[tuple[NodeState, T | str]]:
    """``ask`` each live node's agent; each answer, or why there is none."""
    nodes = head.alive_nodes()

    async def one(node: NodeState) -> T | str:
        try:
            return await asyncio.wait_for(ask(head.actors.channels.node_agent(node.info.address)), ASK_TIMEOUT)
        except grpc.aio.AioRpcError as error:
            return f"{node.describe()} could not be asked: {error.code().name} {error.details()}"
        except TimeoutError:
            return f"{node.describe()} did not answer within {ASK_TIMEOUT:g}s"

    answers = await asyncio.gather(*(one(node) for node in nodes))
    return list(zip(nodes, answers, strict=True))


def find_node(head: Head, name: str) -> NodeState:
    """A live node by agent address, or by node id (hex, or a prefix of it)."""
    alive = head.alive_nodes()
    for node in alive:
        if node.info.address == name:
            return node
    matches = [node for node in alive if node.node_id.hex().startswith(name.lower())] if name else []
    if len(matches) == 1:
        return matches[0]
    if not matches:
        known = ", ".join(ids.short(n.node_id) for n in alive) or "none"
        raise NodeNotFound(f"no live node {name!r} (live nodes: {known})")
    raise NodeNotFound(f"{name!r} names {len(matches)} nodes; give more of the id")


async def cluster_logs(head: Head) -> pb.ClusterLogs:
    result = pb.ClusterLogs()
    for node, answer in await ask_all(head, lambda agent: agent.ListLogs(pb.Empty())):
        entry = result.nodes.add(node_id=node.node_id, node_address=node.info.address)
        if isinstance(answer, str):
            entry.error = answer
        else:
            entry.files.extend(answer.files)
    return result


async def tail(head: Head, request: pb.NodeTailRequest) -> pb.TailReply:
    node = find_node(head, request.node)
    agent = head.actors.channels.node_agent(node.info.address)
    reply: pb.TailReply = await agent.TailLog(request.tail, timeout=ASK_TIMEOUT)
    return reply
