"""One task's or one actor's detail (the dashboard's detail pages, ``ember.util.state.get_task``
and ``get_actor``), gathered when someone looks.

A task's record is its owner's, as the node agents keep what owners report (the latest ended
tasks, and those waiting and running now): its name, state, where it ran, its four times, its
arguments' sizes and, when it failed, its error with the remote traceback. Its own log lines
are its worker's: the worker indexes where each task's output lies in its log files
(``core.task_log_index``), so they are asked of the worker, through its node's agent, while it
lives. An actor's detail is the head's own record, the calls its owners reported, and the end of
its worker's log files.
"""

from __future__ import annotations

import asyncio

import grpc

from ember.runtime.head.cluster_queries import (
    ASK_TIMEOUT,
    HeadView,
    NodeNotFound,
    ask_all,
    find_node,
)
from ember.runtime.head.membership import NodeState
from ember.runtime.objects import ids
from ember.runtime.wire.protocol import ember_pb2 as pb

ACTOR_CALLS_SHOWN = 50  # an actor's latest calls on its page
ACTOR_LOG_LINES = 200


class BadId(ValueError):
    pass


def parse_id(text: str, size: int, what: str) -> bytes:
    """A task's or actor's id from its hex, or ``BadId`` naming what is wrong."""
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise BadId(f"{text[:80]!r} is not a {what} id: {what} ids are hex") from None
    if len(raw) != size:
        raise BadId(f"{text[:80]!r} is not a {what} id: it has {2 * size} hex digits, not {len(text)}")
    return raw


async def task_log(head: HeadView, request: pb.TaskLogRequest) -> pb.TaskLog:
    """Task ``request.task_id``'s lines, asked of worker ``request.pid`` on ``request.node``."""
    node = find_node(head, request.node)
    try:
        reply: pb.TaskLog = await head.actors.channels.node_agent(node.info.address).GetTaskLog(
            request, timeout=ASK_TIMEOUT + 2
        )
        return reply
    except grpc.aio.AioRpcError as error:
        return pb.TaskLog(error=f"{node.describe()} could not be asked: {error.code().name} {error.details()}")


def _event_view(event: pb.TaskEvent, reporter: NodeState) -> dict[str, object]:
    ended = event.state in ("finished", "failed")
    return {
        "task_id": event.task_id.hex(),
        "name": event.name,
        "func_name": event.func_name,
        "type": event.type,
        "state": event.state,
        "attempt": event.attempt,
        "job_id": event.job_id.hex(),
        "actor_id": event.actor_id.hex(),
        "node_id": event.node_id.hex(),
        "node_address": event.node_address,
        "worker_id": event.worker_id.hex(),
        "worker_pid": event.worker_pid,
        "owner_address": event.owner_address,
        "owner_node": ids.short(reporter.node_id),
        "required": dict(event.required.quantities),
        "args_size": event.args_size,
        "ref_arg_sizes": list(event.ref_arg_sizes),
        "submitted": event.created,
        "scheduled": event.scheduled or (event.time if event.state == "running" else 0.0),
        "started": event.started,
        "ended": event.time if ended else 0.0,
        "run_seconds": event.run_seconds,
        "error": event.error,
        "error_type": event.error_type,
        "traceback": event.traceback,
    }


async def _events(head: HeadView, lookup: pb.TaskLookup) -> tuple[list[tuple[pb.TaskEvent, NodeState]], list[str]]:
    """The events each node keeps of one task, or of one actor's calls."""
    found: list[tuple[pb.TaskEvent, NodeState]] = []
    errors: list[str] = []
    for node, answer in await ask_all(head, lambda agent: agent.FindTasks(lookup)):
        if isinstance(answer, str):
            errors.append(answer)
            continue
        for events in (answer.running, answer.pending, answer.ended):
            found.extend((event, node) for event in events)
    return found, errors


