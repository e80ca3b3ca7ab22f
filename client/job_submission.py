"""``ember.job_submission``: submit a program to a cluster and walk away, as ``ray.job_submission``.

    from ember.job_submission import JobSubmissionClient, JobStatus

    client = JobSubmissionClient("ember://127.0.0.1:10001")
    job = client.submit_job(entrypoint="python -m myproject.train",
                            runtime_env={"working_dir": "."})
    print(client.get_job_status(job), client.get_job_logs(job))

The method names, arguments and ``JobStatus`` values are Ray's. What differs: the address is the
head's client port (``ember://HOST:10001``, the same port drivers use, reachable through ``kubectl
port-forward``), not the dashboard's HTTP port, and every call presents the cluster token
(``token=``, else ``EMBER_TOKEN``/``EMBER_TOKEN_FILE``, else that of the cluster ``ember start``
left on this machine). A local ``working_dir`` is packed (``ember.working_dir``) and uploaded
to the head once, by content hash, before the job is submitted.

Times in ``JobDetails`` are milliseconds since the epoch, as Ray's are.
"""

from __future__ import annotations

import asyncio
import codecs
import concurrent.futures
import enum
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc
from grpc import aio

from ember import runtime_env_upload
from ember.runtime import session
from ember.runtime.wire import auth, package_format, package_transfer, rpc, tls
from ember.runtime.wire import runtime_env as env_spec
from ember.runtime.wire.package_format import PackageError
from ember.runtime.wire.protocol import ember_pb2 as pb
from ember.runtime.wire.protocol import ember_pb2_grpc as rpc_pb

T = TypeVar("T")
SCHEME = "ember://"
CALL_TIMEOUT = 30.0


