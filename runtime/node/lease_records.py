"""What a node agent keeps per owner, per waiting lease request and per granted lease.

The records ``leases`` grants by, apart from the granting itself, so that the drain and the
queue balancer can name them without reaching into how grants are decided.
"""

from __future__ import annotations

import asyncio
import time

from ember.runtime.node.gpu_devices import Assignment
from ember.runtime.node.runtime_envs import Environment
from ember.runtime.node.worker_pool import WorkerHandle
from ember.runtime.wire import resources
from ember.runtime.wire.protocol import ember_pb2 as pb
from ember.runtime.wire.resources import Shape


class OwnerSession:
    """One owner's Leases stream."""

    def __init__(self) -> None:
        self.job_id = b""
        self.address = ""
        self.pid = 0
        self.head = False
        self.outbox: asyncio.Queue[pb.LeaseServerMessage] = asyncio.Queue()
        self.leases: dict[int, LeaseState] = {}
        self.last_reclaim = 0.0

    def send(self, message: pb.LeaseServerMessage) -> None:
        self.outbox.put_nowait(message)

    def describe(self) -> str:
        """Who holds leases through this stream, naming only what it said of itself: the head's
        actor manager has no pid or job of its own to give (it leases for every job's actors)."""
        if self.head:
            return f"the head at {self.address}" if self.address else "the head"
        who = f"owner pid {self.pid}" if self.pid else "an owner"
        where = f" at {self.address}" if self.address else ""
        job = f" (job {self.job_id.hex()})" if self.job_id else ""
        return who + where + job


class PendingRequest:
    __slots__ = (
        "owner", "request_id", "shape", "hold", "task_name", "spilled", "job_id", "detached",
        "actor_id", "queued_at", "constraints", "env",
    )

    def __init__(self, owner: OwnerSession, request: pb.LeaseRequest) -> None:
        self.owner = owner
        self.request_id = request.request_id
        self.shape = resources.to_fixed(request.shape.quantities)
        # What the lease keeps once granted (an actor is placed with a CPU but holds none).
        self.hold = resources.to_fixed(request.hold.quantities) if request.hold_set else self.shape
        self.task_name = request.task_name
        self.spilled = request.spilled
        self.job_id = request.job_id or owner.job_id
        self.detached = request.detached
        self.actor_id = request.actor_id
        self.queued_at = time.monotonic()
        # Node affinity or a label selector (None: any node with room will do).
        self.constraints = request.constraints if request.HasField("constraints") else None
        self.env: Environment | None = None  # its runtime_env (None: the node's own)


class LeaseState:
    __slots__ = (
        "lease_id", "owner", "worker", "shape", "blocked", "actor_id", "orphaned_at", "gpus",
    )

    def __init__(
        self, lease_id: int, owner: OwnerSession, worker: WorkerHandle, shape: Shape,
        actor_id: bytes = b"", gpus: Assignment | None = None,
    ):
        self.lease_id = lease_id
        self.owner = owner
        self.worker = worker
        self.shape = shape
        self.blocked = False
        self.actor_id = actor_id  # the actor its worker hosts, if the head leased it for one
        self.orphaned_at = 0.0
        self.gpus: Assignment = gpus or []  # the GPU devices it holds, and how much of each

    def describe_holder(self) -> str:
        """Whom the lease is for, for people ("... while leased to the head at H for actor A of
        job J"): the owner, and the actor and job the lease itself names where the owner's
        stream does not."""
        holder = self.owner.describe()
        if self.actor_id:
            holder += f" for actor {self.actor_id.hex()[:12]}"
        job_id = self.worker.job_id
        if job_id and not self.owner.job_id:
            holder += f" of job {job_id.hex()}"
        return holder
