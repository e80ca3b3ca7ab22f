"""``ember.util.state``: Ray's state API — what the cluster's tasks, actors, nodes, objects and
placement groups are doing.

    from ember.util.state import list_tasks, summarize_tasks
    list_tasks(filters=[("state", "=", "RUNNING")], limit=10)
    summarize_tasks()["cluster"]["summary"]["f"]["state_counts"]   # {"FINISHED": 100}

It works from a driver, inside tasks and actors, and, given ``address`` (or with a cluster
``ember start`` runs here), from any process; the ``ember list`` and ``ember summary`` commands
print the same. ``memory_summary`` (``ember memory``) says where memory went: every live
object, where its copies are and why it is still alive.
"""

from ember.util.state.api import (
    get_actor,
    get_task,
    list_actors,
    list_nodes,
    list_objects,
    list_placement_groups,
    list_tasks,
    summarize_tasks,
)
from ember.util.state.head_query import StateApiError
from ember.util.state.memory import memory_report, memory_summary
from ember.util.state.schema import (
    ActorState,
    NodeState,
    ObjectState,
    PlacementGroupState,
    TaskState,
)

RayStateApiException = StateApiError

__all__ = [
    "ActorState",
    "NodeState",
    "ObjectState",
    "PlacementGroupState",
    "RayStateApiException",
    "StateApiError",
    "TaskState",
    "get_actor",
    "get_task",
    "list_actors",
    "list_nodes",
    "list_objects",
    "list_placement_groups",
    "list_tasks",
    "memory_report",
    "memory_summary",
    "summarize_tasks",
]
