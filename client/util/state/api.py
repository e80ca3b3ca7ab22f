"""``list_tasks``, ``list_actors``, ``list_nodes``, ``list_objects``, ``list_placement_groups`` and
``summarize_tasks``: what the cluster is doing, read from where it is known.

Nodes, actors and placement groups are the head's own records. Tasks are what their owners
report to their node agents every couple of seconds (so a task shows up, and changes state,
within about two seconds, as Ray's task events do), gathered from every node by the head.
Objects are asked of every driver and worker when the call is made. A node or process that
cannot be asked in time makes the call fail with ``StateApiError`` (or, with
``raise_on_missing_output=False``, a warning), as Ray's does.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from typing import Any

from ember.runtime.wire.protocol import ember_pb2 as pb
from ember.util.state import filters as row_filters
from ember.util.state import head_query
from ember.util.state.head_query import StateApiError
from ember.util.state.schema import (
    ActorState,
    NodeState,
    ObjectState,
    PlacementGroupState,
    StateSchema,
    TaskState,
)

DEFAULT_LIMIT = 100
DEFAULT_TIMEOUT = 30

TASK_STATES = {
    "pending_args": "PENDING_ARGS_AVAIL",
    "pending_resources": "PENDING_NODE_ASSIGNMENT",
    "running": "RUNNING",
    "finished": "FINISHED",
    "failed": "FAILED",
}
ACTOR_STATES = {pb.PENDING: "PENDING_CREATION", pb.ALIVE: "ALIVE", pb.RESTARTING: "RESTARTING", pb.DEAD: "DEAD"}
GROUP_STATES = {
    pb.PG_PENDING: "PENDING", pb.PG_CREATED: "CREATED", pb.PG_REMOVED: "REMOVED",
    pb.PG_RESCHEDULING: "RESCHEDULING",
}
Filters = Iterable[Sequence[Any]] | None


def _hex(value: bytes) -> str | None:
    return value.hex() if value else None


def _ms(seconds: float) -> int | None:
    return int(seconds * 1000) if seconds else None


class _Missing:
    """What a listing could not include: raised or warned about at the end, as Ray does."""

    def __init__(self, raise_on_missing_output: bool) -> None:
        self.strict = raise_on_missing_output
        self.failures: list[str] = []  # sources that could not be asked
        self.truncated: list[str] = []  # data a source left out
        self.notes: list[str] = []  # said, never raised (Ray's server-side warnings)

    def settle(self, what: str) -> None:
        problems = self.failures + self.truncated
        if problems and self.strict:
            raise StateApiError(
                f"could not get every {what} of the cluster: {'; '.join(problems)}. "
                "To accept a partial answer, pass raise_on_missing_output=False."
            )
        for message in problems + self.notes:
            warnings.warn(message, stacklevel=3)


def _listing(
    rows: list[Any],
    filter_list: list[row_filters.Filter],
    limit: int,
    detail: bool,
) -> list[Any]:
    matched = row_filters.apply(rows, filter_list)
    if len(matched) > limit:
        warnings.warn(
            f"Limit last {limit} entries (Total {len(matched)}). Use filters to reduce the "
            "amount of data to return or set a higher limit to see all data.",
            stacklevel=3,
        )
    return row_filters.trim(matched[:limit], detail)


def _check_limit(limit: int) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0:
        raise ValueError(f"limit must be an int > 0, got {limit!r}")


# ------------------------------------------------------------------------------------ actors


def _actors(address: str | None, timeout: float) -> list[pb.ActorInfo]:
    reply: pb.ActorList = head_query.ask("ListActors", pb.Empty(), address, timeout)
    return list(reply.actors)


def _actor_row(info: pb.ActorInfo) -> ActorState:
    return ActorState(
        actor_id=info.actor_id.hex(),
        class_name=info.class_name,
        state=ACTOR_STATES.get(info.state, "DEAD"),
        job_id=info.job_id.hex(),
        name=info.name,
        node_id=_hex(info.node_id),
        pid=info.pid or None,
        ray_namespace=info.namespace,
        required_resources=dict(info.required.quantities),
        death_cause={"actor_died_error_context": {"error_message": info.death_cause}}
        if info.death_cause else None,
        is_detached=info.detached,
        placement_group_id=_hex(info.placement_group_id),
        repr_name="",
        num_restarts=info.num_restarts,
        num_restarts_due_to_node_preemption=info.num_restarts_due_to_drain,
    )


def list_actors(
    address: str | None = None,
    filters: Filters = None,
    limit: int = DEFAULT_LIMIT,
    timeout: int = DEFAULT_TIMEOUT,
    detail: bool = False,
    raise_on_missing_output: bool = True,
    _explain: bool = False,
) -> list[ActorState]:
    """Every actor the head knows, dead ones included, as ``ActorState`` rows."""
    checked = _checked(ActorState, filters, limit)
    rows = [_actor_row(info) for info in _actors(address, timeout)]
    return _listing(rows, checked, limit, detail)


# ------------------------------------------------------------------------------------ nodes


def list_nodes(
    address: str | None = None,
    filters: Filters = None,
    limit: int = DEFAULT_LIMIT,
    timeout: int = DEFAULT_TIMEOUT,
    detail: bool = False,
    raise_on_missing_output: bool = True,
    _explain: bool = False,
) -> list[NodeState]:
    """Every node that joined, dead ones included, as ``NodeState`` rows."""
    checked = _checked(NodeState, filters, limit)
    view: pb.ClusterView = head_query.ask("GetClusterView", pb.Empty(), address, timeout)
    rows = [
        NodeState(
            node_id=node.info.node_id.hex(),
            node_ip=node.info.host,
            is_head_node=node.info.is_head_node,
            state="ALIVE" if node.alive else "DEAD",
            state_message=node.death_cause or None,
            node_name=node.info.host,
            resources_total=dict(node.info.total.quantities),
            labels=dict(node.info.labels),
        )
        for node in view.nodes
    ]
    return _listing(rows, checked, limit, detail)


# ------------------------------------------------------------------------------------ groups


def group_row(group: pb.PlacementGroupInfo) -> PlacementGroupState:
    spec = group.spec
    nodes = list(group.bundle_nodes)
    return PlacementGroupState(
        placement_group_id=spec.placement_group_id.hex(),
        name=spec.name,
        creator_job_id=spec.job_id.hex(),
        state=GROUP_STATES.get(group.state, "PENDING"),
        bundles=[
            {
                "bundle_id": f"{spec.placement_group_id.hex()}-{index}",
                "node_id": _hex(nodes[index]) if index < len(nodes) else None,
                "unit_resources": dict(bundle.quantities),
            }
            for index, bundle in enumerate(spec.bundles)
        ],
        is_detached=spec.detached,
        stats={
            "scheduling_state": group.scheduling_state,
            "scheduling_attempt": group.scheduling_attempts,
            "end_to_end_creation_latency_ms": group.creation_seconds * 1000,
        },
    )


def list_placement_groups(
    address: str | None = None,
    filters: Filters = None,
    limit: int = DEFAULT_LIMIT,
    timeout: int = DEFAULT_TIMEOUT,
    detail: bool = False,
    raise_on_missing_output: bool = True,
    _explain: bool = False,
) -> list[PlacementGroupState]:
    """The placement groups the head knows, as ``PlacementGroupState`` rows."""
    checked = _checked(PlacementGroupState, filters, limit)
    reply: pb.PlacementGroupList = head_query.ask("ListPlacementGroups", pb.Empty(), address, timeout)
    rows = [group_row(group) for group in reply.groups]
    return _listing(rows, checked, limit, detail)


# ------------------------------------------------------------------------------------ objects


def list_objects(
    address: str | None = None,
    filters: Filters = None,
    limit: int = DEFAULT_LIMIT,
    timeout: int = DEFAULT_TIMEOUT,
    detail: bool = False,
    raise_on_missing_output: bool = True,
    _explain: bool = False,
) -> list[ObjectState]:
    """Every reference every driver and worker holds, as ``ObjectState`` rows (one object
    held by three processes is three rows, as in Ray)."""
    checked = _checked(ObjectState, filters, limit)
    reply: pb.ClusterObjects = head_query.ask("ListObjects", pb.Empty(), address, timeout)
    missing = _Missing(raise_on_missing_output)
    missing.failures += list(reply.errors)
    rows = []
    # A ref's call site is known to its owner only: borrowers' rows show the owner's.
    made_at = {
        view.object_id: view.call_site
        for process in reply.processes for view in process.objects
        if view.owner_address == process.address and view.call_site
    }
    for process in reply.processes:
        if process.error:
            missing.failures.append(process.error)
            continue
        if process.omitted:
            missing.truncated.append(
                f"pid {process.pid} holds {process.omitted} more references than it lists"
            )
        rows += [
            ObjectState(
                object_id=view.object_id.hex(),
                object_size=view.size,
                task_status=view.task_status,
                attempt_number=view.attempt,
                reference_type=view.reference_type,
                call_site=view.call_site or made_at.get(view.object_id, "disabled"),
                type=process.kind,
                pid=process.pid,
                ip=process.host,
            )
            for view in process.objects
        ]
    missing.settle("object reference")
    return _listing(rows, checked, limit, detail)


# ------------------------------------------------------------------------------------ tasks


def _task_row(event: pb.TaskEvent, actors: dict[bytes, pb.ActorInfo]) -> TaskState:
    state = TASK_STATES.get(event.state, event.state.upper())
    actor = actors.get(event.actor_id) if event.actor_id else None
    node_id, worker_id, pid = event.node_id, event.worker_id, event.worker_pid
    if actor is not None and not event.worker_pid:
        node_id, worker_id, pid = actor.node_id, actor.worker_id, actor.pid
    ended = state in ("FINISHED", "FAILED")
    return TaskState(
        task_id=event.task_id.hex(),
        attempt_number=event.attempt,
        name=event.name,
        state=state,
        job_id=event.job_id.hex(),
        actor_id=_hex(event.actor_id),
        type=event.type or "NORMAL_TASK",
        func_or_class_name=event.func_name or event.name,
        parent_task_id=None,
        node_id=_hex(node_id),
        worker_id=_hex(worker_id),
        worker_pid=pid or None,
        error_type=event.error_type or None if state == "FAILED" else None,
        language="PYTHON",
        required_resources=dict(event.required.quantities),
        placement_group_id=None,
        creation_time_ms=_ms(event.created),
        start_time_ms=_ms(event.time - event.run_seconds) if ended and event.run_seconds else None,
        end_time_ms=_ms(event.time) if ended else None,
        error_message=event.error or None,
    )


def _creation_row(info: pb.ActorInfo) -> TaskState:
    """An actor's creation, as Ray lists it: the task ``Class.__init__``."""
    if info.state == pb.ALIVE or (info.state == pb.DEAD and info.pid):
        state = "FINISHED"
    elif info.state == pb.DEAD:
        state = "FAILED"
    else:
        state = "PENDING_NODE_ASSIGNMENT"
    name = f"{info.class_name}.__init__"
    return TaskState(
        task_id=info.actor_id.hex(),
        attempt_number=info.num_restarts,
        name=name,
        state=state,
        job_id=info.job_id.hex(),
        actor_id=info.actor_id.hex(),
        type="ACTOR_CREATION_TASK",
        func_or_class_name=name,
        parent_task_id=None,
        node_id=_hex(info.node_id),
        worker_id=_hex(info.worker_id),
        worker_pid=info.pid or None,
        error_type="ACTOR_CREATION_FAILED" if state == "FAILED" else None,
        language="PYTHON",
        required_resources=dict(info.required.quantities),
        placement_group_id=_hex(info.placement_group_id),
        error_message=info.death_cause if state == "FAILED" else None,
    )