class JobStatus(enum.StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    STOPPED = "STOPPED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"

    def is_terminal(self) -> bool:
        return self in (JobStatus.STOPPED, JobStatus.SUCCEEDED, JobStatus.FAILED)


class JobType(enum.StrEnum):
    SUBMISSION = "SUBMISSION"
    DRIVER = "DRIVER"


@dataclass
class JobDetails:
    """A job as Ray's ``JobDetails`` describes it (the fields ember fills)."""

    submission_id: str
    status: JobStatus
    entrypoint: str
    message: str = ""
    error_type: str | None = None
    start_time: int | None = None  # ms since the epoch: the entrypoint started
    end_time: int | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    runtime_env: dict[str, Any] = field(default_factory=dict)
    driver_exit_code: int | None = None
    driver_node_id: str | None = None  # where its supervisor runs (ember: the node's address)
    entrypoint_num_cpus: float | None = None
    entrypoint_num_gpus: float | None = None
    entrypoint_memory: int | None = None
    entrypoint_resources: dict[str, float] | None = None
    submit_time: int | None = None
    type: JobType = JobType.SUBMISSION
    job_id: str | None = None  # the driver's job id, in Ray; ember keeps jobs by submission id

    @classmethod
    def from_proto(cls, info: pb.JobInfo) -> JobDetails:
        shape = dict(info.entrypoint_shape.quantities)
        cpus, gpus, memory = shape.pop("CPU", None), shape.pop("GPU", None), shape.pop("memory", None)
        return cls(
            submission_id=info.submission_id,
            status=JobStatus(pb.JobStatus.Name(info.status).removeprefix("JOB_")),
            entrypoint=info.entrypoint,
            message=info.message,
            error_type=info.error_type or None,
            start_time=_ms(info.start_time),
            end_time=_ms(info.end_time),
            metadata=dict(info.metadata),
            runtime_env=json.loads(info.runtime_env_json) if info.runtime_env_json else {},
            driver_exit_code=info.exit_code if info.HasField("exit_code") else None,
            driver_node_id=info.node_address or None,
            entrypoint_num_cpus=cpus,
            entrypoint_num_gpus=gpus,
            entrypoint_memory=int(memory) if memory is not None else None,
            entrypoint_resources=shape or None,
            submit_time=_ms(info.submit_time),
        )


JobInfo = JobDetails  # Ray exports both names


def _ms(seconds: float) -> int | None:
    return int(seconds * 1000) if seconds else None


def resolve_address(address: str | None) -> str:
    """HOST:PORT of the head: the one given, else ``EMBER_ADDRESS``, else the cluster ``ember
    start`` left running on this machine."""
    given = address if address not in (None, "", "auto") else (
        os.environ.get("EMBER_ADDRESS") or session.read_current_cluster()
    )
    if not given:
        raise ConnectionError(
            "no cluster address: give one (ember://HOST:10001), set EMBER_ADDRESS, or start a "
            "cluster here with 'ember start --head'"
        )
    if given.startswith(("http://", "https://")):
        raise ValueError(
            f"{given!r} is an HTTP address: ember's job API is on the head's client port, the one "
            f"drivers use (ember://HOST:10001), not on the dashboard"
        )
    host_port = given.removeprefix(SCHEME)
    if ":" not in host_port:
        raise ValueError(f"address {given!r} must be HOST:PORT or ember://HOST:PORT")
    return host_port


class JobSubmissionClient:
    """Submit, watch and stop jobs on a cluster, through its head's client port."""

    def __init__(
        self,
        address: str | None = None,
        create_cluster_if_needed: bool = False,
        cookies: dict[str, Any] | None = None,
        metadata: dict[str, str] | None = None,
        headers: dict[str, Any] | None = None,
        verify: bool | str = True,
        *,
        token: str | None = None,
    ) -> None:
        if create_cluster_if_needed:
            raise ValueError("create_cluster_if_needed is not supported: start a cluster first (ember start --head)")
        if cookies or headers:
            raise ValueError("cookies and headers belong to Ray's HTTP API; ember's job API is gRPC: give token=")
        if verify is not True:
            raise ValueError("verify: ember checks the head's certificate with EMBER_TLS_CA (and EMBER_TLS_SERVER_NAME)")
        self.address = resolve_address(address)
        self._token = token if token is not None else (
            auth.from_environment() or session.token_of_current_cluster(self.address)
        )
        self._default_metadata = dict(metadata or {})
        # Fails here, as Ray's client does, when the head cannot be reached or refuses the token.
        self._run(lambda channel: rpc_pb.JobsStub(channel).ListJobs(pb.Empty(), timeout=CALL_TIMEOUT))

    # ------------------------------------------------------------------ plumbing

    def _channel(self) -> Any:
        config = tls.current()
        options = list(rpc.CHANNEL_OPTIONS)
        if config is not None:
            channel = aio.secure_channel(
                self.address, config.channel_credentials(), options=options + config.channel_options()
            )
        else:
            channel = aio.insecure_channel(self.address, options=options)
        return auth.TokenChannel(channel, self._token) if self._token else channel

    def _run(self, call: Callable[[Any], Awaitable[T]]) -> T:
        async def go() -> T:
            channel = self._channel()
            try:
                return await call(channel)
            except grpc.aio.AioRpcError as error:
                raise self._error(error) from None
            finally:
                await channel.close()

        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(go())
        # Called from a running event loop (a notebook): run on a thread of our own.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, go()).result()

    def _error(self, error: grpc.aio.AioRpcError) -> Exception:
        code, details = error.code(), error.details() or error.code().name
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            return ConnectionError(f"cannot reach the head at {self.address}: {details}")
        if code == grpc.StatusCode.UNAUTHENTICATED:
            return ConnectionError(f"the head at {self.address} refused the token: {details}")
        return RuntimeError(details)

    # ------------------------------------------------------------------ Ray's methods

    def submit_job(
        self,
        *,
        entrypoint: str,
        job_id: str | None = None,
        runtime_env: dict[str, Any] | None = None,
        metadata: dict[str, str] | None = None,
        submission_id: str | None = None,
        entrypoint_num_cpus: float | None = None,
        entrypoint_num_gpus: float | None = None,
        entrypoint_memory: int | None = None,
        entrypoint_resources: dict[str, float] | None = None,
    ) -> str:
        """Submit a job; returns its submission id. A local ``working_dir`` in ``runtime_env``
        is uploaded first (once: the head keeps packages by content hash)."""
        if job_id and submission_id and job_id != submission_id:
            raise ValueError("give submission_id (job_id is its old name), not both")
        env = prepare_runtime_env(runtime_env)
        request = pb.JobSubmission(
            submission_id=submission_id or job_id or "",
            entrypoint=entrypoint,
            metadata={**self._default_metadata, **(metadata or {})},
            entrypoint_num_cpus=entrypoint_num_cpus or 0.0,
            entrypoint_num_gpus=entrypoint_num_gpus or 0.0,
            entrypoint_memory=float(entrypoint_memory or 0),
            entrypoint_resources=entrypoint_resources or {},
        )

        async def submit(channel: Any) -> pb.JobInfo:
            request.runtime_env_json = env_spec.to_json(await upload_working_dir(channel, env))
            return await rpc_pb.JobsStub(channel).SubmitJob(request, timeout=CALL_TIMEOUT)

        return self._run(submit).submission_id

    def get_job_info(self, job_id: str) -> JobDetails:
        info = self._run(lambda c: rpc_pb.JobsStub(c).GetJob(pb.JobRef(submission_id=job_id), timeout=CALL_TIMEOUT))
        return JobDetails.from_proto(info)

    def get_job_status(self, job_id: str) -> JobStatus:
        return self.get_job_info(job_id).status

    def list_jobs(self) -> list[JobDetails]:
        jobs = self._run(lambda c: rpc_pb.JobsStub(c).ListJobs(pb.Empty(), timeout=CALL_TIMEOUT))
        return [JobDetails.from_proto(info) for info in jobs.jobs]

    def stop_job(self, job_id: str, grace_period_s: float | None = None) -> bool:
        """Ask the job to stop (SIGTERM, then SIGKILL after the grace period, 3 s by default);
        False when it had ended already."""
        request = pb.StopJobRequest(submission_id=job_id, grace_seconds=grace_period_s or 0.0)
        reply = self._run(lambda c: rpc_pb.JobsStub(c).StopJob(request, timeout=CALL_TIMEOUT))
        return bool(reply.stopping)

    def delete_job(self, job_id: str) -> bool:
        """Forget a job that ended, with its output; a job still running is refused."""
        reply = self._run(lambda c: rpc_pb.JobsStub(c).DeleteJob(pb.JobRef(submission_id=job_id), timeout=CALL_TIMEOUT))
        return bool(reply.deleted)

    def get_job_logs(self, job_id: str) -> str:
        """Everything the job printed so far."""

        async def read(channel: Any) -> bytes:
            parts = []
            async for chunk in rpc_pb.JobsStub(channel).TailJobLogs(
                pb.JobLogRequest(submission_id=job_id), timeout=CALL_TIMEOUT * 10
            ):
                parts.append(chunk.data)
            return b"".join(parts)

        return self._run(read).decode(errors="replace")

    async def tail_job_logs(self, job_id: str) -> AsyncIterator[str]:
        """The job's output as it comes, until the job ends (an async iterator, as Ray's)."""
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")  # a character may span chunks
        async for data in self.follow_bytes(job_id):
            text = decoder.decode(data)
            if text:
                yield text
        rest = decoder.decode(b"", final=True)
        if rest:
            yield rest

    async def follow_bytes(self, job_id: str, offset: int = 0) -> AsyncIterator[bytes]:
        """The job's output as bytes, from ``offset``, until the job ends."""
        channel = self._channel()
        try:
            async for chunk in rpc_pb.JobsStub(channel).TailJobLogs(
                pb.JobLogRequest(submission_id=job_id, offset=offset, follow=True)
            ):
                if chunk.data:
                    yield chunk.data
        except grpc.aio.AioRpcError as error:
            raise self._error(error) from None
        finally:
            await channel.close()



def prepare_runtime_env(value: dict[str, Any] | None) -> dict[str, Any]:
    """The runtime_env checked (``RuntimeEnvError`` names a bad field, a ``ValueError``), and a
    local working_dir checked to exist."""
    env = env_spec.validate(value or {})
    working_dir = env.get("working_dir", "")
    if working_dir and not _remote(working_dir) and not os.path.exists(working_dir):
        raise ValueError(f"runtime_env.working_dir {working_dir!r} does not exist on this machine")
    return env


def _remote(value: str) -> bool:
    return package_format.is_package_uri(value) or value.startswith(("http://", "https://"))


async def upload_working_dir(channel: Any, env: dict[str, Any]) -> dict[str, Any]:
    """``env`` with its local code (working_dir, py_modules) packed, uploaded (unless the head
    has it) and replaced by package URIs, and a requirements file read, as ``init`` does
    (``runtime_env_upload``); ``excludes`` applied, and kept in the runtime_env."""
    loop = asyncio.get_running_loop()
    stub = rpc_pb.PackagesStub(channel)

    def upload(data: bytes) -> str:
        return asyncio.run_coroutine_threadsafe(package_transfer.upload(stub, data), loop).result()

    try:
        resolved = await asyncio.to_thread(runtime_env_upload.resolve, env, upload)
    except PackageError as error:
        raise ValueError(str(error)) from None
    if env.get("excludes"):
        resolved["excludes"] = env["excludes"]
    return resolved
