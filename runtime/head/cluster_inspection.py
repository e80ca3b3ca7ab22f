"""What the head gathers from every node to look inside a running job: the times of its tasks
(``ember timeline``, the dashboard's timeline) and the stacks of its workers (``ember stack``).

Like ``cluster_queries``, nothing here is kept by the head: the node agents keep what their
processes reported, and each is asked when someone looks, concurrently, so that a slow or dead
node costs its own entry, not the whole answer.
"""

from __future__ import annotations

import asyncio
import time

import grpc

from ember.runtime.head.cluster_queries import ASK_TIMEOUT, HeadView, ask_all, find_node
from ember.runtime.head.membership import JobState
from ember.runtime.objects import ids
from ember.runtime.wire import task_timeline
from ember.runtime.wire.protocol import ember_pb2 as pb

TIMELINE_SECONDS = 300.0  # what the dashboard's timeline shows: the last minutes
TIMELINE_SHOWN = 5000  # tasks it draws at most (the latest)


async def task_times(head: HeadView, request: pb.TaskTimesRequest) -> pb.ClusterTaskTimes:
    result = pb.ClusterTaskTimes()
    for node, answer in await ask_all(head, lambda agent: agent.ListTaskTimes(request)):
        if isinstance(answer, str):
            result.nodes.add(node_id=node.node_id, node_address=node.info.address, error=answer)
        else:
            result.nodes.append(answer)
    return result


async def stacks(head: HeadView, request: pb.StackRequest) -> pb.ClusterStacks:
    """The workers' stacks, of one node when ``request.node`` names it, of one process when
    ``request.pid`` does (a driver's too, when it is one)."""
    result = pb.ClusterStacks()
    if request.node:
        node = find_node(head, request.node)
        agent = head.actors.channels.node_agent(node.info.address)
        try:
            answer: pb.ClusterStacks = await agent.DumpStacks(request, timeout=ASK_TIMEOUT + 2)
            result.processes.extend(answer.processes)
        except grpc.aio.AioRpcError as error:
            result.errors.append(f"{node.describe()} could not be asked: {error.code().name} {error.details()}")
    else:
        for _, reply in await ask_all(head, lambda agent: agent.DumpStacks(request, timeout=ASK_TIMEOUT + 2)):
            if isinstance(reply, str):
                result.errors.append(reply)
            else:
                result.processes.extend(reply.processes)
    if request.pid:
        drivers = [
            job for job in head.jobs.values()
            if job.alive and job.driver_address and job.pid == request.pid
        ]
        result.processes.extend(await asyncio.gather(*(_driver_stacks(head, job) for job in drivers)))
    return result


async def _driver_stacks(head: HeadView, job: JobState) -> pb.ProcessStacks:
    try:
        reply: pb.ProcessStacks = await head.actors.channels.core_worker(job.driver_address).DumpStacks(
            pb.Empty(), timeout=ASK_TIMEOUT
        )
        return reply
    except grpc.aio.AioRpcError as error:
        return pb.ProcessStacks(
            pid=job.pid, kind="DRIVER",
            error=f"the driver of job {job.job_id.hex()} (pid {job.pid}) could not be asked: "
            f"{error.code().name} {error.details()}",
        )


async def chrome_trace(head: HeadView, seconds: float = TIMELINE_SECONDS) -> dict[str, object]:
    """The Chrome trace of the tasks that ended in the last ``seconds`` (the dashboard's
    download: the same file ``ember timeline`` writes)."""
    since = time.time() - seconds
    cluster = await task_times(head, pb.TaskTimesRequest(since=since))
    return task_timeline.chrome_trace(
        task_timeline.cluster_spans(cluster, since), task_timeline.node_names(cluster)
    )


def stacks_view(reply: pb.ClusterStacks) -> dict[str, object]:
    """``stacks``' answer as the dashboard's JSON."""
    return {
        "processes": [
            {
                "pid": p.pid, "kind": p.kind, "node": ids.short(p.node_id) if p.node_id else "",
                "node_address": p.node_address, "task_name": p.task_name,
                "task_id": p.task_id.hex(), "task_started": p.task_started, "actor": p.actor,
                "error": p.error, "py_spy": p.py_spy,
                "threads": [
                    {"name": t.name, "ident": t.ident, "daemon": t.daemon, "stack": t.stack}
                    for t in p.threads
                ],
            }
            for p in reply.processes
        ],
        "errors": list(reply.errors),
    }


async def timeline(head: HeadView, seconds: float = TIMELINE_SECONDS) -> dict[str, object]:
    """The dashboard's timeline: the tasks that ended in the last ``seconds``, as rows of
    ``[name, node, worker pid, submitted, scheduled, started, ended, failed, task id]``."""
    since = time.time() - seconds
    cluster = await task_times(head, pb.TaskTimesRequest(since=since))
    found = task_timeline.cluster_spans(cluster, since)[-TIMELINE_SHOWN:]
    names = {node.node_id: ids.short(node.node_id) for node in head.nodes.values()}
    return {
        "since": since,
        "now": time.time(),
        "tasks": [
            [
                span.name, names.get(span.node_id or span.reporter, ids.short(span.node_id or span.reporter)),
                span.worker_pid if span.ran else span.owner_pid,
                span.submitted, span.scheduled, span.started, span.ended, span.failed,
                span.task_id.hex(),
            ]
            for span in found
        ],
        "errors": [node.error for node in cluster.nodes if node.error],
    }
