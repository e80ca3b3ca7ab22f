"""Running tasks in a worker.

The worker's main thread receives tasks on the task channel (``task_channel.ChannelServer``) and
runs them here, one at a time. This module turns a ``TaskSpec`` into a call and the call's
outcome into a ``TaskResult``: the function cache, argument decoding, errors with their
tracebacks, return values, cancellation, and what the task printed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
import traceback
from types import FrameType
from typing import TYPE_CHECKING, Any

import grpc

from ember.runtime.core import context, cpu_threads, visible_gpus
from ember.runtime.core.actor_host import ActorHost
from ember.runtime.core.owner import Owner
from ember.runtime.core.task_log_index import TaskLogIndex
from ember.runtime.core.task_output import OutputForwarder
from ember.runtime.objects import serialization, unpicklable
from ember.runtime.objects.exceptions import EmberError, TaskCancelledError, TaskError
from ember.runtime.wire import auth
from ember.runtime.wire.protocol import ember_pb2 as pb

if TYPE_CHECKING:
    from ember.runtime.wire.event_loop import IoThread
    from ember.runtime.wire.task_channel import ChannelServer

log = logging.getLogger("ember.runtime.core.executor")


class Executor:
    def __init__(self, io: IoThread, worker_id: bytes, host: str) -> None:
        self.io = io
        self.worker_id = worker_id
        self.host = host
        self.pid = os.getpid()
        self.functions: dict[bytes, Any] = {}
        self.job: pb.JobConfig | None = None
        self.owner: Owner | None = None
        self.current: pb.TaskSpec | None = None
        self.current_started = 0.0  # seconds since the epoch (what ember stack shows)
        self.cancelled: set[bytes] = set()
        self.interrupt_target: bytes | None = None
        self.interrupted: bytes | None = None
        self.forwarder = OutputForwarder(lambda: io.call_soon(self._flush_output_soon))
        self._output_flush: asyncio.Task[None] | None = None
        self._output_lock: asyncio.Lock | None = None
        self.actor_host = ActorHost(self)
        self.on_blocked_change: Any = None
        # Where each task's lines are in the worker's log files (set by worker_main).
        self.task_logs: TaskLogIndex | None = None

    # ------------------------------------------------------------------ I/O thread

    def cancel(self, task_ids: Any, force: bool) -> None:
        """CoreWorker.CancelTasks: interrupt the running task, or skip a queued one."""
        current = self.current
        for task_id in task_ids:
            if current is not None and current.task_id == task_id:
                if force:
                    log.info("task %s force-cancelled; worker exits", current.name)
                    _exit_now(1)
                self.interrupt_target = task_id
                os.kill(os.getpid(), signal.SIGINT)
            else:
                self.cancelled.add(task_id)

    def _flush_output_soon(self) -> None:
        if self._output_flush is None or self._output_flush.done():
            self._output_flush = asyncio.ensure_future(self.flush_output())

    async def flush_output(self) -> None:
        """Send what tasks printed to the driver; returns once earlier output arrived too."""
        if self._output_lock is None:
            self._output_lock = asyncio.Lock()
        async with self._output_lock:
            await self._send_output()

    async def _send_output(self) -> None:
        records = self.forwarder.take()
        try:
            await self._push(records)
        finally:
            self.forwarder.sent(len(records))

    async def _push(self, records: list[pb.LogRecord]) -> None:
        if not records or self.job is None or not self.job.driver_address:
            return
        owner = self.owner
        if owner is None:
            return
        try:
            stub = owner.channels.core_worker(self.job.driver_address)
            await stub.PushLogs(
                pb.LogBatch(pid=self.pid, node_host=self.host, records=records), timeout=5.0
            )
        except grpc.aio.AioRpcError as error:
            log.debug("could not forward task output to the driver: %s", error)

    # ------------------------------------------------------------------ main thread

    def install_signal_handler(self) -> None:
        signal.signal(signal.SIGINT, self._on_sigint)

    # ---- the task channel's handler (ember.runtime.wire.task_channel.TaskHandler)

    def attach(self, server: ChannelServer) -> None:
        self.actor_host.server = server

    def posted_result_taken(self) -> None:
        self.actor_host.running -= 1

    def terminated(self) -> bool:
        host = self.actor_host
        return host.terminating and not host.running

    def before_reply(self) -> None:
        self.flush_output_blocking()
        if self.owner is not None:
            self.owner.borrowing.flush_blocking()

    def before_exit(self) -> None:
        self.flush_output_blocking()

    def flush_output_blocking(self) -> None:
        """Send what the finished tasks printed, before their results go out."""
        if self.forwarder.unsent:
            try:
                self.io.run(self.flush_output(), timeout=10)
            except Exception:
                log.debug("could not flush task output", exc_info=True)

    def check_hello(self, hello: pb.ChannelHello) -> str:
        """Refuse a caller without the cluster token. A worker serves one job for its life;
        refuse owners of another job. An actor takes calls from any job (a detached actor
        outlives the job that made it)."""
        expected = auth.token()
        if expected and not auth.matches(hello.token, expected):
            log.warning("worker pid %d: refused a task channel from %s: %s", self.pid, hello.owner_address or "an unnamed caller", "missing or wrong cluster token")
            return f"worker pid {self.pid}: {auth.REFUSED}"
        if self.job is None:
            self.bind_job(hello.job)
            return ""
        if hello.job.job_id != self.job.job_id and not self.actor_host.active:
            return (
                f"worker pid {self.pid} serves job {self.job.job_id.hex()}, "
                f"not job {hello.job.job_id.hex()}"
            )
        return ""

    def bind_job(self, job: pb.JobConfig) -> None:
        """A worker serves one job for its life: its code paths and its owner for nested tasks.

        The driver's code paths go first on the import path, and its directory becomes the
        worker's, unless the worker's runtime_env put code or a working_dir there: those win."""
        self.job = job
        missing = [path for path in job.code_paths if path and path not in sys.path]
        if os.environ.get("EMBER_RUNTIME_ENV_PATH"):
            sys.path.extend(missing)
        else:
            sys.path[0:0] = missing
        if job.working_dir and os.path.isdir(job.working_dir) and not os.environ.get("EMBER_RUNTIME_ENV_CWD"):
            os.chdir(job.working_dir)
        address = os.environ["EMBER_WORKER_ADDRESS"]
        owner = Owner(
            self.io,
            address,
            job,
            os.environ["EMBER_AGENT_ADDRESS"],
            os.environ.get("EMBER_HEAD_ADDRESS", ""),
            bytes.fromhex(os.environ.get("EMBER_NODE_ID", "")),
            os.environ.get("EMBER_STORE_DIR", ""),
        )
        owner.on_blocked = self._blocked
        # What this worker was set up for is the parent of the runtime_envs of its nested work.
        owner.runtime_env = os.environ.get("EMBER_RUNTIME_ENV", "")
        self.owner = owner
        context.set_core(owner)

    def _blocked(self, blocked: bool) -> None:
        if self.current is not None and self.on_blocked_change is not None:
            self.on_blocked_change(blocked)

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        current = self.current
        if current is not None and self.interrupt_target == current.task_id:
            self.interrupt_target = None
            self.interrupted = current.task_id
            raise KeyboardInterrupt

    def _function(self, spec: pb.TaskSpec) -> Any:
        function = self.functions.get(spec.function_id)
        if function is None:
            if not spec.function:
                raise RuntimeError(
                    f"worker pid {self.pid} has no code for {spec.name}: the owner did not send it"
                )
            function = serialization.loads(spec.function)
            self.functions[spec.function_id] = function
        return function

    def run(self, spec: pb.TaskSpec, connection: Any) -> pb.TaskResult | None:
        """Run a task (or an actor call) from ``connection``; None when it finishes later."""
        if spec.actor_id:
            return self.actor_host.handle(spec, connection)
        visible_gpus.use(spec.gpu_ids)  # its lease's devices: a reused worker had others
        cpu_threads.use(spec.cpu_threads)
        return self.invoke(spec, lambda: self._function(spec), connection.owner)

    def invoke(self, spec: pb.TaskSpec, target: Any, owner: str) -> pb.TaskResult:
        """Call ``target()`` (which returns the callable) with the spec's arguments, on the
        main thread, where cancellation can interrupt it."""
        task_id = spec.task_id
        if task_id in self.cancelled:
            self.cancelled.discard(task_id)
            return self._error_result(
                spec, TaskCancelledError(f"{spec.name} was cancelled before it started"), False
            )
        self.current = spec
        self.current_started = time.time()
        logs = self.task_logs
        if logs is not None:
            logs.started(task_id)
        if not self.actor_host.active:
            self.forwarder.task_name = spec.name
        token = context.task_context.set(context.TaskContext(
            spec.task_id, spec.name, spec.placement_group_id, spec.capture_child_tasks
        ))
        start = time.perf_counter()
        try:
            function = target()
            args, kwargs = self.decode_args(spec)
            value = function(*args, **kwargs)
        except KeyboardInterrupt:
            if self.interrupted == task_id:
                self.interrupted = None
                return self._finish_error(
                    spec, TaskCancelledError(f"{spec.name} was cancelled while running"), start
                )
            raise
        except BaseException as error:  # noqa: BLE001 - whatever the task raised is its result
            return self.encode_error(spec, error, start)
        finally:
            self.current = None
            context.task_context.reset(token)
            _flush_std_streams()
            if logs is not None:
                logs.ended(task_id)
        return self.encode_value(spec, value, start, owner, function)

    def decode_args(self, spec: pb.TaskSpec) -> tuple[tuple[Any, ...], dict[str, Any]]:
        values = []
        for value in spec.arg_values:
            if value.HasField("location"):
                assert self.owner is not None
                values.append(self.owner.objects.decode(value.id, value.location))
            else:
                values.append(serialization.loads(value.data))
        return serialization.deserialize_args(spec.args, values)

    def encode_value(
        self, spec: pb.TaskSpec, value: Any, start: float, owner: str, function: Any = None
    ) -> pb.TaskResult:
        """The result of a call that returned ``value``; ``function`` (what was called) names
        where it is defined when the value cannot be sent back."""
        run_seconds = time.perf_counter() - start
        try:
            returns = self._serialize_returns(spec, value, owner, function)
        except Exception as error:
            return self._error_result(spec, self._task_error(spec, error), True, run_seconds)
        return pb.TaskResult(
            task_id=spec.task_id, returns=returns, run_seconds=run_seconds, end_time=time.time()
        )

    def encode_error(self, spec: pb.TaskSpec, error: BaseException, start: float) -> pb.TaskResult:
        if isinstance(error, SystemExit | GeneratorExit):
            error = RuntimeError(f"{spec.name} raised {type(error).__name__}: {error}")
        return self._finish_error(spec, self._task_error(spec, error), start)

    def _serialize_returns(
        self, spec: pb.TaskSpec, value: Any, owner: str, function: Any = None
    ) -> list[pb.ObjectValue]:
        count = spec.num_returns
        if count == 1:
            values = [value]
        elif count == 0:
            values = []
        else:
            if not isinstance(value, tuple | list) or len(value) != count:
                raise ValueError(
                    f"{spec.name} declares num_returns={count} but returned "
                    f"{type(value).__name__}"
                    + (f" of length {len(value)}" if isinstance(value, tuple | list) else "")
                )
            values = list(value)
        returns = []
        core = self.owner
        assert core is not None
        for index, item in enumerate(values, start=1):
            object_id = spec.task_id + index.to_bytes(4, "big")
            try:
                data, location, contained = core.objects.encode(item, object_id, owner)
            except EmberError:
                raise
            except Exception:
                why = unpicklable.reason(item)
                if why is None:
                    raise
                which = f"return value {index} of {count}" if count > 1 else "return value"
                # From None: the pickler's frames are ember's, not the user's; the path and
                # the reason are what the user needs.
                raise TypeError(
                    f"could not serialize the {which} of {spec.name}{_defined_at(function)}: {why}"
                ) from None
            message = pb.ObjectValue(data=data)
            if location is not None:
                message.location.CopyFrom(location)
            if contained:
                message.contained.extend(
                    pb.ObjectRefMsg(id=r.id, owner=r.owner_address) for r in contained
                )
                core.borrowing.escape(contained)
            returns.append(message)
        return returns

    def _task_error(self, spec: pb.TaskSpec, error: BaseException) -> TaskError:
        tb = error.__traceback__
        # Drop this module's frames: the user wants their function's traceback.
        while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
            tb = tb.tb_next
        text = "".join(traceback.format_exception(type(error), error, tb))
        return TaskError(spec.name, text, error, self.pid, self.host)

    def _finish_error(self, spec: pb.TaskSpec, error: BaseException, start: float) -> pb.TaskResult:
        return self._error_result(
            spec, error, isinstance(error, TaskError), time.perf_counter() - start
        )

    def _error_result(
        self, spec: pb.TaskSpec, error: BaseException, application: bool, run_seconds: float = 0.0
    ) -> pb.TaskResult:
        try:
            data, _ = serialization.dumps(error)
        except Exception:
            if isinstance(error, TaskError):
                # The exception itself cannot travel: send its text and type name instead.
                stand_in = RuntimeError(f"{type(error.cause).__name__}: {error.cause}")
                error = TaskError(
                    error.function_name, error.traceback_str, stand_in, self.pid, self.host
                )
            else:
                error = RuntimeError(str(error))
            data, _ = serialization.dumps(error)
        value = pb.ObjectValue(data=data, kind=pb.ERROR)
        count = max(spec.num_returns, 1)
        result = pb.TaskResult(
            task_id=spec.task_id,
            returns=[value] * count,
            run_seconds=run_seconds,
            application_error=application,
            end_time=time.time(),
        )
        if isinstance(error, TaskError):
            cause = error.root_cause()
            if cause is not None:
                result.error_types.extend(
                    f"{cls.__module__}.{cls.__qualname__}" for cls in type(cause).__mro__
                )
        return result


def _defined_at(function: Any) -> str:
    """`` (defined at FILE, line N)`` for a function or method, else nothing: a return value
    that cannot be pickled has no frame of the user's left to show."""
    code = getattr(getattr(function, "__func__", function), "__code__", None)
    if code is None:
        return ""
    return f" (defined at {code.co_filename}, line {code.co_firstlineno})"


def _flush_std_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # a task may have replaced or closed them
            pass


def _exit_now(code: int) -> None:
    _flush_std_streams()
    os._exit(code)
