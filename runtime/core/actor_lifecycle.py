"""The actors a process creates, looks up and kills, through the head's actor directory.

Creating an actor registers it with the head, which places and starts it in the background;
calls go straight to its worker once the head says where it is (``actor_submitter``). The
process that creates an actor owns it: when no handle to it is left anywhere (none here, none
sent elsewhere) and it is not detached, the owner lets it go once every call made through its
handles has finished (those queued while it is still being created too), as Ray does.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from ember.runtime.core.actor_submitter import ActorSubmitter
from ember.runtime.core.memory_store import ERROR, StoredValue
from ember.runtime.core.task_record import (
    QUEUED,
    TERMINATE,
    ActorOptions,
    FunctionDescriptor,
    LiveTasks,
    TaskOptions,
    TaskRecord,
    actor_call,
)
from ember.runtime.objects import ids, serialization
from ember.runtime.objects.object_ref import ObjectRef
from ember.runtime.wire import bundle_resources, event_loop, resources
from ember.runtime.wire.event_loop import IoThread
from ember.runtime.wire.protocol import ember_pb2 as pb
from ember.runtime.wire.rpc import Channels

log = logging.getLogger("ember.runtime.core.actor_lifecycle")


class ActorLifecycle:
    """``tasks`` is the owner's table of unfinished tasks (a terminate call is one of them);
    ``value_of`` waits for the value of a constructor's ref argument."""

    def __init__(
        self,
        io: IoThread,
        channels: Channels,
        head_address: str,
        job_config: pb.JobConfig,
        address: str,
        mint: ids.IdMint,
        tasks: dict[bytes, TaskRecord],
        actors: ActorSubmitter,
        value_of: Callable[[ObjectRef], Awaitable[StoredValue]],
        live: LiveTasks,
    ) -> None:
        self.io = io
        self.channels = channels
        self.head_address = head_address
        self.job_config = job_config
        self.address = address
        self.mint = mint
        self.tasks = tasks
        self.actors = actors
        self.value_of = value_of
        self.live = live  # the owner's unfinished tasks by state, which its records keep
        # The actors this process created (and so owns), and those of them whose handles were
        # sent elsewhere: those live on, since a holder there may still call them.
        self.owned: dict[bytes, ActorOptions] = {}
        self.escaped: set[bytes] = set()
        # Owned actors no handle here refers to any more, waiting for their calls to finish.
        self.releasing: set[bytes] = set()

    # ---------------------------------------------------------------- user thread

    def create(
        self,
        cls: FunctionDescriptor,
        data: bytes,
        deps: list[ObjectRef],
        options: ActorOptions,
        handle_meta: bytes,
        runtime_env: str = "",
    ) -> tuple[bytes, bytes]:
        """Register an actor with the head; returns its id and method table (an existing
        actor's, with get_if_exists). ``data`` and ``deps`` are its constructor's arguments;
        ``runtime_env`` the one it runs in (merged over its owner's)."""
        actor_id = ids.random_id()
        creation = pb.TaskSpec(
            task_id=self.mint.task_id(),
            function=cls.data,
            function_id=cls.function_id,
            name=f"{options.class_name}.__init__",
            args=data,
            num_returns=1,
            actor_id=actor_id,
            actor_creation=True,
            max_concurrency=options.max_concurrency,
            is_async=options.is_async,
            placement_group_id=options.placement_group,
            capture_child_tasks=options.capture_child_tasks,
            cpu_threads=bundle_resources.amount(options.shape, "CPU") // resources.UNIT,
        )
        spec = pb.ActorSpec(
            actor_id=actor_id,
            class_name=options.class_name,
            name=options.name,
            namespace=options.namespace or self.job_config.namespace,
            creation=creation,
            shape=pb.ResourceSet(quantities=resources.to_float(options.shape)),
            hold=pb.ResourceSet(quantities=resources.to_float(options.hold)),
            max_restarts=options.max_restarts,
            detached=options.detached,
            job=self.job_config,
            owner_address=self.address,
            handle_meta=handle_meta,
            get_if_exists=options.get_if_exists,
            constraints=options.constraints,
            placement_group_id=options.placement_group,
            runtime_env=runtime_env,
        )
        # Calls made before the head knows the actor wait for its registration.
        self.io.call_soon(self.actors.registering, actor_id, options.class_name)
        if options.name or not deps:
            # Registered before the handle exists, so that every holder of the handle finds
            # the actor at the head (and a taken name is an error here, not later).
            reply = self.io.run(self._register(spec, deps))
            if reply.error and options.name:
                raise ValueError(reply.error)
            if reply.actor_id and reply.actor_id != actor_id:
                return reply.actor_id, reply.handle_meta
        else:
            # The constructor's arguments are still being computed: register once they are.
            self.io.submit(self._register(spec, deps))
        self.owned[actor_id] = options
        return actor_id, handle_meta

    def kill(self, actor_id: bytes, no_restart: bool) -> None:
        request = pb.KillActorRequest(actor_id=actor_id, no_restart=no_restart)
        self.io.run(self._head_call("KillActor", request))
        # Calls made from here on must not reach the dying worker.
        self.io.run(self._killed(actor_id, no_restart))

    def info(self, name: str, namespace: str) -> pb.ActorInfo:
        request = pb.GetActorRequest(name=name, namespace=namespace or self.job_config.namespace)
        return self.io.run(self._head_call("GetActor", request))

    def namespaces_naming(self, name: str) -> list[str]:
        """The namespaces where an actor named ``name`` is not dead: where a lookup that found
        nothing in its own namespace should have looked."""
        actors = self.io.run(self._head_call("ListActors", pb.Empty()))
        return sorted({a.namespace for a in actors.actors if a.name == name and a.state != pb.DEAD})

    def handle_escaped(self, actor_id: bytes) -> None:
        """A handle to the actor was pickled to go elsewhere."""
        if actor_id in self.owned:
            self.escaped.add(actor_id)

    def unreferenced(self, actor_id: bytes) -> None:
        """Nobody here can call the actor any more: if this process owns it and nobody else
        may call it, let it go once the calls already made have finished (as Ray does: the
        calls made through a handle keep the actor alive until they are done)."""
        options = self.owned.get(actor_id)
        if options is None or options.detached or actor_id in self.escaped:
            return
        if actor_id in self.releasing:
            return
        self.releasing.add(actor_id)
        # Through the loop even on the I/O thread: calls made just before the last handle went
        # away are still on their way to the actor's queue, and queue first.
        self.io.call_soon(self._release_when_idle, actor_id)

    # ---------------------------------------------------------------- I/O thread

    async def _register(self, spec: pb.ActorSpec, deps: list[ObjectRef]) -> pb.CreateActorReply:
        try:
            for index, ref in enumerate(deps):
                value = await self.value_of(ref)
                if value.kind == ERROR:
                    error = serialization.loads(value.data)
                    raise ValueError(f"an argument of its constructor failed: {error}")
                while len(spec.creation.arg_values) <= index:
                    spec.creation.arg_values.add()
                spec.creation.arg_values[index].data = value.data
            reply = await self.channels.head(self.head_address).CreateActor(spec, timeout=30)
        except (grpc.aio.AioRpcError, ValueError) as error:
            detail = error.details() if isinstance(error, grpc.aio.AioRpcError) else str(error)
            reply = pb.CreateActorReply(error=f"could not create it: {detail}")
        registered = self.actors.client(spec.actor_id).registered
        if registered is not None and not registered.done():
            registered.set_result(None)
        if reply.error:
            self.actors.mark_dead(spec.actor_id, reply.error)
        return reply

    async def _killed(self, actor_id: bytes, no_restart: bool) -> None:
        self.actors.killed(actor_id, no_restart)

    async def _head_call(self, method: str, request: Any) -> Any:
        """A unary call to the head, made on the I/O thread where the channel lives."""
        return await getattr(self.channels.head(self.head_address), method)(request, timeout=30)

    def _release_when_idle(self, actor_id: bytes) -> None:
        def release() -> None:
            event_loop.detach(self._release(actor_id), "releasing an actor")

        self.actors.when_idle(actor_id, release)

    async def _release(self, actor_id: bytes) -> None:
        """End an actor nobody can call any more, every call to it finished.

        The head hears first that the actor is going (so that its worker's exit is no failure
        to restart from), then the worker gets a last call, after which it exits. Were the
        order the other way round, the head could see the worker gone before it knows why.
        """
        client = self.actors.client(actor_id)
        try:
            if client.registered is not None:
                await client.registered  # the head must know the actor to let it go
            if client.dead is not None:
                return  # never created, or dead already: nothing to end
            request = pb.KillActorRequest(
                actor_id=actor_id,
                graceful=True,
                reason="every handle to it went out of scope",
            )
            try:
                await self.channels.head(self.head_address).KillActor(request, timeout=30)
            except grpc.aio.AioRpcError as error:
                # Ended without the head's word, it would be restarted; left running, it ends
                # with this process (the head kills what a departed owner owned).
                log.warning(
                    "could not tell the head at %s that %s is no longer referenced (%s); "
                    "it lives until its owner exits",
                    self.head_address, client.describe(), error.code().name,
                )
                return
            self._terminate(actor_id)
        finally:
            self.releasing.discard(actor_id)
            self.owned.pop(actor_id, None)

    def _terminate(self, actor_id: bytes) -> None:
        """The actor's last call: its worker exits once it has run it."""
        options = TaskOptions(name="__ember_terminate__", shape={}, key=(), num_returns=1, max_retries=0)
        task = TaskRecord(
            self.mint.task_id(), actor_call("terminate"), options, serialization.EMPTY_ARGS,
            [], [], [], self.live,
        )
        task.actor_id = actor_id
        task.method = TERMINATE
        task.move(QUEUED)
        self.tasks[task.task_id] = task
        self.actors.submit(task)
