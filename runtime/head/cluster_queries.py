"""What the head asks of every node agent at once, for the dashboard and ``ember logs``.

The head keeps the cluster's membership, not each node's workers, tasks or files: those are
asked for when someone looks, concurrently, with a short timeout, so that one slow or dead node
costs its own entry ("could not be asked"), never the whole answer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol, TypeVar

import grpc

from ember.runtime.head.actor_manager import ActorManager
from ember.runtime.head.events import EventLog
from ember.runtime.head.membership import JobState, NodeState
from ember.runtime.objects import ids
from ember.runtime.wire import resources
from ember.runtime.wire.protocol import ember_pb2 as pb

if TYPE_CHECKING:
    from ember.runtime.wire.protocol import ember_pb2_grpc as rpc_pb

T = TypeVar("T")
ASK_TIMEOUT = 5.0


class HeadView(Protocol):
    """What the queries read of the head (``head.Head``)."""

    session_dir: str
    metrics_address: str
    nodes: dict[bytes, NodeState]
    jobs: dict[bytes, JobState]
    events: EventLog
    actors: ActorManager

    def alive_nodes(self) -> list[NodeState]: ...


class NodeNotFound(Exception):
    pass


async def ask_all(
    head: HeadView, ask: Callable[[rpc_pb.NodeAgentStub], Awaitable[T]],
    only: Callable[[NodeState], bool] | None = None,
) -> list[tuple[NodeState, T | str]]:
    """``ask`` each live node's agent (those ``only`` picks, when given); each answer, or why
    there is none."""
    nodes = [node for node in head.alive_nodes() if only is None or only(node)]

    async def one(node: NodeState) -> T | str:
        try:
            return await asyncio.wait_for(ask(head.actors.channels.node_agent(node.info.address)), ASK_TIMEOUT)
        except grpc.aio.AioRpcError as error:
            return f"{node.describe()} could not be asked: {error.code().name} {error.details()}"
        except TimeoutError:
            return f"{node.describe()} did not answer within {ASK_TIMEOUT:g}s"

    answers = await asyncio.gather(*(one(node) for node in nodes))
    return list(zip(nodes, answers, strict=True))


def find_node(head: HeadView, name: str) -> NodeState:
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


async def cluster_logs(head: HeadView) -> pb.ClusterLogs:
    result = pb.ClusterLogs()
    for node, answer in await ask_all(head, lambda agent: agent.ListLogs(pb.Empty())):
        entry = result.nodes.add(node_id=node.node_id, node_address=node.info.address)
        if isinstance(answer, str):
            entry.error = answer
        else:
            entry.files.extend(answer.files)
    return result


async def tail(head: HeadView, request: pb.NodeTailRequest) -> pb.TailReply:
    node = find_node(head, request.node)
    agent = head.actors.channels.node_agent(node.info.address)
    reply: pb.TailReply = await agent.TailLog(request.tail, timeout=ASK_TIMEOUT)
    return reply


async def cluster_tasks(head: HeadView) -> pb.ClusterTasks:
    """Every node's tasks as its owners reported them (the state API's ``list_tasks``)."""
    result = pb.ClusterTasks()
    for node, answer in await ask_all(head, lambda agent: agent.ListTasks(pb.Empty())):
        entry = result.nodes.add(node_id=node.node_id, node_address=node.info.address)
        if isinstance(answer, str):
            entry.error = answer
        else:
            entry.tasks.CopyFrom(answer)
    return result


async def cluster_objects(head: HeadView) -> pb.ClusterObjects:
    """What every worker (asked through its node's agent) and every driver holds references
    to (the state API's ``list_objects``)."""
    result = pb.ClusterObjects()
    drivers = [job for job in head.jobs.values() if job.alive and job.driver_address]

    async def driver(job: JobState) -> pb.ProcessObjects:
        stub = head.actors.channels.core_worker(job.driver_address)
        try:
            answer: pb.ProcessObjects = await asyncio.wait_for(stub.ListObjects(pb.Empty()), ASK_TIMEOUT)
            return answer
        except (grpc.aio.AioRpcError, TimeoutError) as error:
            why = f"{error.code().name} {error.details()}" if isinstance(error, grpc.aio.AioRpcError) else (
                f"no answer within {ASK_TIMEOUT:g}s"
            )
            return pb.ProcessObjects(
                pid=job.pid, kind="DRIVER", address=job.driver_address,
                error=f"the driver of job {job.job_id.hex()} (pid {job.pid}) could not be asked: {why}",
            )

    nodes, driver_answers = await asyncio.gather(
        ask_all(head, lambda agent: agent.ListObjects(pb.Empty())),
        asyncio.gather(*(driver(job) for job in drivers)),
    )
    for _, answer in nodes:
        if isinstance(answer, str):
            result.errors.append(answer)
        else:
            result.processes.extend(answer.processes)
            result.stores.extend(answer.stores)
    result.processes.extend(driver_answers)
    return result


# ---------------------------------------------------------------------- the dashboard's views
# Plain dicts, ready for JSON: ids in hex, times in seconds since the epoch.


def _node_name(node: NodeState) -> str:
    return ids.short(node.node_id)


async def nodes(head: HeadView) -> list[dict[str, object]]:
    stores = dict(await ask_all(head, lambda agent: agent.GetStoreInfo(pb.Empty())))
    result = []
    for node in head.nodes.values():
        total = resources.to_float(node.total)
        free = resources.to_float(node.available)
        store = stores.get(node)
        entry: dict[str, object] = {
            "node_id": node.node_id.hex(),
            "name": _node_name(node),
            "address": node.info.address,
            "host": node.info.host,
            "hostname": node.info.hostname,
            "alive": node.alive,
            "death_cause": node.death_cause,
            "workers": node.num_workers,
            "labels": dict(node.info.labels),
            "resources": {k: v for k, v in total.items() if not k.startswith("node:")},
            "available": {k: v for k, v in free.items() if not k.startswith("node:")},
            "metrics_port": node.info.metrics_port,
            "seconds_since_report": round(time.monotonic() - node.last_seen, 1),
            "idle_seconds": round(node.idle_seconds, 1),
            "object_store_broken": node.store_broken,
        }
        if isinstance(store, pb.StoreInfo):
            entry["object_store"] = {
                "capacity": store.capacity, "used": store.used, "spilled": store.spilled,
                "objects": store.objects,
            }
        result.append(entry)
    return result


async def tasks(head: HeadView) -> dict[str, object]:
    ended: list[dict[str, object]] = []
    running: list[dict[str, object]] = []
    counts: dict[str, int] = {}
    errors = []
    for node, answer in await ask_all(head, lambda agent: agent.ListTasks(pb.Empty())):
        if isinstance(answer, str):
            errors.append(answer)
            continue
        for state, count in answer.counts.items():
            counts[state] = counts.get(state, 0) + count
        ended += [_task(event, node) for event in answer.ended]
        running += [_task(event, node) for event in answer.running]
    ended.sort(key=lambda t: -float(t["time"]))  # type: ignore[arg-type]
    finished = sum(1 for t in ended if t["state"] == "finished")
    return {
        "counts": counts,
        "recent_finished": finished,
        "recent_failed": len(ended) - finished,
        "running": running,
        "ended": ended[:500],
        "errors": errors,
    }


def _task(event: pb.TaskEvent, reporter: NodeState) -> dict[str, object]:
    return {
        "task_id": event.task_id.hex(),
        "name": event.name,
        "state": event.state,
        "time": event.time,
        "run_seconds": round(event.run_seconds, 6),
        "error": event.error,
        "attempt": event.attempt,
        "worker_pid": event.worker_pid,
        "node_address": event.node_address or reporter.info.address,
        "owner_pid": event.owner_pid,
    }


async def workers(head: HeadView) -> dict[str, object]:
    """Each node's workers, with the tasks their owners say run on them."""
    listed = await ask_all(head, lambda agent: agent.ListWorkers(pb.Empty()))
    running = (await tasks(head))["running"]
    by_worker: dict[tuple[str, int], list[str]] = {}
    for task in running:  # type: ignore[attr-defined]
        by_worker.setdefault((task["node_address"], task["worker_pid"]), []).append(task["name"])
    actors = {record.spec.actor_id: record for record in head.actors.actors.values()}
    result, errors = [], []
    for node, answer in listed:
        if isinstance(answer, str):
            errors.append(answer)
            continue
        for worker in answer.workers:
            record = actors.get(worker.actor_id) if worker.actor_id else None
            result.append({
                "node": _node_name(node),
                "node_address": node.info.address,
                "pid": worker.pid,
                "worker_id": worker.worker_id.hex(),
                "state": worker.state,
                "job_id": worker.job_id.hex(),
                "actor": record.describe() if record is not None else "",
                "owner": worker.owner,
                "age_seconds": round(worker.age_seconds, 1),
                "running": by_worker.get((node.info.address, worker.pid), []),
            })
    return {"workers": result, "errors": errors}


def actors(head: HeadView) -> list[dict[str, object]]:
    names = {pb.PENDING: "pending", pb.ALIVE: "alive", pb.RESTARTING: "restarting", pb.DEAD: "dead"}
    return [
        {
            "actor_id": record.spec.actor_id.hex(),
            "class_name": record.spec.class_name,
            "name": record.spec.name,
            "namespace": record.spec.namespace,
            "state": names[record.info.state],
            "restarts": record.info.num_restarts,
            "max_restarts": record.spec.max_restarts,
            "node": ids.short(record.info.node_id) if record.info.node_id else "",
            "pid": record.info.pid,
            "detached": record.spec.detached,
            "death_cause": record.info.death_cause,
        }
        for record in head.actors.actors.values()
    ]


RECENT_FAILED_TASKS = 50  # failed tasks the overview lists, newest first


async def overview(head: HeadView) -> dict[str, object]:
    """The cluster at a glance. Its object store figures are the bytes the stores hold, as the
    nodes last reported them (the ``object_store_memory`` resource is what the store may hold,
    which no task reserves); its failures are the head's events and the latest failed tasks, the
    same the *tasks* tab lists."""
    total: dict[str, int] = {}
    free: dict[str, int] = {}
    store = {"used": 0, "spilled": 0, "capacity": 0}
    tasks_failed = 0
    for node in head.alive_nodes():
        resources.add(total, node.total)
        resources.add(free, node.available)
        store["used"] += node.usage.store_used
        store["spilled"] += node.usage.store_spilled
        store["capacity"] += node.usage.store_capacity
        tasks_failed += node.usage.tasks_failed
    states = [str(a["state"]) for a in actors(head)]
    failed, errors = await recent_failed_tasks(head)
    return {
        "session_dir": head.session_dir,
        "nodes_alive": len(head.alive_nodes()),
        "nodes_dead": len(head.nodes) - len(head.alive_nodes()),
        "resources": {k: v for k, v in resources.to_float(total).items() if not k.startswith("node:")},
        "available": {k: v for k, v in resources.to_float(free).items() if not k.startswith("node:")},
        "jobs": [
            {"job_id": job.job_id.hex(), "driver_pid": job.pid, "alive": job.alive, "started": job.started}
            for job in head.jobs.values()
        ],
        "actors": {state: states.count(state) for state in sorted(set(states))},
        "events": [{"time": e.time, "message": e.message} for e in head.events.recent()],
        "metrics_address": head.metrics_address,
        "object_store": store,
        "tasks_failed": tasks_failed,
        "failed_tasks": failed,
        "errors": errors,
    }


async def recent_failed_tasks(head: HeadView) -> tuple[list[dict[str, object]], list[str]]:
    """The latest ``RECENT_FAILED_TASKS`` tasks that failed, newest first, from the tasks every
    node's agent keeps (``tasks``), and the nodes that could not be asked. Only nodes whose
    owners had a task fail are asked (their reports say so): the overview is the page left open,
    and a healthy cluster's is answered without asking any node."""
    failed: list[dict[str, object]] = []
    errors = []
    asked = await ask_all(
        head, lambda agent: agent.ListTasks(pb.Empty()), only=lambda node: node.usage.tasks_failed > 0
    )
    for node, answer in asked:
        if isinstance(answer, str):
            errors.append(answer)
            continue
        failed += [_task(event, node) for event in answer.ended if event.state == "failed"]
    failed.sort(key=lambda t: -float(t["time"]))  # type: ignore[arg-type]
    return failed[:RECENT_FAILED_TASKS], errors