def _cluster_tasks(address: str | None, timeout: float, missing: _Missing) -> list[pb.TaskList]:
    reply: pb.ClusterTasks = head_query.ask("ListTasks", pb.Empty(), address, timeout)
    lists = []
    for node in reply.nodes:
        if node.error:
            missing.failures.append(node.error)
        else:
            lists.append(node.tasks)
    return lists


def list_tasks(
    address: str | None = None,
    filters: Filters = None,
    limit: int = DEFAULT_LIMIT,
    timeout: int = DEFAULT_TIMEOUT,
    detail: bool = False,
    raise_on_missing_output: bool = True,
    _explain: bool = False,
) -> list[TaskState]:
    """Tasks waiting, running and recently ended, actor tasks and actors' creations among
    them, as ``TaskState`` rows, oldest first. Each node keeps its latest thousand ended
    tasks; ``summarize_tasks`` counts every one."""
    checked = _checked(TaskState, filters, limit)
    missing = _Missing(raise_on_missing_output)
    lists = _cluster_tasks(address, timeout, missing)
    infos = _actors(address, timeout)
    actors = {info.actor_id: info for info in infos}
    rows: dict[tuple[bytes, int], TaskState] = {}
    dropped = 0
    for tasks in lists:
        dropped += tasks.ended_dropped
        _note_truncation(tasks, missing)
        # Ended last: a task listed as running in one report and ended in the next is ended.
        for event in list(tasks.pending) + list(tasks.running) + list(tasks.ended):
            rows[(event.task_id, event.attempt)] = _task_row(event, actors)
    if dropped:
        missing.notes.append(
            f"{dropped} ended tasks are no longer listed (each node keeps its latest 1000 ended "
            "tasks); summarize_tasks counts every one"
        )
    every = sorted(rows.values(), key=lambda row: row.creation_time_ms or 0)
    every = [_creation_row(info) for info in infos] + every
    missing.settle("task")
    return _listing(every, checked, limit, detail)


