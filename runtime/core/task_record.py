"""What an owner remembers about a task it submitted, from ``.remote()`` to its result.

A task waits in a ``ShapeQueue`` for a worker of its shape and runs on a ``Lease`` of one; the
records point at each other (a lease knows the tasks in flight on it, a task the lease it runs
on), so they live here together, below everything that moves tasks between them: the task
submitter (``task_submitter``), what decides what a result means (``task_manager``) and the
metrics that count them (``process_metrics``).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ember.runtime.objects import ids
from ember.runtime.wire import bundle_resources
from ember.runtime.wire.resources import UNIT, Shape, ShapeKey

if TYPE_CHECKING:
    from ember.runtime.objects.object_ref import ObjectRef
    from ember.runtime.wire.lease_client import LeaseClient
    from ember.runtime.wire.protocol import ember_pb2 as pb
    from ember.runtime.wire.task_channel import ChannelClient


@dataclass(frozen=True, slots=True)
class FunctionDescriptor:
    """A remote function as it travels: pickled once per process, cached by content hash."""

    name: str
    function_id: bytes
    data: bytes


def actor_call(name: str) -> FunctionDescriptor:
    """What an actor call carries in place of a function: a name (the actor's worker has the
    class, and the call names its method)."""
    return FunctionDescriptor(name, b"", b"")


@dataclass(frozen=True, slots=True)
class TaskOptions:
    """A task's options, resolved once per ``.options()`` call rather than per submission."""

    name: str
    shape: Shape
    key: ShapeKey
    num_returns: int = 1
    max_retries: int = 3
    # True (any exception), False, or the qualified names of the exception classes to retry.
    retry_exceptions: bool | tuple[str, ...] = False
    strategy: str = "DEFAULT"  # or "SPREAD"
    # The placement group it runs in (its shape then names the group's bundle resources), and
    # whether what it submits runs there too.
    placement_group: bytes = b""
    capture_child_tasks: bool = False
    # No strategy was given: a task that captures its children puts this one in its group.
    may_capture: bool = False
    # Node affinity and label selector, for lease requests; ``constraints_key`` keeps tasks
    # with different ones in different queues.
    constraints: pb.SchedulingConstraints | None = field(default=None, compare=False)
    constraints_key: tuple[object, ...] = ()
    # Runs of this function one worker may make before it is replaced (0: no limit).
    max_calls: int = 0
    # Its own runtime_env, canonical JSON with package URIs ("" : its parent's); the owner
    # merges it over the parent's (``Owner.environment_of``).
    runtime_env: str = ""
    # Its whole CPUs, a bundle's included: the threads its numerical libraries may use
    # (``cpu_threads``). Derived from ``shape`` when the options are made (``replace`` too),
    # not on every submission.
    threads: int = field(init=False, compare=False, default=0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "threads", bundle_resources.amount(self.shape, "CPU") // UNIT)


@dataclass(frozen=True, slots=True)
class ActorOptions:
    """An actor's options, resolved once per ``.options()`` call."""

    class_name: str
    shape: Shape  # what placing it needs
    hold: Shape  # what it keeps while alive
    max_restarts: int = 0
    max_task_retries: int = 0
    max_concurrency: int = 1
    is_async: bool = False
    name: str = ""
    namespace: str = ""
    detached: bool = False
    get_if_exists: bool = False
    placement_group: bytes = b""
    capture_child_tasks: bool = False
    may_capture: bool = False
    constraints: pb.SchedulingConstraints | None = field(default=None, compare=False)
    runtime_env: str = ""  # its own, as TaskOptions.runtime_env


# Task states, in the order a task passes through them.
RESOLVING = "resolving"  # waiting for its top-level ObjectRef arguments
QUEUED = "queued"  # waiting for a lease of its shape
RUNNING = "running"  # pushed to a worker
FINISHED = "finished"

# The method of the call an owner sends to end an actor nobody can call any more: queued behind
# the calls already made, it ends the actor host once they ran (``actor_host``).
TERMINATE = "__ember_terminate__"

_ABSENT = object()
_COUNTED = {RESOLVING: 0, QUEUED: 1, RUNNING: 2}  # the states a tally counts, as row indices


class TaskRecord:
    __slots__ = (
        "task_id",
        "function",
        "options",
        "args",
        "deps",
        "nested",
        "arg_values",
        "unresolved",
        "return_ids",
        "attempt",
        "state",
        "tally",
        "row",
        "lease",
        "estimate",
        "cancelled",
        "force_cancel",
        "last_failure",
        "actor_id",
        "method",
        "queue",
        "submitted",
        "created",
        "scheduled",
        "preemptions",
        "runtime_env",
        "call_site",
    )

    def __init__(
        self,
        task_id: bytes,
        function: FunctionDescriptor,
        options: TaskOptions,
        args: bytes,
        deps: list[ObjectRef],
        nested: list[ObjectRef],
        return_ids: list[bytes],
        tally: LiveTasks | None = None,
    ) -> None:
        self.task_id = task_id
        self.function = function
        self.options = options
        self.args = args
        self.deps = deps
        self.nested = nested
        self.arg_values: list[pb.ObjectValue | None] | None = None
        self.unresolved = 0
        self.return_ids = return_ids
        self.attempt = 0
        # Read freely; changed only through ``move`` (which keeps the owner's tally). Counted
        # from its first move, made on the owner's I/O thread (records are made on the caller's).
        self.state = RESOLVING
        self.tally = tally
        self.row: list[int] | None = None  # its (name, actor call) row of the tally's counts
        self.lease: Lease | None = None
        self.estimate = 0.0
        self.cancelled = False
        self.force_cancel = False
        self.last_failure = ""
        self.actor_id: bytes | None = None  # set on actor calls
        self.method = ""
        self.queue: ShapeQueue | None = None  # the queue it waits in, once queued
        self.submitted = time.monotonic()
        # Seconds since the epoch, for the timeline: when it was submitted, and when it was
        # last sent to a worker (0: not yet). Wall-clock stamps, not converted from the
        # monotonic one, so that they compare with the worker's own.
        self.created = time.time()
        self.scheduled = 0.0
        # Attempts stopped because their node was drained: they use up no retry.
        self.preemptions = 0
        # The runtime_env it runs in, merged over its owner's ("" : the node's own).
        self.runtime_env = ""
        # Where the program called .remote(), when its owner records it (call_sites.py); its
        # results' stored values take it over.
        self.call_site = ""

    def move(self, state: str) -> None:
        """Change its state, and the owner's tally of tasks by state with it (inline: it is
        on every task's path, three times)."""
        old = self.state
        self.state = state
        tally = self.tally
        if tally is None:
            return
        members = tally.members
        before = members.get(old)
        if before is not None and before.pop(self, _ABSENT) is not _ABSENT:
            row = self.row
            if row is not None:
                row[_COUNTED[old]] -= 1
        after = members.get(state)
        if after is not None:
            after[self] = None
            if self.method != TERMINATE:
                row = self.row
                if row is None:
                    row = self.row = tally.row(self.options.name, self.actor_id is not None)
                row[_COUNTED[state]] += 1

    @property
    def name(self) -> str:
        return self.options.name

    def retries_left(self) -> int:
        if self.options.max_retries < 0:  # -1: retry forever, as in Ray
            return 1
        return self.options.max_retries - (self.attempt - self.preemptions)

    def describe(self) -> str:
        return f"{self.options.name} (task {ids.short_task(self.task_id)})"

    def __repr__(self) -> str:
        return f"<TaskRecord {self.describe()} {self.state} attempt={self.attempt}>"

    def forget_arguments(self) -> None:
        """Drop what the task held for its arguments once it can never run again."""
        self.deps = []
        self.nested = []
        self.arg_values = None
        self.lease = None


class LiveTasks:
    """An owner's unfinished tasks by state, kept as each changes state: what its metrics
    report counts and lists every two seconds without walking every pending task (a million
    pending tasks made each report a walk of a million records).

    ``members`` keeps each state's tasks in the order they entered it (a dict used as an
    ordered set); ``rows`` counts them by (name, is an actor call), one count per state, the
    owner's own ``TERMINATE`` calls left out. A task finds its row once and keeps it, so a
    move (``TaskRecord.move``) costs two dict operations and two increments. Only the owner's I/O thread moves
    tasks."""

    __slots__ = ("members", "rows")

    def __init__(self) -> None:
        self.members: dict[str, dict[TaskRecord, None]] = {state: {} for state in _COUNTED}
        self.rows: dict[tuple[str, bool], list[int]] = {}

    def row(self, name: str, actor: bool) -> list[int]:
        """The counts, by state, of the tasks of this name and kind."""
        row = self.rows.get((name, actor))
        if row is None:
            row = self.rows[(name, actor)] = [0, 0, 0]
        return row

    def counts(self) -> dict[tuple[str, bool, str], int]:
        """Tasks by (name, is an actor call, state), the states with none left out."""
        return {
            (name, actor, state): row[index]
            for (name, actor), row in self.rows.items()
            for state, index in _COUNTED.items()
            if row[index]
        }


class ShapeQueue:
    """Tasks of one shape and runtime_env bound for one place: the local node (""), a node's
    agent address (where most of their argument bytes are), or SPREAD (every node in turn); with
    the node affinity or label selector their lease requests carry, if any."""

    __slots__ = (
        "key", "shape", "target", "ready", "leases", "pending_requests", "constraints",
        "runtime_env",
    )

    def __init__(
        self, key: ShapeKey, shape: Shape, target: str,
        constraints: pb.SchedulingConstraints | None = None, runtime_env: str = "",
    ) -> None:
        self.key = key
        self.shape = shape
        self.target = target
        self.constraints = constraints
        self.runtime_env = runtime_env  # its leases are of workers of this environment
        self.ready: deque[TaskRecord] = deque()
        self.leases: list[Lease] = []
        self.pending_requests = 0


class Lease:
    __slots__ = (
        "queue",
        "agent",
        "lease_id",
        "worker_id",
        "worker_address",
        "worker_channel",
        "worker_pid",
        "node_id",
        "in_flight",
        "est_work",
        "outbox",
        "channel",
        "idle_since",
        "returning",
        "draining",
        "dead",
        "lost_reason",
        "lost",
        "gpu_ids",
        "calls",
        "spent",
    )

    def __init__(self, queue: ShapeQueue, agent: LeaseClient, grant: pb.LeaseGrant) -> None:
        self.queue = queue
        self.agent = agent
        self.lease_id = grant.lease_id
        self.worker_id = grant.worker_id
        self.worker_address = grant.worker_address
        self.worker_channel = grant.worker_channel
        self.worker_pid = grant.worker_pid
        self.node_id = grant.node_id
        self.in_flight: dict[bytes, TaskRecord] = {}
        self.est_work = 0.0
        self.outbox: list[pb.TaskSpec] = []
        self.channel: ChannelClient | None = None
        self.idle_since: float | None = None
        self.returning = False
        self.draining = False  # its node is being drained: no more tasks go to it
        self.dead = False
        self.lost_reason = ""
        self.lost = asyncio.Event()
        self.gpu_ids = list(grant.gpu_ids)  # the devices the agent gave it: each task's
        # Runs of functions with max_calls on this lease's worker, by function id. A worker that
        # ran one is not reused after the lease (the count would be lost), and once one reached
        # its limit the lease is spent: it takes no more tasks and goes back with its worker.
        self.calls: dict[bytes, int] | None = None
        self.spent = False

    def describe(self) -> str:
        return f"worker pid {self.worker_pid} at {self.worker_address}"
