"""A CPU profile of one process of the cluster (``ember profile``, the dashboard's *profile*
button), asked of the node agent that runs it (or of the driver itself).

The head keeps nothing: it checks the request (the duration and rate bounds hold at every hop),
asks the node named, or every node, for the process, and passes the samples on. Rendering them
(speedscope JSON, an SVG flame graph) is ``wire.profile_formats``' and ``wire.flame_graph``'s.
"""

from __future__ import annotations

import asyncio

import grpc

from ember.runtime.head.cluster_queries import HeadView, find_node
from ember.runtime.head.membership import NodeState
from ember.runtime.objects import ids
from ember.runtime.wire import flame_graph, profile_formats
from ember.runtime.wire.protocol import ember_pb2 as pb

ANSWER_SLACK = 15.0  # seconds beyond the duration a node has to answer (its own is 10)


async def profile(head: HeadView, request: pb.ProfileRequest) -> pb.ClusterProfiles:
    """The profile of process ``request.pid``: a worker of the node ``request.node`` names (or
    of any node), or a driver of the cluster."""
    request = profile_formats.checked(request)
    nodes = [find_node(head, request.node)] if request.node else head.alive_nodes()
    timeout = request.duration + ANSWER_SLACK

    async def one(node: NodeState) -> pb.ClusterProfiles | str:
        try:
            answer: pb.ClusterProfiles = await head.actors.channels.node_agent(node.info.address).Profile(
                request, timeout=timeout
            )
            return answer
        except grpc.aio.AioRpcError as error:
            return f"{node.describe()} could not be asked: {error.code().name} {error.details()}"

    result = pb.ClusterProfiles()
    drivers = [
        job for job in head.jobs.values()
        if job.alive and job.driver_address and job.pid == request.pid and not request.node
    ]
    answers = await asyncio.gather(
        *(one(node) for node in nodes), *(_driver(head, job.driver_address, job.pid, request) for job in drivers)
    )
    for answer in answers:
        if isinstance(answer, str):
            result.errors.append(answer)
        elif isinstance(answer, pb.ProcessProfile):
            result.processes.append(answer)
        else:
            result.processes.extend(answer.processes)
            result.errors.extend(answer.errors)
    return result


async def _driver(head: HeadView, address: str, pid: int, request: pb.ProfileRequest) -> pb.ProcessProfile:
    """A driver samples itself (py-spy runs on node agents, and a driver may run on no node)."""
    try:
        reply: pb.ProcessProfile = await head.actors.channels.core_worker(address).Profile(
            request, timeout=request.duration + ANSWER_SLACK
        )
        return reply
    except grpc.aio.AioRpcError as error:
        return pb.ProcessProfile(
            pid=pid, kind="DRIVER",
            error=f"the driver pid {pid} ({address}) could not be asked: {error.code().name} {error.details()}",
        )


def title(process: pb.ProcessProfile) -> str:
    """What a profile is of, as its files are headed."""
    where = f" on node {ids.short(process.node_id)} ({process.node_address})" if process.node_id else ""
    return (
        f"{process.kind.lower() or 'process'} pid {process.pid}{where}: {process.duration:.1f} s "
        f"at {process.rate}/s, sampled by {process.sampler or 'nothing'}"
    )


def profile_view(reply: pb.ClusterProfiles) -> dict[str, object]:
    """The dashboard's JSON: each process's flame graph (SVG) and speedscope file."""
    return {
        "processes": [
            {
                "pid": p.pid, "kind": p.kind, "node": ids.short(p.node_id) if p.node_id else "",
                "node_address": p.node_address, "sampler": p.sampler, "samples": p.samples,
                "duration": p.duration, "note": p.note, "error": p.error, "title": title(p),
                "svg": flame_graph.svg(p, title(p)) if not p.error else "",
                "speedscope": profile_formats.speedscope(p, title(p)) if not p.error else None,
            }
            for p in reply.processes
        ],
        "errors": list(reply.errors),
    }
