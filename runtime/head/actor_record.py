"""An actor as the head's directory knows it: what it was created with, where it runs now.

``info`` is what callers read (``GetActor``): its state, its worker's address, and a version
that goes up with every change, so that a caller can wait for the next one. A change wakes the
callers waiting on ``changed`` and goes to ``on_change``, through which the directory writes a
detached actor down (it survives a head restart). The rest is the directory's own: the lease of
its worker, the channel to it, and why the actor must not be restarted any more.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import grpc

from ember.runtime.wire.lease_client import LeaseClient
from ember.runtime.wire.protocol import ember_pb2 as pb
from ember.runtime.wire.task_channel import ChannelClient


class ActorRecord:
    def __init__(
        self, spec: pb.ActorSpec, on_change: Callable[[ActorRecord], None] = lambda record: None
    ) -> None:
        self.spec = spec
        self.on_change = on_change
        self.info = pb.ActorInfo(
            actor_id=spec.actor_id,
            state=pb.PENDING,
            version=1,
            class_name=spec.class_name,
            name=spec.name,
            namespace=spec.namespace,
            max_restarts=spec.max_restarts,
            handle_meta=spec.handle_meta,
            detached=spec.detached,
            job_id=spec.job.job_id,
            placement_group_id=spec.placement_group_id,
            required=spec.hold,
        )
        self.changed = asyncio.Event()
        self.lease: tuple[LeaseClient, int] | None = None
        self.channel: ChannelClient | None = None
        self.stopping = ""  # why it must not be restarted any more
        self.drained = ""  # why it is moved off a draining node (a restart that is no failure)
        self.lost_reason = ""
        self.lost = asyncio.Event()
        self.runner: asyncio.Task[None] | None = None

    def describe(self) -> str:
        name = f" '{self.spec.name}'" if self.spec.name else ""
        return f"actor {self.spec.class_name}{name} ({self.spec.actor_id.hex()[:12]})"

    def set_state(self, state: pb.ActorState, **fields: object) -> None:
        info = self.info
        info.state = state
        for key, value in fields.items():
            setattr(info, key, value)
        info.version += 1
        self.changed.set()
        self.changed = asyncio.Event()
        self.on_change(self)


def not_found(request: pb.GetActorRequest) -> str:
    """What a lookup of an actor that is not there answers, by id or by name."""
    if request.actor_id:
        return f"no actor with id {request.actor_id.hex()}"
    return f"Failed to look up actor with name '{request.name}' in namespace '{request.namespace}'"


async def abort_not_found(context: grpc.aio.ServicerContext, request: pb.GetActorRequest) -> None:
    await context.abort(grpc.StatusCode.NOT_FOUND, not_found(request))