def _note_truncation(tasks: pb.TaskList, missing: _Missing) -> None:
    """Owners list a few hundred waiting and running tasks each; the counts hold them all."""
    waiting = tasks.counts.get("pending_args", 0) + tasks.counts.get("pending_resources", 0)
    running = tasks.counts.get("running", 0)
    if waiting > len(tasks.pending) or running > len(tasks.running):
        missing.truncated.append(
            f"a node lists {len(tasks.pending)} of its {waiting} waiting and {len(tasks.running)} "
            f"of its {running} running tasks"
        )


def summarize_tasks(
    address: str | None = None,
    timeout: int = DEFAULT_TIMEOUT,
    raise_on_missing_output: bool = True,
    _explain: bool = False,
) -> dict[str, Any]:
    """Tasks by name and state, as Ray's ``summarize_tasks``: ``{"cluster": {"summary":
    {name: {"func_or_class_name", "type", "state_counts"}}, "total_tasks",
    "total_actor_tasks", "total_actor_scheduled", "summary_by": "func_name"}}``. Ended tasks
    are counted since each node agent started, every one of them."""
    missing = _Missing(raise_on_missing_output)
    counts: list[tuple[str, str, str, int]] = []
    for tasks in _cluster_tasks(address, timeout, missing):
        for counted in list(tasks.live_counts) + list(tasks.ended_counts):
            counts.append((counted.name, counted.type, counted.state, counted.count))
    for info in _actors(address, timeout):
        row = _creation_row(info)
        counts.append((row.name, row.type, row.state, 1))
    summary: dict[str, dict[str, Any]] = {}
    totals = {"NORMAL_TASK": 0, "ACTOR_TASK": 0, "ACTOR_CREATION_TASK": 0}
    for name, kind, state, count in counts:
        entry = summary.setdefault(name, {"func_or_class_name": name, "type": kind, "state_counts": {}})
        entry["state_counts"][state] = entry["state_counts"].get(state, 0) + count
        totals[kind] = totals.get(kind, 0) + count
    missing.settle("task")
    return {
        "cluster": {
            "summary": summary,
            "total_tasks": totals["NORMAL_TASK"],
            "total_actor_tasks": totals["ACTOR_TASK"],
            "total_actor_scheduled": totals["ACTOR_CREATION_TASK"],
            "summary_by": "func_name",
        }
    }


