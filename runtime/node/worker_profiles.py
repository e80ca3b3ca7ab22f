"""A worker's CPU profile (``ember profile``) and a task's log lines, asked of the node's workers.

The profile is py-spy's where py-spy is installed on the node and may attach to the worker
(``ptrace``; in a container, ``SYS_PTRACE``): it reads the process from outside, so it sees a
task that holds the GIL in a C loop too. Otherwise, or when asked to, the worker samples itself
(``core.cpu_profile``), and the answer says why py-spy was not used. Either way the samples
come back as collapsed stacks, and the head and the CLI render them.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable

import grpc

from ember.runtime.node.worker_pool import DEAD, WorkerHandle
from ember.runtime.wire import profile_formats, rpc
from ember.runtime.wire.protocol import ember_pb2 as pb

ANSWER_SLACK = 10.0  # seconds beyond the duration a worker (or py-spy) has to answer
ASK_TIMEOUT = 4.0


async def profile(
    workers: Iterable[WorkerHandle], request: pb.ProfileRequest, channels: rpc.Channels,
    node_id: bytes, node_address: str, where: str,
) -> pb.ClusterProfiles:
    """The profile of the live worker ``request.pid`` (none when this node has no such worker)."""
    try:
        request = profile_formats.checked(request)
    except profile_formats.BadProfileRequest as bad:
        return pb.ClusterProfiles(errors=[f"{where}: {bad}"])
    chosen = [w for w in workers if w.address and w.state != DEAD and w.pid == request.pid]
    result = pb.ClusterProfiles()
    for worker in chosen:
        answer = await _one(worker, request, channels, where)
        answer.node_id = node_id
        answer.node_address = node_address
        result.processes.append(answer)
    return result


async def _one(
    worker: WorkerHandle, request: pb.ProfileRequest, channels: rpc.Channels, where: str
) -> pb.ProcessProfile:
    note = ""
    if request.sampler in ("", "auto", "py-spy"):
        found, note = await _py_spy(worker.pid, request, where)
        if found is not None:
            return found
        if request.sampler == "py-spy":
            return pb.ProcessProfile(pid=worker.pid, kind="WORKER", error=note)
    try:
        answer: pb.ProcessProfile = await channels.core_worker(worker.address).Profile(
            request, timeout=request.duration + ANSWER_SLACK
        )
    except grpc.aio.AioRpcError as error:
        answer = pb.ProcessProfile(
            pid=worker.pid, kind="WORKER",
            error=f"worker pid {worker.pid} on {where} did not answer: {error.code().name} {error.details()}",
        )
    answer.note = note
    return answer


def py_spy_program() -> str | None:
    """py-spy on the PATH, or installed beside this interpreter (``pip install 'ember[py-spy]'``
    into the environment the agent runs from, whose bin directory need not be on the PATH)."""
    beside = os.path.join(os.path.dirname(sys.executable), "py-spy")
    return shutil.which("py-spy") or (beside if os.access(beside, os.X_OK) else None)


async def _py_spy(
    pid: int, request: pb.ProfileRequest, where: str
) -> tuple[pb.ProcessProfile | None, str]:
    """py-spy's profile, or None and why there is none."""
    program = py_spy_program()
    if program is None:
        return None, f"py-spy is not installed on {where}: the worker sampled itself"
    with tempfile.TemporaryDirectory(prefix="ember-profile-") as directory:
        output = os.path.join(directory, "profile.txt")
        command = [
            program, "record", "--pid", str(pid), "--duration", str(max(1, round(request.duration))),
            "--rate", str(request.rate), "--format", "raw", "--function", "--threads",
            "--nonblocking", "--output", output,
        ]
        if request.idle:
            command.append("--idle")
        started = time.time()
        process = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            stdin=asyncio.subprocess.DEVNULL,
        )
        try:
            out, _ = await asyncio.wait_for(process.communicate(), request.duration + ANSWER_SLACK)
        except TimeoutError:
            process.kill()
            await process.wait()
            return None, f"py-spy did not finish within {request.duration + ANSWER_SLACK:g}s on {where}"
        finally:
            if process.returncode is None:  # cancelled: py-spy is ours to stop
                process.kill()
                await process.wait()
        if process.returncode != 0 or not os.path.exists(output):
            text = out.decode(errors="replace").strip()[-500:]
            return None, f"py-spy could not profile pid {pid} on {where} ({text}): the worker sampled itself"
        with open(output, errors="replace") as f:
            stacks, dropped = profile_formats.parse_collapsed(f.read(profile_formats.MAX_TEXT * 4))
    return pb.ProcessProfile(
        pid=pid, kind="WORKER", sampler="py-spy", started=started, duration=time.time() - started,
        rate=request.rate, stacks=stacks, samples=sum(s.count for s in stacks), dropped=dropped,
    ), ""


async def task_log(
    workers: Iterable[WorkerHandle], request: pb.TaskLogRequest, channels: rpc.Channels, where: str
) -> pb.TaskLog:
    """The lines task ``request.task_id`` wrote on worker ``request.pid``, as the worker indexed them."""
    for worker in workers:
        if worker.pid == request.pid and worker.address and worker.state != DEAD:
            try:
                reply: pb.TaskLog = await channels.core_worker(worker.address).GetTaskLog(
                    request, timeout=ASK_TIMEOUT
                )
                return reply
            except grpc.aio.AioRpcError as error:
                return pb.TaskLog(
                    error=f"worker pid {request.pid} on {where} did not answer: {error.code().name} {error.details()}"
                )
    return pb.TaskLog(
        error=f"worker pid {request.pid} on {where} is gone: a task's lines are kept by its worker "
        "(the worker's log files still hold them: ember logs)"
    )
