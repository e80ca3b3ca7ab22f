"""What a driver or worker holds references to, and why: for ``ember.util.state.list_objects``
and ``ember memory``.

Asked for only when someone looks (``CoreWorker.ListObjects``, on the I/O thread, where the
tables it reads live), so it costs the task path nothing. A ref counted here may be held by
the program, by a task this process submitted that has not run yet (its arguments), inside a
value this process holds or sent away, or by a finished task kept to be run again (lineage).
Its ``reference_type`` is the first of those that applies, with Ray's names; ``reasons`` lists
all of them. An object this process owns and no longer refers to, which other processes
borrow, is listed too (``PINNED_IN_MEMORY``, reason ``BORROWED``, with the borrowers): that is
the memory a dropped-but-borrowed ref keeps.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ember.runtime.core.call_sites import DISABLED
from ember.runtime.core.process_metrics import RAY_STATES
from ember.runtime.objects import ids
from ember.runtime.wire.protocol import ember_pb2 as pb

if TYPE_CHECKING:
    from ember.runtime.core.owner import Owner
    from ember.runtime.core.task_record import TaskRecord

LISTED = 10_000  # refs one process lists at most
NAMED_HOLDERS = 5  # pending tasks or containing objects named per object, at most

LOCAL_REFERENCE = "LOCAL_REFERENCE"
USED_BY_PENDING_TASK = "USED_BY_PENDING_TASK"
CAPTURED_IN_OBJECT = "CAPTURED_IN_OBJECT"
PINNED_IN_MEMORY = "PINNED_IN_MEMORY"  # no ref here: its owner (this process) keeps it for others
ACTOR_HANDLE = "ACTOR_HANDLE"
UNKNOWN_STATUS = "UNKNOWN_STATUS"  # held only to rebuild a lost result (lineage)
# Reasons (``ObjectView.reasons``) beyond the reference types above.
LINEAGE = "LINEAGE"
BORROWED = "BORROWED"


class _Holders:
    """Who, among this process's tasks and values, holds refs to which objects."""

    def __init__(self) -> None:
        self.counts: dict[bytes, int] = {}
        self.names: dict[bytes, list[str | bytes]] = {}

    def add(self, refs: Iterable[object], holder: str | bytes) -> None:
        for ref in refs:
            object_id = getattr(ref, "_id", None)
            if object_id is None:
                continue
            self.counts[object_id] = self.counts.get(object_id, 0) + 1
            named = self.names.setdefault(object_id, [])
            if len(named) < NAMED_HOLDERS and holder not in named:
                named.append(holder)

    def count(self, object_id: bytes) -> int:
        return self.counts.get(object_id, 0)


def _task_name(task: TaskRecord) -> str:
    return f"{task.options.name} {task.task_id.hex()}"


def list_objects(owner: Owner, kind: str, node_id: bytes) -> pb.ProcessObjects:
    counts = owner.references.snapshot()
    by_tasks = _Holders()  # refs held by unfinished tasks, as their arguments
    for task in list(owner.tasks.values()):
        name = _task_name(task)
        by_tasks.add(task.deps, name)
        by_tasks.add(task.nested, name)
    by_values = _Holders()  # refs held inside values stored here or sent away
    store = owner.store
    for object_id in counts:
        value = store.get(object_id)
        if value is not None and value.contained:
            by_values.add(value.contained, object_id)
    by_values.add(owner.borrowing.escaped.values(), b"")  # inside a value that left
    by_lineage = _Holders()  # arguments kept to run a finished task again
    for task in list(owner.lineage.values()):
        name = _task_name(task)
        by_lineage.add(task.deps, name)
        by_lineage.add(task.nested, name)
    borrowers = owner.borrowing.borrowers
    reply = pb.ProcessObjects(
        pid=os.getpid(), kind=kind, address=owner.address,
        host=owner.address.rpartition(":")[0], node_id=node_id, job_id=owner.job_id,
    )
    for object_id, count in counts.items():
        if len(reply.objects) >= LISTED:
            reply.omitted += 1
            continue
        held_by_tasks = by_tasks.count(object_id)
        held_in_values = by_values.count(object_id)
        held_by_lineage = by_lineage.count(object_id)
        reasons = []
        if count > held_by_tasks + held_in_values + held_by_lineage:
            reasons.append(LOCAL_REFERENCE)
        if held_by_tasks:
            reasons.append(USED_BY_PENDING_TASK)
        if held_in_values:
            reasons.append(CAPTURED_IN_OBJECT)
        if held_by_lineage:
            reasons.append(LINEAGE)
        kind_of_ref = reasons[0] if reasons and reasons[0] != LINEAGE else UNKNOWN_STATUS
        view = _view(owner, object_id, kind_of_ref)
        view.reasons.extend(reasons)
        view.pending_tasks.extend(str(name) for name in by_tasks.names.get(object_id, ()))
        view.captured_in.extend(
            held for held in by_values.names.get(object_id, ()) if isinstance(held, bytes) and held
        )
        reply.objects.append(view)
    # Owned here, no ref left here, kept for the processes that borrow them.
    for object_id in [oid for oid in list(borrowers) if oid not in counts]:
        if len(reply.objects) >= LISTED:
            reply.omitted += 1
            continue
        reply.objects.append(_view(owner, object_id, PINNED_IN_MEMORY))
    for view in reply.objects:
        holders = borrowers.get(view.object_id)
        if holders:
            view.reasons.append(BORROWED)
            view.borrowers.extend(sorted(holders))
    for actor_id in owner.handles.snapshot():
        if len(reply.objects) >= LISTED:
            reply.omitted += 1
            continue
        reply.objects.append(pb.ObjectView(
            object_id=actor_id, size=-1, reference_type=ACTOR_HANDLE, task_status="NIL",
            owner_address=owner.address, reasons=[ACTOR_HANDLE],
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
        view.in_memory_store = value.location is None
    task = owner.tasks.get(ids.task_of(object_id)) if lender is None else None
    if task is not None:
        view.task_status = RAY_STATES.get(task.state, "FINISHED")
        view.attempt = task.attempt
        view.call_site = task.call_site
    elif not view.task_status:
        # Borrowed and not fetched here: this process cannot know how its task fares.
        view.task_status = "NIL" if lender is not None else "FINISHED"
    if lender is None and not view.call_site:
        view.call_site = getattr(value, "call_site", "") if value is not None else ""
        if not view.call_site and not owner.record_call_sites:
            view.call_site = DISABLED
    return view
