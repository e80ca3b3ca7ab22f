"""Objects that moved: a drained node copied them to another node before it went away.

Processes remember where each large value lives (``StoredValue.location``), and so do the
resolved arguments of tasks that have not run yet. When a drained node tells an owner where its
objects went, the owner points all of these at the new copies, and forwards the news to the
borrowers that fetched the old locations; a borrower updates the same things. Without this a
``get`` after the drained node stopped would look for the object where it no longer is.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from ember.runtime.wire.protocol import ember_pb2 as pb

if TYPE_CHECKING:
    from ember.runtime.core.memory_store import MemoryStore
    from ember.runtime.core.task_record import TaskRecord


def relocate(
    store: MemoryStore, tasks: Iterable[TaskRecord], moved: dict[bytes, pb.ObjectLocation]
) -> list[bytes]:
    """Point stored values and tasks' arguments at the new copies; returns the ids of the
    objects this process holds no value for."""
    unknown = []
    for object_id, location in moved.items():
        value = store.get(object_id)
        if value is None or value.location is None:
            unknown.append(object_id)
            continue
        # A new message, not an update in place: the user's thread may be reading the old one.
        new = pb.ObjectLocation()
        new.CopyFrom(location)
        value.location = new
    for task in tasks:
        for argument in task.arg_values or ():
            if argument is not None and argument.id in moved and argument.HasField("location"):
                argument.location.CopyFrom(moved[argument.id])
    return unknown


def by_borrower(
    borrowers: dict[bytes, set[str]], moved: dict[bytes, pb.ObjectLocation]
) -> dict[str, pb.ObjectsMovedRequest]:
    """What to tell each borrower of the moved objects."""
    requests: dict[str, pb.ObjectsMovedRequest] = {}
    for object_id, location in moved.items():
        for borrower in borrowers.get(object_id, ()):
            request = requests.get(borrower)
            if request is None:
                request = requests[borrower] = pb.ObjectsMovedRequest(from_owner=True)
            request.objects.add(id=object_id, location=location)
    return requests
