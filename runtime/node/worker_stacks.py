"""What the node's workers are doing now (``ember stack``): each worker's own dump of its
threads' Python stacks, and, when asked for, py-spy's.

A worker answers from a thread of its gRPC service (``core.stack_dump``), so a task stuck in
a call (``time.sleep``, a lock, a socket) on the main thread does not keep it from answering.
py-spy reads a process from outside, so it also sees native frames and a worker whose
interpreter is wedged; it is optional (a separate install) and needs the right to attach
(``ptrace``), so without it, or when it cannot attach, the worker's own dump stands and the
reason is said.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import grpc

from ember.runtime.node.worker_pool import DEAD, WorkerHandle
from ember.runtime.node.worker_profiles import py_spy_program
from ember.runtime.wire import rpc
from ember.runtime.wire.protocol import ember_pb2 as pb

ASK_TIMEOUT = 4.0  # seconds a worker has to answer (below the head's 5)
PY_SPY_TIMEOUT = 10.0


async def dump(
    workers: Iterable[WorkerHandle], request: pb.StackRequest, channels: rpc.Channels,
    node_id: bytes, node_address: str, where: str,
) -> pb.ClusterStacks:
    """The stacks of the live workers (of ``request.pid`` alone, when given)."""
    chosen = [
        w for w in workers
        if w.address and w.state != DEAD and (not request.pid or w.pid == request.pid)
    ]

    async def one(worker: WorkerHandle) -> pb.ProcessStacks:
        try:
            reply: pb.ProcessStacks = await channels.core_worker(worker.address).DumpStacks(
                pb.Empty(), timeout=ASK_TIMEOUT
            )
        except grpc.aio.AioRpcError as error:
            reply = pb.ProcessStacks(
                pid=worker.pid, kind="WORKER", worker_id=worker.worker_id,
                error=f"worker pid {worker.pid} on {where} did not answer: "
                f"{error.code().name} {error.details()}",
            )
        reply.node_id = node_id
        reply.node_address = node_address
        if request.py_spy:
            await _py_spy(reply, worker.pid, where)
        return reply

    return pb.ClusterStacks(processes=await asyncio.gather(*(one(w) for w in chosen)))


async def _py_spy(reply: pb.ProcessStacks, pid: int, where: str) -> None:
    program = py_spy_program()
    if program is None:
        reply.error = _joined(reply.error, f"py-spy is not installed on {where}")
        return
    process = await asyncio.create_subprocess_exec(
        program, "dump", "--pid", str(pid),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), PY_SPY_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        reply.error = _joined(reply.error, f"py-spy did not finish within {PY_SPY_TIMEOUT:g}s")
        return
    text = out.decode(errors="replace")
    if process.returncode == 0:
        reply.py_spy = text
    else:
        reply.error = _joined(
            reply.error, f"py-spy could not attach to pid {pid} on {where}: {text.strip()[-500:]}"
        )


def _joined(first: str, second: str) -> str:
    return f"{first}; {second}" if first else second
