"""Submitted jobs, as the head keeps them: ``ember job``, ``JobSubmissionClient``, the operator.

A job is a shell command (its *entrypoint*) that the cluster runs for the user, who may then
walk away: the head records it, starts a *supervisor* for it (``ember.runtime.entrypoint_main``,
on the head's node, or on a node with room when the job asks for entrypoint resources), and
keeps its status and output. The supervisor runs the entrypoint and holds a session with the
head (``SuperviseJob``) for as long as it runs: it reports the start, streams the output and
reports the end; the head sends it a stop when someone asks for one.

Everything a job is promised survives a head restart when the head has a state directory: the
records and output are written there as they change, supervisors keep their entrypoint running
while the head is away (for ``EMBER_HEAD_RESTART_GRACE_S``, as node agents keep detached
actors) and open a session with the new head, which sends them its own offset of their output
and takes them back. A head without a state directory cannot take anything back, so it tells
its supervisors to stop their entrypoints the moment it goes: nothing it started outlives it
unsupervised. A supervisor that never comes back is declared lost after
``SUPERVISOR_TIMEOUT`` and its job fails saying so.

Every call comes through the head's gRPC server, so each carries the cluster token, and a
driver outside the cluster (a laptop behind ``kubectl port-forward``) reaches all of it through
the client port.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from collections.abc import AsyncIterator, Callable

import grpc

from ember.runtime.head.job_launch import Launcher
from ember.runtime.head.job_store import SUBMISSION_ID, JobStore
from ember.runtime.head.package_store import PackageStore
from ember.runtime.wire import package_format, resources, runtime_env
from ember.runtime.wire.protocol import ember_pb2 as pb
from ember.runtime.wire.protocol import ember_pb2_grpc as rpc_pb

log = logging.getLogger("ember.runtime.head.jobs")

TERMINAL = (pb.JOB_STOPPED, pb.JOB_SUCCEEDED, pb.JOB_FAILED)
DEFAULT_STOP_GRACE = 3.0  # seconds between SIGTERM and SIGKILL, as Ray's
HEAD_RESTART_GRACE = float(os.environ.get("EMBER_HEAD_RESTART_GRACE_S", "60"))
SUPERVISOR_TIMEOUT = float(os.environ.get("EMBER_JOB_SUPERVISOR_TIMEOUT_S", "30"))
LOG_CHUNK = 1 << 20
COLLECT_INTERVAL = 60.0
MAX_ENTRYPOINT = 64 << 10
MAX_METADATA = 64 << 10


def status_name(status: int) -> str:
    return pb.JobStatus.Name(status).removeprefix("JOB_")


class JobRecord:
    """One job: its record, and the live session of its supervisor, if any."""

    def __init__(self, info: pb.JobInfo) -> None:
        self.info = info
        self.changed = asyncio.Event()  # set (and replaced) on every change: new output, status
        self.orders: asyncio.Queue[pb.SupervisorOrder] | None = None  # the live session's
        self.lost_timer: asyncio.TimerHandle | None = None
        self.launch: asyncio.Task[None] | None = None  # placing and starting its supervisor
        self.log_bytes = info.log_bytes

    @property
    def submission_id(self) -> str:
        return self.info.submission_id

    @property
    def terminal(self) -> bool:
        return self.info.status in TERMINAL

    def describe(self) -> str:
        return f"job {self.info.submission_id}"

    def touch(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()


class JobManager(rpc_pb.JobsServicer):
    def __init__(
        self,
        store: JobStore,
        packages: PackageStore,
        address: Callable[[], str],
        persistent: bool,
        launcher: Launcher,
    ) -> None:
        self.store = store
        self.packages = packages
        self.address = address  # the head's client address, once it listens
        # With a state directory a new head takes supervisors back: they wait for it.
        self.head_grace = HEAD_RESTART_GRACE if persistent else 0.0
        self.launcher = launcher
        launcher.on_ended = self.supervisor_ended
        launcher.on_waiting = self._waiting
        launcher.entrypoint_of = self._entrypoint_pid
        self.jobs: dict[str, JobRecord] = {}
        self._collector: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ life of the manager

    def restore(self) -> int:
        """Take back the jobs a previous head recorded; the running ones wait for their
        supervisors to open a session with this head."""
        restored = 0
        for info in self.store.load():
            record = JobRecord(info)
            record.log_bytes = info.log_bytes = self.store.log_size(info.submission_id)
            self.jobs[info.submission_id] = record
            restored += 1
            if not record.terminal:
                self.launcher.watch_host(info.submission_id)
                self._expect_supervisor(record, "it did not come back after the head restarted")
        return restored

    def start(self) -> None:
        self._collector = asyncio.ensure_future(self._collect_packages())

    async def close(self) -> None:
        if self._collector is not None:
            self._collector.cancel()
        for record in self.jobs.values():
            if record.lost_timer is not None:
                record.lost_timer.cancel()
            if record.launch is not None:
                record.launch.cancel()
        await self.launcher.close()

    async def _collect_packages(self) -> None:
        while True:
            await asyncio.sleep(COLLECT_INTERVAL)
            try:
                self.packages.collect(self.packages_in_use())
            except OSError as error:
                log.warning("cannot collect unused packages: %s", error)

    def packages_in_use(self) -> set[str]:
        used = set()
        for record in self.jobs.values():
            env = runtime_env.parse_json(record.info.runtime_env_json)
            for uri in [env.get("working_dir", ""), *env.get("py_modules", ())]:
                if package_format.is_package_uri(uri):
                    used.add(uri)
        return used

    # ------------------------------------------------------------------ the API

    async def SubmitJob(self, request: pb.JobSubmission, context: grpc.aio.ServicerContext) -> pb.JobInfo:
        try:
            info = self._accept(request)
        except ValueError as error:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
            raise AssertionError("unreachable") from None
        if info.submission_id in self.jobs:
            await context.abort(
                grpc.StatusCode.ALREADY_EXISTS,
                f"a job with submission id {info.submission_id!r} exists already "
                f"({status_name(self.jobs[info.submission_id].info.status)}); choose another id, "
                f"or delete that job first",
            )
        record = self.jobs[info.submission_id] = JobRecord(info)
        self._save(record)
        log.info("%s submitted: %s", record.describe(), info.entrypoint)
        record.launch = asyncio.ensure_future(self._launch(record))
        return info

    def _accept(self, request: pb.JobSubmission) -> pb.JobInfo:
        """The job a submission asks for, or ``ValueError`` saying what is wrong with it."""
        submission_id = request.submission_id or f"embersubmit_{os.urandom(8).hex()}"
        if not SUBMISSION_ID.match(submission_id):
            raise ValueError(
                f"submission id {submission_id!r}: use letters, digits, '_', '.' and '-' (at most "
                f"128, starting with a letter or digit)"
            )
        entrypoint = request.entrypoint
        if not entrypoint.strip():
            raise ValueError("the job has no entrypoint: give the command to run")
        if "\0" in entrypoint or len(entrypoint) > MAX_ENTRYPOINT:
            raise ValueError(f"the entrypoint must be text of at most {MAX_ENTRYPOINT} bytes")
        env = runtime_env.parse_json(request.runtime_env_json)
        working_dir = env.get("working_dir", "")
        if working_dir:
            if package_format.is_package_uri(working_dir):
                if not self.packages.has(working_dir):
                    raise ValueError(
                        f"runtime_env.working_dir {working_dir} is not on the head: upload it "
                        f"first (ember job submit and JobSubmissionClient do)"
                    )
            elif not working_dir.startswith(("https://", "http://")):
                raise ValueError(
                    f"runtime_env.working_dir {working_dir!r} is a path on the submitter's "
                    f"machine: the client uploads it and sends its package URI; the head "
                    f"takes a package URI or an http(s) URL of a zip"
                )
        if sum(len(k) + len(v) for k, v in request.metadata.items()) > MAX_METADATA:
            raise ValueError(f"the job's metadata is larger than {MAX_METADATA} bytes")
        shape = entrypoint_shape(request)
        return pb.JobInfo(
            submission_id=submission_id,
            status=pb.JOB_PENDING,
            entrypoint=entrypoint,
            message="submitted; starting its supervisor",
            submit_time=time.time(),
            metadata=request.metadata,
            runtime_env_json=runtime_env.to_json(env),
            entrypoint_shape=pb.ResourceSet(quantities=resources.to_float(shape)),
        )

    async def GetJob(self, request: pb.JobRef, context: grpc.aio.ServicerContext) -> pb.JobInfo:
        return (await self._find(request.submission_id, context)).info

    async def ListJobs(self, request: pb.Empty, context: grpc.aio.ServicerContext) -> pb.JobList:
        records = sorted(self.jobs.values(), key=lambda record: record.info.submit_time)
        return pb.JobList(jobs=[record.info for record in records])

    async def StopJob(self, request: pb.StopJobRequest, context: grpc.aio.ServicerContext) -> pb.StopJobReply:
        record = await self._find(request.submission_id, context)
        if record.terminal:
            return pb.StopJobReply(stopping=False, job=record.info)
        grace = request.grace_seconds
        if not (math.isfinite(grace) and grace >= 0):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"grace_seconds {grace} is not a number of seconds")
        self.stop(record, grace or DEFAULT_STOP_GRACE)
        return pb.StopJobReply(stopping=True, job=record.info)

    def stop(self, record: JobRecord, grace: float) -> None:
        record.info.stop_grace_seconds = grace
        if record.orders is not None:
            record.info.message = f"stopping: SIGTERM, then SIGKILL after {grace:g}s"
            record.orders.put_nowait(pb.SupervisorOrder(stop=grace))
        elif record.info.status == pb.JOB_PENDING and not record.info.entrypoint_pid:
            # Nothing runs yet (its supervisor waits for room, or is starting): it never will.
            if record.launch is not None:
                record.launch.cancel()
            self.launcher.abandon(record.submission_id)
            self.finish(record, pb.JOB_STOPPED, "stopped before its entrypoint started")
            return
        else:
            record.info.message = "stopping: its supervisor is told when it reconnects"
        log.info("%s: stop asked (grace %gs)", record.describe(), grace)
        self._save(record)

    async def DeleteJob(self, request: pb.JobRef, context: grpc.aio.ServicerContext) -> pb.DeleteJobReply:
        record = await self._find(request.submission_id, context)
        if not record.terminal:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"{record.describe()} is {status_name(record.info.status)}: only a job that ended "
                f"can be deleted (stop it first)",
            )
        del self.jobs[record.submission_id]
        self.store.delete(record.submission_id)
        record.touch()
        log.info("%s deleted", record.describe())
        return pb.DeleteJobReply(deleted=True)

    async def TailJobLogs(
        self, request: pb.JobLogRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.JobLogChunk]:
        record = await self._find(request.submission_id, context)
        offset = request.offset
        while True:
            changed = record.changed
            if offset < record.log_bytes:
                data = self.store.read(record.submission_id, offset, LOG_CHUNK)
                offset += len(data)
                yield pb.JobLogChunk(data=data, end=offset, status=record.info.status)
                continue
            if not request.follow or record.terminal or self.jobs.get(record.submission_id) is not record:
                if request.follow or not offset:
                    yield pb.JobLogChunk(end=offset, status=record.info.status)
                return
            await changed.wait()

    async def _find(self, submission_id: str, context: grpc.aio.ServicerContext) -> JobRecord:
        record = self.jobs.get(submission_id)
        if record is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no job with submission id {submission_id!r}")
            raise AssertionError("unreachable")
        return record

    # ------------------------------------------------------------------ supervisors

    async def _launch(self, record: JobRecord) -> None:
        try:
            where = await self.launcher.start(record.info, self.address())
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - a job that cannot start fails, saying why
            log.exception("%s: cannot start its supervisor", record.describe())
            self.finish(record, pb.JOB_FAILED, f"its supervisor could not be started: {error}",
                        "SUPERVISOR_FAILED")
            return
        finally:
            record.launch = None
        if record.terminal:
            return
        record.info.node_address = where
        record.info.message = f"its supervisor is starting on {where}"
        self._save(record)
        self._expect_supervisor(record, "its supervisor did not open a session with the head")

    def supervisor_ended(self, submission_id: str, why: str) -> None:
        """The launcher saw a supervisor end (its process exited, its host died): if it never
        reported its entrypoint's end, the job failed."""
        record = self.jobs.get(submission_id)
        if record is None or record.terminal:
            return
        self.finish(record, pb.JOB_FAILED, why, "SUPERVISOR_FAILED")

    def _entrypoint_pid(self, submission_id: str) -> int:
        record = self.jobs.get(submission_id)
        return record.info.entrypoint_pid if record is not None else 0

    def _waiting(self, submission_id: str, why: str) -> None:
        record = self.jobs.get(submission_id)
        if record is not None and not record.terminal and record.info.message != why:
            record.info.message = why
            self._save(record)

    def _expect_supervisor(self, record: JobRecord, why: str) -> None:
        if record.lost_timer is not None:
            record.lost_timer.cancel()

        def lost() -> None:
            record.lost_timer = None
            if record.orders is None and not record.terminal:
                self.finish(record, pb.JOB_FAILED, f"its supervisor is lost: {why} within "
                            f"{SUPERVISOR_TIMEOUT:g}s", "SUPERVISOR_FAILED")

        record.lost_timer = asyncio.get_running_loop().call_later(SUPERVISOR_TIMEOUT, lost)

    async def SuperviseJob(
        self, request_iterator: AsyncIterator[pb.SupervisorMessage], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.SupervisorOrder]:
        try:
            first = await anext(aiter(request_iterator))
        except StopAsyncIteration:
            return
        if first.WhichOneof("kind") != "hello":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "a supervisor's session starts with its hello")
        hello = first.hello
        record = self.jobs.get(hello.submission_id)
        if record is None or record.terminal:
            why = (
                f"no job {hello.submission_id!r} on this head" if record is None
                else f"job {hello.submission_id} has ended ({status_name(record.info.status)})"
            )
            log.warning("refused the supervisor pid %d on %s: %s", hello.pid, hello.host, why)
            yield pb.SupervisorOrder(refused=why)
            return
        if record.orders is not None:
            record.orders.put_nowait(pb.SupervisorOrder(refused="another supervisor took over this job"))
        orders: asyncio.Queue[pb.SupervisorOrder] = asyncio.Queue()
        record.orders = orders
        if record.lost_timer is not None:
            record.lost_timer.cancel()
            record.lost_timer = None
        if hello.entrypoint_pid:
            # Known already, unless the head went between the start and its record of it.
            record.info.entrypoint_pid = hello.entrypoint_pid
            record.info.start_time = record.info.start_time or hello.start_time
        if hello.output_bytes < record.log_bytes:
            log.warning("%s: its supervisor holds %d bytes of output, the head %d: it sends what follows",
                        record.describe(), hello.output_bytes, record.log_bytes)
        log.info("%s: supervisor pid %d on %s opened its session", record.describe(), hello.pid, hello.host)
        yield pb.SupervisorOrder(welcome=pb.SupervisorWelcome(
            entrypoint=record.info.entrypoint,
            runtime_env_json=record.info.runtime_env_json,
            output_offset=record.log_bytes,
            head_grace_seconds=self.head_grace,
            head_address=self.address(),
        ))
        if record.info.stop_grace_seconds:
            orders.put_nowait(pb.SupervisorOrder(stop=record.info.stop_grace_seconds))
        reader = asyncio.ensure_future(self._read_supervisor(record, request_iterator, orders))
        try:
            while True:
                getter = asyncio.ensure_future(orders.get())
                await asyncio.wait((getter, reader), return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():
                    getter.cancel()
                    return
                order = getter.result()
                yield order
                if order.WhichOneof("kind") in ("done", "refused"):
                    return
        finally:
            reader.cancel()
            if record.orders is orders:
                record.orders = None
                if not record.terminal:
                    log.warning("%s: its supervisor's session ended; waiting for it to return", record.describe())
                    self._expect_supervisor(record, "its session with the head broke, and it did not return")

    async def _read_supervisor(
        self, record: JobRecord, messages: AsyncIterator[pb.SupervisorMessage],
        orders: asyncio.Queue[pb.SupervisorOrder],
    ) -> None:
        try:
            async for message in messages:
                kind = message.WhichOneof("kind")
                if kind == "output":
                    try:
                        record.log_bytes = self.store.append(
                            record.submission_id, message.output.offset, message.output.data
                        )
                    except ValueError as error:
                        log.error("%s", error)
                        orders.put_nowait(pb.SupervisorOrder(refused=str(error)))
                        return
                    record.info.log_bytes = record.log_bytes
                    record.touch()
                elif kind == "started":
                    record.info.entrypoint_pid = message.started
                    record.info.start_time = record.info.start_time or time.time()
                    if record.info.status == pb.JOB_PENDING:
                        record.info.status = pb.JOB_RUNNING
                        record.info.message = f"running (pid {message.started} on {record.info.node_address})"
                        log.info("%s is running: entrypoint pid %d", record.describe(), message.started)
                    self._save(record)
                elif kind == "exited":
                    self._exited(record, message.exited)
                    orders.put_nowait(pb.SupervisorOrder(done=pb.Empty()))
                    return
        except grpc.aio.AioRpcError:
            pass

    def _exited(self, record: JobRecord, exited: pb.EntrypointExited) -> None:
        if exited.failure:
            self.finish(record, pb.JOB_FAILED, exited.failure, exited.error_type or "SETUP_FAILED",
                        end_time=exited.end_time)
            return
        code = exited.exit_code
        record.info.exit_code = code
        how = f"exited with code {code}" if code >= 0 else f"was killed by signal {-code}"
        if exited.stopped:
            self.finish(record, pb.JOB_STOPPED, f"stopped: the entrypoint {how}", end_time=exited.end_time)
        elif code == 0:
            self.finish(record, pb.JOB_SUCCEEDED, "the entrypoint exited with code 0", end_time=exited.end_time)
        else:
            self.finish(record, pb.JOB_FAILED, f"the entrypoint {how}", "ENTRYPOINT_FAILED",
                        end_time=exited.end_time)

    def finish(
        self, record: JobRecord, status: int, message: str, error_type: str = "", end_time: float = 0.0
    ) -> None:
        if record.terminal:
            return
        info = record.info
        info.status = status  # type: ignore[assignment]
        info.message = message
        info.error_type = error_type
        info.end_time = end_time or time.time()
        if record.lost_timer is not None:
            record.lost_timer.cancel()
            record.lost_timer = None
        self.launcher.finished(record.submission_id)
        log.info("%s %s: %s", record.describe(), status_name(status), message)
        self._save(record)

    def _save(self, record: JobRecord) -> None:
        record.info.log_bytes = record.log_bytes
        try:
            self.store.save(record.info)
        except OSError as error:
            log.error("%s: cannot write its record in %s: %s", record.describe(), self.store.directory, error)
        record.touch()


def entrypoint_shape(request: pb.JobSubmission) -> resources.Shape:
    """The resources the entrypoint holds, checked: each a finite number, none negative."""
    asked = dict(request.entrypoint_resources)
    for name, value in (("CPU", request.entrypoint_num_cpus), ("GPU", request.entrypoint_num_gpus),
                        ("memory", request.entrypoint_memory)):
        if value:
            if name in asked:
                raise ValueError(f"entrypoint resources name {name!r}: give it as entrypoint_num_"
                                 f"{'cpus' if name == 'CPU' else 'gpus' if name == 'GPU' else 'memory'} only")
            asked[name] = value
    for name, value in asked.items():
        if not name or not math.isfinite(value) or value < 0:
            raise ValueError(f"entrypoint resource {name!r}: {value} is not a quantity (a number >= 0)")
    return {k: v for k, v in resources.to_fixed(asked).items() if v}
