"""The rows the state API returns: one dataclass per kind of resource, with Ray's columns.

Each column says whether it can be filtered on and whether only ``detail=True`` returns it, as
Ray's ``state_column`` does; a row reads as an object (``task.state``) or, for code written
against older Ray, as a dict (``task["state"]``). Ids are hex strings, times milliseconds since
the epoch. A column ember does not record holds None.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar


def column(*, filterable: bool, detail: bool = False) -> Any:
    """A column: detail-only columns default to None (a plain listing leaves them out)."""
    metadata = {"filterable": filterable, "detail": detail}
    if detail:
        return field(default=None, metadata=metadata)
    return field(metadata=metadata)


@dataclass
class StateSchema:
    """What every row offers besides its columns."""

    resource: ClassVar[str] = ""  # the CLI's name for the kind: tasks, actors, ...

    @classmethod
    def columns(cls, detail: bool = True) -> list[str]:
        return [f.name for f in dataclasses.fields(cls) if detail or not f.metadata.get("detail")]

    @classmethod
    def filterable_columns(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls) if f.metadata.get("filterable")]

    @classmethod
    def column_types(cls) -> dict[str, str]:
        return {f.name: str(f.type) for f in dataclasses.fields(cls)}

    def asdict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)

    def __setitem__(self, key: str, value: Any) -> None:
        setattr(self, key, value)

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key, default)


@dataclass
class TaskState(StateSchema):
    """A task (an attempt of it), an actor task, or an actor's creation (``A.__init__``).

    ``state``: PENDING_ARGS_AVAIL (waiting for its arguments), PENDING_NODE_ASSIGNMENT
    (waiting for a worker), RUNNING (sent to its worker), FINISHED or FAILED."""

    resource: ClassVar[str] = "tasks"

    task_id: str = column(filterable=True)
    attempt_number: int = column(filterable=True)
    name: str = column(filterable=True)
    state: str = column(filterable=True)
    job_id: str = column(filterable=True)
    actor_id: str | None = column(filterable=True)
    type: str = column(filterable=True)  # NORMAL_TASK, ACTOR_TASK, ACTOR_CREATION_TASK
    func_or_class_name: str = column(filterable=True)
    parent_task_id: str | None = column(filterable=True)  # not recorded by ember: None
    node_id: str | None = column(filterable=True)
    worker_id: str | None = column(filterable=True)
    worker_pid: int | None = column(filterable=True)
    error_type: str | None = column(filterable=True)
    language: str | None = column(filterable=True, detail=True)
    required_resources: dict[str, float] | None = column(filterable=False, detail=True)
    placement_group_id: str | None = column(filterable=True, detail=True)
    creation_time_ms: int | None = column(filterable=False, detail=True)
    start_time_ms: int | None = column(filterable=False, detail=True)
    end_time_ms: int | None = column(filterable=False, detail=True)
    error_message: str | None = column(filterable=False, detail=True)


@dataclass
class ActorState(StateSchema):
    """An actor. ``state``: PENDING_CREATION, ALIVE, RESTARTING or DEAD."""

    resource: ClassVar[str] = "actors"

    actor_id: str = column(filterable=True)
    class_name: str = column(filterable=True)
    state: str = column(filterable=True)
    job_id: str = column(filterable=True)
    name: str | None = column(filterable=True)
    node_id: str | None = column(filterable=True)
    pid: int | None = column(filterable=True)
    ray_namespace: str | None = column(filterable=True)
    required_resources: dict[str, float] | None = column(filterable=False, detail=True)
    death_cause: dict[str, Any] | None = column(filterable=False, detail=True)
    is_detached: bool | None = column(filterable=False, detail=True)
    placement_group_id: str | None = column(filterable=True, detail=True)
    repr_name: str | None = column(filterable=True, detail=True)
    num_restarts: int | None = column(filterable=False, detail=True)
    num_restarts_due_to_node_preemption: int | None = column(filterable=False, detail=True)


@dataclass
class NodeState(StateSchema):
    """A node. ``state``: ALIVE or DEAD (``state_message`` says why)."""

    resource: ClassVar[str] = "nodes"

    node_id: str = column(filterable=True)
    node_ip: str = column(filterable=True)
    is_head_node: bool = column(filterable=True)
    state: str = column(filterable=True)
    state_message: str | None = column(filterable=False)
    node_name: str = column(filterable=True)
    resources_total: dict[str, float] = column(filterable=False)
    labels: dict[str, str] = column(filterable=False)


@dataclass
class ObjectState(StateSchema):
    """A reference a driver or worker holds. ``reference_type``: LOCAL_REFERENCE,
    USED_BY_PENDING_TASK, CAPTURED_IN_OBJECT, ACTOR_HANDLE, UNKNOWN_STATUS (held only to
    rebuild a lost result) or PINNED_IN_MEMORY (its owner holds no ref, and keeps it for the
    processes that borrow it); ``object_size`` is -1 while unknown there. ``call_site`` is
    "disabled" unless its owner records call sites (``EMBER_RECORD_CALL_SITES=1``)."""

    resource: ClassVar[str] = "objects"

    object_id: str = column(filterable=True)
    object_size: int = column(filterable=True)
    task_status: str = column(filterable=True)
    attempt_number: int = column(filterable=True)
    reference_type: str = column(filterable=True)
    call_site: str = column(filterable=True)
    type: str = column(filterable=True)  # DRIVER, WORKER
    pid: int = column(filterable=True)
    ip: str = column(filterable=True)


@dataclass
class PlacementGroupState(StateSchema):
    """A placement group. ``state``: PENDING, CREATED, REMOVED or RESCHEDULING."""

    resource: ClassVar[str] = "placement-groups"

    placement_group_id: str = column(filterable=True)
    name: str = column(filterable=True)
    creator_job_id: str = column(filterable=True)
    state: str = column(filterable=True)
    bundles: list[dict[str, Any]] | None = column(filterable=False, detail=True)
    is_detached: bool | None = column(filterable=True, detail=True)
    stats: dict[str, Any] | None = column(filterable=False, detail=True)


SCHEMAS: dict[str, type[StateSchema]] = {
    schema.resource: schema
    for schema in (TaskState, ActorState, NodeState, ObjectState, PlacementGroupState)
}
