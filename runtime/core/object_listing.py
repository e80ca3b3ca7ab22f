"""What a driver or worker holds references to, for ``ember.util.state.list_objects``.

Asked for only when someone looks (``CoreWorker.ListObjects``, on the I/O thread, where the
tables it reads live), so it costs the task path nothing. A ref counted here may be held by
the program, by a task this process submitted that has not run yet (its arguments), or inside
a value this process holds; it is listed under the first of those that applies, with Ray's
names for them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ember.runtime.core.process_metrics import RAY_STATES
from ember.runtime.objects import ids
from ember.runtime.wire.protocol import ember_pb2 as pb

if TYPE_CHECKING:
    from ember.runtime.core.owner import Owner

LISTED = 10_000  # refs one process lists at most

LOCAL_REFERENCE = "LOCAL_REFERENCE"
USED_BY_PENDING_TASK = "USED_BY_PENDING_TASK"
CAPTURED_IN_OBJECT = "CAPTURED_IN_OBJECT"
ACTOR_HANDLE = "ACTOR_HANDLE"
UNKNOWN_STATUS = "UNKNOWN_STATUS"  # held only to rebuild a lost result (lineage)


def _count_refs(counts: dict[bytes, int], refs: Iterable[object]) -> None:
    for ref in refs:
        object_id = getattr(ref, "_id", None)
        if object_id is not None:
            counts[object_id] = counts.get(object_id, 0) + 1


def list_objects(owner: Owner, kind: str, node_id: bytes) -> pb.ProcessObjects:
    counts = owner.references.snapshot()
    by_tasks: dict[bytes, int] = {}  # refs held by unfinished tasks, as their arguments
    for task in owner.tasks.values():
        _count_refs(by_tasks, task.deps)
        _count_refs(by_tasks, task.nested)
    by_values: dict[bytes, int] = {}  # refs held inside values stored here or sent away
    store = owner.store
    for object_id in counts:
        value = store.get(object_id)
        if value is not None and value.contained:
            _count_refs(by_values, value.contained)
    _count_refs(by_values, owner.borrowing.escaped.values())
    by_lineage: dict[bytes, int] = {}  # arguments kept to run a finished task again
    for task in owner.lineage.values():
        _count_refs(by_lineage, task.deps)
        _count_refs(by_lineage, task.nested)
    reply = pb.ProcessObjects(
        pid=os.getpid(), kind=kind, address=owner.address,
        host=owner.address.rpartition(":")[0], node_id=node_id,
    )
    for object_id, count in counts.items():
        if len(reply.objects) >= LISTED:
            reply.omitted += 1
            continue
        held_by_tasks = by_tasks.get(object_id, 0)
        held_in_values = by_values.get(object_id, 0)
        if count > held_by_tasks + held_in_values + by_lineage.get(object_id, 0):
            kind_of_ref = LOCAL_REFERENCE
        elif held_by_tasks:
            kind_of_ref = USED_BY_PENDING_TASK
        elif held_in_values:
            kind_of_ref = CAPTURED_IN_OBJECT
        else:
            kind_of_ref = UNKNOWN_STATUS
        reply.objects.append(_view(owner, object_id, kind_of_ref))
    for actor_id in owner.handles.snapshot():
        if len(reply.objects) >= LISTED:
            reply.omitted += 1
            continue
        reply.objects.append(pb.ObjectView(
            object_id=actor_id, size=-1, reference_type=ACTOR_HANDLE, task_status="NIL",
            owner_address=owner.address,
        ))
    return reply


def _view(owner: Owner, object_id: bytes, reference_type: str) -> pb.ObjectView:
    view = pb.ObjectView(object_id=object_id, reference_type=reference_type, size=-1)
    lender = owner.borrowing.borrowed.get(object_id)  # the owner of a borrowed ref
    view.owner_address = lender if lender is not None else owner.address
    value = owner.store.get(object_id)
    if value is not None:
        view.size = value.location.size if value.location is not None else len(value.data)
        view.task_status = "FINISHED"
    task = owner.tasks.get(ids.task_of(object_id)) if lender is None else None
    if task is not None:
        view.task_status = RAY_STATES.get(task.state, "FINISHED")
        view.attempt = task.attempt
    elif not view.task_status:
        # Borrowed and not fetched here: this process cannot know how its task fares.
        view.task_status = "NIL" if lender is not None else "FINISHED"
    return view
