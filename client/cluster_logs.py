"""``ember logs``: the log files of every node, listed, printed or followed through the head.

    ember logs                       # every node's files: head, agents, each worker's out/err
    ember logs worker-1a2b-4242.err  # its last 100 lines (--tail N), from whichever node has it
    ember logs node-agent.log --node 3f2a --follow
"""

from __future__ import annotations

import asyncio
import sys
import time

import grpc

from ember.runtime.objects import ids
from ember.runtime.wire import rpc
from ember.runtime.wire.protocol import ember_pb2 as pb

FOLLOW_INTERVAL = 0.5


class LogsError(Exception):
    pass


async def _call(head_address: str, method: str, request: object) -> object:
    channels = rpc.Channels()
    try:
        return await getattr(channels.head(head_address), method)(request, timeout=10)
    finally:
        await channels.close()


def _ask(head_address: str, method: str, request: object) -> object:
    try:
        return asyncio.run(_call(head_address, method, request))
    except grpc.aio.AioRpcError as error:
        raise LogsError(error.details() or error.code().name) from None


def list_files(head_address: str) -> str:
    logs = _ask(head_address, "ListClusterLogs", pb.Empty())
    assert isinstance(logs, pb.ClusterLogs)
    lines = []
    for node in logs.nodes:
        lines.append(f"node_{ids.short(node.node_id)} ({node.node_address})")
        if node.error:
            lines.append(f"  {node.error}")
        for entry in node.files:
            stamp = time.strftime("%H:%M:%S", time.localtime(entry.modified))
            lines.append(f"  {entry.name:<44} {entry.size:>10,} B  {stamp}")
    return "\n".join(lines)


def _node_of(head_address: str, name: str, node: str) -> str:
    """The node to read ``name`` from: the one given, else the only one that has the file."""
    if node:
        return node
    logs = _ask(head_address, "ListClusterLogs", pb.Empty())
    assert isinstance(logs, pb.ClusterLogs)
    holders = [n for n in logs.nodes if any(f.name == name for f in n.files)]
    if not holders:
        raise LogsError(f"no node has a log file named {name!r}; 'ember logs' lists them")
    # Agents on one machine share a session's directory and list the same files: any will do.
    shared = len({tuple(f.name for f in n.files) for n in holders}) == 1
    if len(holders) > 1 and not shared:
        which = ", ".join(ids.short(n.node_id) for n in holders)
        raise LogsError(f"{name!r} is on several nodes ({which}): choose one with --node")
    return holders[0].node_address


def show(head_address: str, name: str, node: str = "", lines: int = 100, follow: bool = False) -> None:
    where = _node_of(head_address, name, node)
    reply = _ask(head_address, "TailNodeLog", pb.NodeTailRequest(node=where, tail=pb.TailRequest(name=name, lines=lines)))
    assert isinstance(reply, pb.TailReply)
    sys.stdout.write(reply.text)
    sys.stdout.flush()
    offset = reply.end
    while follow:
        time.sleep(FOLLOW_INTERVAL)
        reply = _ask(
            head_address, "TailNodeLog",
            pb.NodeTailRequest(node=where, tail=pb.TailRequest(name=name, offset=max(offset, 1))),
        )
        assert isinstance(reply, pb.TailReply)
        if reply.text:
            sys.stdout.write(reply.text)
            sys.stdout.flush()
        offset = reply.end