def _checked(schema: type[StateSchema], given: Filters, limit: int) -> list[row_filters.Filter]:
    _check_limit(limit)
    return row_filters.check(schema, given)


# ------------------------------------------------------------------------------- one by id


def _id_text(value: object, what: str) -> str:
    """A task's or actor's id as hex: given as hex, or as an ObjectRef (its task's)."""
    task_id = getattr(value, "task_id", None)
    if callable(task_id):
        value = task_id()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, str):
        return value.lower()
    raise TypeError(f"a {what} id is a hex string or an ObjectRef, not {type(value).__name__}")


def get_task(
    id: object, address: str | None = None, timeout: int = DEFAULT_TIMEOUT, _explain: bool = False
) -> TaskState | None:
    """Task ``id``'s latest attempt (a hex id, or an ObjectRef it returned), None when no node
    keeps it; as Ray's ``get_task``. The dashboard's task page adds its log lines."""
    wanted = _id_text(id, "task")
    rows = list_tasks(
        address, filters=[("task_id", "=", wanted)], limit=10_000, timeout=timeout, detail=True,
        raise_on_missing_output=False,
    )
    return max(rows, key=lambda row: row.attempt_number) if rows else None


def get_actor(
    id: object, address: str | None = None, timeout: int = DEFAULT_TIMEOUT, _explain: bool = False
) -> ActorState | None:
    """Actor ``id`` (hex), None when the head knows no such actor; as Ray's ``get_actor``."""
    wanted = _id_text(id, "actor")
    rows = list_actors(address, filters=[("actor_id", "=", wanted)], timeout=timeout, detail=True)
    return rows[0] if rows else None
