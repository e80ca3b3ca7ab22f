"""A worker that hosts an actor: the instance, and how its calls run.

By default calls run one at a time on the main thread, in the order each caller sent them (the
task channel keeps a caller's order). With ``max_concurrency > 1`` they run on that many
threads; an actor with ``async def`` methods runs them on one event loop in a thread of its own,
up to ``max_concurrency`` at once (1000 by default, as in Ray). Calls started in order finish
in any order then, and their results go back through ``ChannelServer.post``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Protocol

from ember.runtime.core import context, cpu_threads, visible_gpus
from ember.runtime.core.task_output import OutputForwarder
from ember.runtime.core.task_record import TERMINATE
from ember.runtime.objects import serialization
from ember.runtime.wire.protocol import ember_pb2 as pb

if TYPE_CHECKING:
    from ember.runtime.wire.task_channel import ChannelServer

log = logging.getLogger("ember.runtime.core.actor_host")


class CallRunner(Protocol):
    """What the host needs of the worker's executor (``executor.Executor``, which owns the
    host): turning a spec into a call, and the call's outcome into a result."""

    pid: int
    forwarder: OutputForwarder  # tags what the actor prints with its class name

    def invoke(self, spec: pb.TaskSpec, target: Callable[[], Any], owner: str) -> pb.TaskResult: ...

    def decode_args(self, spec: pb.TaskSpec) -> tuple[tuple[Any, ...], dict[str, Any]]: ...

    def encode_value(
        self, spec: pb.TaskSpec, value: Any, start: float, owner: str, function: Any = None
    ) -> pb.TaskResult: ...

    def encode_error(
        self, spec: pb.TaskSpec, error: BaseException, start: float
    ) -> pb.TaskResult: ...


class ActorHost:
    def __init__(self, executor: CallRunner) -> None:
        self.executor = executor
        self.server: ChannelServer | None = None
        self.instance: Any = None
        self.actor_id = b""
        self.class_name = ""
        self.active = False
        self._threads: ThreadPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._slots: asyncio.Semaphore | None = None
        self.running = 0  # calls started on threads or the loop and not finished
        self.terminating = False

    def handle(self, spec: pb.TaskSpec, connection: Any) -> pb.TaskResult | None:
        if spec.actor_creation:
            return self._create(spec)
        if not self.active or spec.actor_id != self.actor_id:
            return self.executor.encode_error(
                spec,
                RuntimeError(
                    f"worker pid {self.executor.pid} does not host actor {spec.actor_id.hex()}"
                ),
                time.perf_counter(),
            )
        if spec.method == TERMINATE:
            self.terminating = True
            return pb.TaskResult(task_id=spec.task_id, returns=[_none()] * max(spec.num_returns, 1))
        if self._loop is not None:
            self.running += 1
            asyncio.run_coroutine_threadsafe(self._call_async(spec, connection), self._loop)
            return None
        if self._threads is not None:
            self.running += 1
            self._threads.submit(self._call_threaded, spec, connection)
            return None
        return self.executor.invoke(
            spec, lambda: getattr(self.instance, spec.method), connection.owner
        )

    def _create(self, spec: pb.TaskSpec) -> pb.TaskResult:
        executor = self.executor
        self.actor_id = spec.actor_id
        context.actor_id = spec.actor_id
        context.actor_restarted = spec.attempt > 0
        context.actor_placement_group = spec.placement_group_id
        context.actor_capture_child_tasks = spec.capture_child_tasks
        context.capturing = context.capturing or spec.capture_child_tasks
        visible_gpus.use(spec.gpu_ids)  # the actor's devices, before its constructor runs
        cpu_threads.use(spec.cpu_threads)

        def construct() -> Any:
            cls = serialization.loads(spec.function)
            self.class_name = cls.__name__
            executor.forwarder.task_name = cls.__name__

            def build(*args: Any, **kwargs: Any) -> None:
                self.instance = cls(*args, **kwargs)

            return build

        result = executor.invoke(spec, construct, "")
        if self.instance is None:
            return result  # the constructor raised: the head marks the actor dead
        self.active = True
        if spec.is_async:
            self._start_loop(max(1, spec.max_concurrency or 1000))
        elif spec.max_concurrency > 1:
            self._threads = ThreadPoolExecutor(
                spec.max_concurrency, thread_name_prefix=f"ember-{self.class_name}"
            )
        return result

    # ------------------------------------------------------------------ concurrent calls

    def _call_threaded(self, spec: pb.TaskSpec, connection: Any) -> None:
        executor = self.executor
        start = time.perf_counter()
        token = context.task_context.set(context.TaskContext(spec.task_id, spec.name))
        try:
            method = getattr(self.instance, spec.method)
            args, kwargs = executor.decode_args(spec)
            value = method(*args, **kwargs)
            result = executor.encode_value(spec, value, start, connection.owner, method)
        except BaseException as error:  # noqa: BLE001 - the call's outcome, whatever it is
            result = executor.encode_error(spec, error, start)
        finally:
            context.task_context.reset(token)
        self._done(connection, result)

    def _start_loop(self, limit: int) -> None:
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            self._slots = asyncio.Semaphore(limit)
            loop.call_soon(ready.set)
            loop.run_forever()

        threading.Thread(target=run, name=f"ember-{self.class_name}-loop", daemon=True).start()
        ready.wait()
        self._loop = loop

    async def _call_async(self, spec: pb.TaskSpec, connection: Any) -> None:
        executor = self.executor
        assert self._slots is not None
        async with self._slots:
            start = time.perf_counter()
            context.task_context.set(context.TaskContext(spec.task_id, spec.name))
            try:
                method = getattr(self.instance, spec.method)
                args, kwargs = executor.decode_args(spec)
                value = method(*args, **kwargs)
                if inspect.isawaitable(value):
                    value = await value
                result = executor.encode_value(spec, value, start, connection.owner, method)
            except BaseException as error:  # noqa: BLE001 - the call's outcome, whatever it is
                result = executor.encode_error(spec, error, start)
        self._done(connection, result)

    def _done(self, connection: Any, result: pb.TaskResult) -> None:
        assert self.server is not None
        self.server.post(connection, result)


def _none() -> pb.ObjectValue:
    return pb.ObjectValue(data=serialization.dumps(None)[0])


def is_async_class(cls: type) -> bool:
    """An actor class with any ``async def`` method runs its calls on an event loop."""
    return any(
        inspect.iscoroutinefunction(member) or inspect.isasyncgenfunction(member)
        for _, member in inspect.getmembers(cls, predicate=inspect.isfunction)
    )
