"""Calling actors: a caller's half of the actor hot path.

Each actor a process calls has an ``ActorClient``: the calls waiting to go, in the order they
were made, and those sent. Calls go straight to the actor's worker over the task channel; the
head is asked only where the actor is — once, and again after its worker dies. A call waits for
its ObjectRef arguments without letting later calls overtake it: the queue is sent up to its
first call whose arguments are not ready.

When the worker dies, calls that were sent are sent again to the restarted actor if
``max_task_retries`` allows, else they fail with ``ActorDiedError``; when the actor is dead for
good, every call fails with the cause the head gives.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import grpc

from ember.runtime.core.memory_store import StoredValue, error_value
from ember.runtime.core.task_record import FINISHED, QUEUED, RESOLVING, RUNNING, TaskRecord
from ember.runtime.objects.exceptions import ActorDiedError, ActorRuntimeEnvSetupError
from ember.runtime.wire import event_loop
from ember.runtime.wire.protocol import ember_pb2 as pb
from ember.runtime.wire.task_channel import ChannelClient

if TYPE_CHECKING:
    from ember.runtime.core.worker_channels import WorkerChannels
    from ember.runtime.wire.rpc import Channels

log = logging.getLogger("ember.runtime.core.actor_submitter")

GET_ACTOR_WAIT = 30.0  # seconds one long-poll for the actor's state may take
HEAD_FAILURES = 10  # consecutive failures to reach the head before calls fail


class CallOutcomes(Protocol):
    """What the submitter reports about the calls it sent, to their owner's
    ``task_manager.TaskManager``: a result to store, or the value (an error) a call ends with
    unsent."""

    def on_task_result(self, task: TaskRecord, result: pb.TaskResult) -> None: ...

    def finish(self, task: TaskRecord, value: StoredValue) -> None: ...


class ActorClient:
    __slots__ = (
        "actor_id",
        "class_name",
        "version",
        "info",
        "channel",
        "queue",
        "in_flight",
        "interrupted",
        "resolving",
        "dead",
        "dirty",
        "registered",
        "unfinished",
        "on_idle",
    )

    def __init__(self, actor_id: bytes, class_name: str) -> None:
        self.actor_id = actor_id
        self.class_name = class_name
        self.version = 0
        self.info: pb.ActorInfo | None = None
        self.channel: ChannelClient | None = None
        self.queue: deque[TaskRecord] = deque()
        self.in_flight: dict[bytes, TaskRecord] = {}
        self.interrupted: list[TaskRecord] = []
        self.resolving = False
        self.dead: StoredValue | None = None
        self.dirty = False
        # Set for an actor this process is registering: nobody asks the head before it knows.
        self.registered: asyncio.Future[None] | None = None
        # The calls made here that have not finished (queued, resolving, sent, or waiting for
        # a restart), and what to do once there are none: its owner lets it go only then.
        self.unfinished: set[bytes] = set()
        self.on_idle: Callable[[], None] | None = None

    def describe(self) -> str:
        name = f" '{self.info.name}'" if self.info is not None and self.info.name else ""
        return f"actor {self.class_name}{name} ({self.actor_id.hex()[:12]})"


class ActorSubmitter:
    def __init__(
        self,
        outcomes: CallOutcomes,
        channels: Channels,
        worker_channels: WorkerChannels,
        head_address: str,
    ) -> None:
        self.outcomes = outcomes
        self.channels = channels
        self.worker_channels = worker_channels
        self.head_address = head_address
        self.actors: dict[bytes, ActorClient] = {}
        self.running: dict[bytes, TaskRecord] = {}
        self._loop = asyncio.get_event_loop()
        self._dirty: list[ActorClient] = []
        self._flush_scheduled = False
        # True while the owner handles a batch of submissions and flushes after it.
        self.batching = False

    def registering(self, actor_id: bytes, class_name: str) -> asyncio.Future[None]:
        client = self.client(actor_id, class_name)
        client.registered = self._loop.create_future()
        return client.registered

    def info(self, actor_id: bytes) -> pb.ActorInfo | None:
        """Where an actor's calls run (its worker's pid and node), for the timeline."""
        client = self.actors.get(actor_id)
        return client.info if client is not None else None

    def client(self, actor_id: bytes, class_name: str = "") -> ActorClient:
        client = self.actors.get(actor_id)
        if client is None:
            client = self.actors[actor_id] = ActorClient(actor_id, class_name)
        elif class_name and not client.class_name:
            client.class_name = class_name
        return client

    # ------------------------------------------------------------------ submitting

    def submit(self, task: TaskRecord) -> None:
        """Queue a call in submission order (its arguments may still be resolving)."""
        assert task.actor_id is not None
        client = self.client(task.actor_id)
        if client.dead is not None:
            self.outcomes.finish(task, client.dead)
            return
        if task.state != FINISHED:  # its arguments may have failed already
            client.unfinished.add(task.task_id)
        client.queue.append(task)
        self.wake(client)

    def call_finished(self, task: TaskRecord) -> None:
        """A call ended, whichever way (its owner's task manager says so)."""
        client = self.actors.get(task.actor_id or b"")
        if client is None:
            return
        client.unfinished.discard(task.task_id)
        if not client.unfinished and client.on_idle is not None:
            on_idle, client.on_idle = client.on_idle, None
            on_idle()

    def when_idle(self, actor_id: bytes, callback: Callable[[], None]) -> None:
        """Run ``callback`` once every call made here to the actor has finished (now, if
        none is unfinished)."""
        client = self.client(actor_id)
        if client.unfinished:
            client.on_idle = callback
        else:
            callback()

    def wake(self, client: ActorClient) -> None:
        """The client has calls to send: they go out in one frame when the loop's current work
        is done (``flush``, which the owner also calls right after a batch of submissions)."""
        if client.channel is None:
            self._resolve(client)
        elif not client.dirty and client.queue:
            client.dirty = True
            self._dirty.append(client)
            if not self._flush_scheduled and not self.batching:
                self._flush_scheduled = True
                self._loop.call_soon(self.flush)

    def flush(self) -> None:
        self._flush_scheduled = False
        dirty, self._dirty = self._dirty, []
        for client in dirty:
            client.dirty = False
            self._send(client)

    def _send(self, client: ActorClient) -> None:
        channel = client.channel
        if channel is None:
            return
        queue = client.queue
        specs = []
        now = time.time()
        while queue:
            task = queue[0]
            if task.state == FINISHED:  # cancelled or failed while waiting
                queue.popleft()
                continue
            if task.state == RESOLVING:
                break  # keeps its place: later calls wait for it
            queue.popleft()
            task.move(RUNNING)
            task.scheduled = now
            client.in_flight[task.task_id] = task
            self.running[task.task_id] = task
            spec = pb.TaskSpec(
                task_id=task.task_id,
                name=task.function.name,
                args=task.args,
                num_returns=task.options.num_returns,
                attempt=task.attempt,
                actor_id=client.actor_id,
                method=task.method,
            )
            if task.arg_values:
                spec.arg_values.extend(v for v in task.arg_values if v is not None)
            specs.append(spec)
        if specs:
            channel.send(pb.ExecuteRequest(tasks=specs))

    def on_results(self, done: list[tuple[TaskRecord, pb.TaskResult]]) -> None:
        outcomes = self.outcomes
        for task, result in done:
            if task.actor_id is not None:
                client = self.actors.get(task.actor_id)
                if client is not None:
                    client.in_flight.pop(task.task_id, None)
            outcomes.on_task_result(task, result)

    # ------------------------------------------------------------------ where the actor is

    def _resolve(self, client: ActorClient) -> None:
        if not client.resolving and client.dead is None:
            client.resolving = True
            event_loop.detach(self._locate(client), "locating an actor")

    async def _locate(self, client: ActorClient) -> None:
        """Ask the head where the actor is until it is alive (connect) or dead (fail)."""
        failures = 0
        try:
            if client.registered is not None:
                await client.registered
            while True:
                try:
                    info = await self.channels.head(self.head_address).GetActor(
                        pb.GetActorRequest(
                            actor_id=client.actor_id,
                            after_version=client.version,
                            timeout=GET_ACTOR_WAIT,
                        ),
                        timeout=GET_ACTOR_WAIT + 10,
                    )
                except grpc.aio.AioRpcError as error:
                    if error.code() == grpc.StatusCode.NOT_FOUND:
                        self._died(client, f"the head knows no such actor ({error.details()})")
                        return
                    failures += 1
                    if failures >= HEAD_FAILURES:
                        self._died(
                            client,
                            f"the head at {self.head_address} cannot be reached "
                            f"({error.code().name})",
                        )
                        return
                    await asyncio.sleep(min(0.1 * 2**failures, 2.0))
                    continue
                failures = 0
                client.info = info
                client.version = info.version
                if not client.class_name:
                    client.class_name = info.class_name
                if info.state == pb.DEAD:
                    self._died(client, info.death_cause, info.runtime_env_failed)
                    return
                if info.state != pb.ALIVE:
                    continue
                self._fail_interrupted(client, info)
                try:
                    channel = await self.worker_channels.open(info.worker_id, info.channel)
                except OSError:
                    continue  # it died again meanwhile: the next state says so
                client.channel = channel
                channel.actors.add(client)
                self.wake(client)
                return
        finally:
            client.resolving = False

    def on_channel_lost(self, channel: ChannelClient, reason: str) -> None:
        for client in list(channel.actors):
            self._disconnect(client, reason)
        channel.actors.clear()

    def _disconnect(self, client: ActorClient, reason: str) -> None:
        """The actor's worker is gone (or going): retry or hold what was sent, find it again."""
        if client.channel is not None:
            client.channel.actors.discard(client)
        client.channel = None
        sent = list(client.in_flight.values())
        client.in_flight.clear()
        retry = []
        for task in sent:
            self.running.pop(task.task_id, None)
            if task.state == FINISHED:
                continue
            if task.retries_left() > 0 and not task.cancelled:
                task.attempt += 1
                task.move(QUEUED)
                retry.append(task)
            else:
                task.last_failure = reason
                client.interrupted.append(task)
        client.queue.extendleft(reversed(retry))
        self._resolve(client)

    def _fail_interrupted(self, client: ActorClient, info: pb.ActorInfo) -> None:
        """Calls cut short by a restart, that may not be retried, fail now."""
        interrupted, client.interrupted = client.interrupted, []
        for task in interrupted:
            error = ActorDiedError(
                f"{client.describe()} died while running {task.name} "
                f"({info.death_cause or task.last_failure}); it was restarted, but the call is not "
                f"retried (max_task_retries={task.options.max_retries})",
                actor_id=client.actor_id,
            )
            self.outcomes.finish(task, error_value(error))

    def _died(self, client: ActorClient, cause: str, runtime_env_failed: bool = False) -> None:
        kind = ActorRuntimeEnvSetupError if runtime_env_failed else ActorDiedError
        error = kind(f"{client.describe()} is dead: {cause}", actor_id=client.actor_id)
        value = error_value(error)
        client.dead = value
        for task in [*client.interrupted, *client.in_flight.values(), *client.queue]:
            self.running.pop(task.task_id, None)
            self.outcomes.finish(task, value)
        client.interrupted.clear()
        client.in_flight.clear()
        client.queue.clear()

    def cancel_running(self, task: TaskRecord, force: bool) -> None:
        client = self.actors.get(task.actor_id or b"")
        if client is None or client.info is None:
            return
        event_loop.detach(self._cancel(client.info.address, task, force), "cancelling an actor task")

    async def _cancel(self, address: str, task: TaskRecord, force: bool) -> None:
        stub = self.channels.core_worker(address)
        try:
            await stub.CancelTasks(pb.CancelRequest(task_ids=[task.task_id], force=force), timeout=10)
        except grpc.aio.AioRpcError as error:
            log.debug("cancel of %s: %s", task.describe(), error.code().name)

    def killed(self, actor_id: bytes, no_restart: bool) -> None:
        """This process killed the actor: its later calls fail (or wait for the restart)."""
        client = self.client(actor_id)
        if no_restart:
            self._died(client, "it was killed with ember.kill()")
        else:
            self._disconnect(client, "it was killed with ember.kill(no_restart=False)")

    def mark_dead(self, actor_id: bytes, cause: str) -> None:
        """Registration failed (say, the name is taken): calls fail with that."""
        self._died(self.client(actor_id), cause)

    def shutdown(self) -> None:
        self.actors.clear()