async def task(head: HeadView, task_id: bytes, with_log: bool = True) -> dict[str, object] | None:
    """The task's latest attempt (and its earlier ones the nodes still keep), with its log
    lines; None when no node knows it."""
    mine, errors = await _events(head, pb.TaskLookup(task_id=task_id))
    if not mine:
        return None
    views = sorted((_event_view(event, node) for event, node in mine), key=lambda v: (v["attempt"], v["ended"] or 1e18))
    latest = views[-1]
    detail: dict[str, object] = {**latest, "attempts": views[:-1], "errors": errors}
    if with_log:
        detail["log"] = await _log_of(head, latest)
    return detail


async def _log_of(head: HeadView, view: dict[str, object]) -> dict[str, object]:
    pid, node = int(view["worker_pid"]), str(view["node_address"] or view["node_id"])  # type: ignore[call-overload]
    if not pid or not node:
        return {"error": "it never reached a worker: it wrote no lines"}
    request = pb.TaskLogRequest(node=node, pid=pid, task_id=bytes.fromhex(str(view["task_id"])))
    try:
        reply = await task_log(head, request)
    except NodeNotFound as missing:  # its node is gone
        return {"error": str(missing)}
    if not reply.found and not reply.error:
        why = (
            "an async actor's calls run together and are not told apart: its actor's page has its worker's log"
            if view["actor_id"] else "it keeps the offsets of its latest tasks' lines only"
        )
        return {"error": f"worker pid {pid} keeps no lines of this task: {why}"}
    return {"out": reply.out, "err": reply.err, "truncated": reply.truncated, "error": reply.error}


async def actor(head: HeadView, actor_id: bytes) -> dict[str, object] | None:
    """The actor's record, its latest calls, and the end of its worker's log files."""
    record = head.actors.actors.get(actor_id)
    if record is None:
        return None
    info, spec = record.info, record.spec
    names = {pb.PENDING: "pending", pb.ALIVE: "alive", pb.RESTARTING: "restarting", pb.DEAD: "dead"}
    events, errors = await _events(head, pb.TaskLookup(actor_id=actor_id, limit=ACTOR_CALLS_SHOWN))
    calls = sorted(
        (_event_view(event, node) for event, node in events),
        key=lambda v: -float(v["ended"] or v["scheduled"] or v["submitted"]),  # type: ignore[arg-type]
    )[:ACTOR_CALLS_SHOWN]
    node = head.nodes.get(info.node_id)
    detail: dict[str, object] = {
        "actor_id": actor_id.hex(),
        "class_name": spec.class_name,
        "name": spec.name,
        "namespace": spec.namespace,
        "state": names.get(info.state, str(info.state)),
        "node_id": info.node_id.hex(),
        "node_address": node.info.address if node is not None else "",
        "pid": info.pid,
        "worker_id": info.worker_id.hex(),
        "restarts": info.num_restarts,
        "max_restarts": spec.max_restarts,
        "detached": spec.detached,
        "death_cause": info.death_cause,
        "job_id": info.job_id.hex(),
        "required": dict(info.required.quantities),
        "calls": calls,
        "errors": errors,
        "log": await _actor_log(head, info, node),
    }
    return detail


async def _actor_log(head: HeadView, info: pb.ActorInfo, node: NodeState | None) -> dict[str, object]:
    if not info.pid or not info.worker_id:
        return {"error": "it has no worker now"}
    if node is None or not node.alive:
        return {"error": f"its node {ids.short(info.node_id)} is gone, and its log files with it"}
    agent = head.actors.channels.node_agent(node.info.address)
    stem = f"worker-{info.worker_id.hex()[:12]}-{info.pid}"

    async def tail(name: str) -> str:
        try:
            reply: pb.TailReply = await agent.TailLog(
                pb.TailRequest(name=name, lines=ACTOR_LOG_LINES), timeout=ASK_TIMEOUT
            )
            return reply.text
        except grpc.aio.AioRpcError as error:
            return f"({name} could not be read: {error.details() or error.code().name})"

    out, err = await asyncio.gather(tail(stem + ".out"), tail(stem + ".err"))
    return {"out": out, "err": err, "files": [stem + ".out", stem + ".err"], "error": ""}
