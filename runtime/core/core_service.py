"""The CoreWorker gRPC service every driver and worker serves.

Drivers serve ``GetObject`` and ``GetObjects`` (borrowers fetch owned values) and ``PushLogs`` (workers send what
tasks print); workers serve ``GetObject`` and ``CancelTasks``. Tasks themselves travel on the
task channel (``task_channel.py``), not here.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

import grpc

from ember.runtime.core import cpu_profile, object_listing, stack_dump
from ember.runtime.wire.protocol import ember_pb2 as pb
from ember.runtime.wire.protocol import ember_pb2_grpc as rpc

if TYPE_CHECKING:
    from ember.runtime.core.executor import Executor
    from ember.runtime.core.owner import Owner


class CoreWorkerService(rpc.CoreWorkerServicer):
    def __init__(
        self,
        owner: Callable[[], Owner | None],
        executor: Executor | None = None,
        log_sink: Callable[[pb.LogBatch], None] | None = None,
    ) -> None:
        self._owner = owner
        self._executor = executor
        self._log_sink = log_sink
        self._kind = "WORKER" if executor is not None else "DRIVER"

    async def CancelTasks(
        self, request: pb.CancelRequest, context: grpc.aio.ServicerContext
    ) -> pb.Empty:
        if self._executor is None:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "a driver runs no tasks")
        else:
            self._executor.cancel(request.task_ids, request.force)
        return pb.Empty()

    async def GetObject(
        self, request: pb.GetObjectRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetObjectReply:
        owner = self._owner()
        if owner is None:
            return pb.GetObjectReply(lost_reason="the process it names owns no objects")
        return await owner.exchange.serve_get_object(request.id)

    async def GetObjects(
        self, request: pb.ObjectIds, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.GetObjectReply]:
        owner = self._owner()
        if owner is None:
            for object_id in request.ids:
                yield pb.GetObjectReply(id=object_id, lost_reason="the process it names owns no objects")
            return
        async for reply in owner.exchange.serve_get_objects(list(request.ids)):
            yield reply

    async def UpdateBorrows(
        self, request: pb.BorrowUpdate, context: grpc.aio.ServicerContext
    ) -> pb.Empty:
        owner = self._owner()
        if owner is not None:
            owner.borrowing.serve_update(request)
        return pb.Empty()

    async def ObjectsMoved(
        self, request: pb.ObjectsMovedRequest, context: grpc.aio.ServicerContext
    ) -> pb.ObjectIds:
        owner = self._owner()
        if owner is None:
            return pb.ObjectIds(ids=[m.id for m in request.objects])
        return owner.exchange.serve_objects_moved(request)

    async def ListObjects(self, request: pb.Empty, context: grpc.aio.ServicerContext) -> pb.ProcessObjects:
        owner = self._owner()
        if owner is None:
            return pb.ProcessObjects(pid=os.getpid(), kind=self._kind)
        return object_listing.list_objects(owner, self._kind, owner.objects.node_id)

    async def DumpStacks(self, request: pb.Empty, context: grpc.aio.ServicerContext) -> pb.ProcessStacks:
        return stack_dump.dump(self._kind, self._executor)

    async def Profile(self, request: pb.ProfileRequest, context: grpc.aio.ServicerContext) -> pb.ProcessProfile:
        return await cpu_profile.profile(request, self._kind)

    async def GetTaskLog(self, request: pb.TaskLogRequest, context: grpc.aio.ServicerContext) -> pb.TaskLog:
        executor = self._executor
        if executor is None or executor.task_logs is None:
            return pb.TaskLog(error=f"{self._kind.lower()} pid {os.getpid()} keeps no task log index")
        return executor.task_logs.read(request.task_id)

    async def Watch(self, request: pb.Empty, context: grpc.aio.ServicerContext) -> AsyncIterator[pb.Empty]:
        await asyncio.Event().wait()
        yield pb.Empty()  # never reached: the stream ends with this process

    async def PushLogs(self, request: pb.LogBatch, context: grpc.aio.ServicerContext) -> pb.Empty:
        if self._log_sink is not None:
            self._log_sink(request)
        return pb.Empty()


def print_logs(batch: pb.LogBatch, local_host: str) -> None:
    """Print a worker's output in the driver's terminal, as ``(f pid=1234) hello``."""
    where = f", ip={batch.node_host}" if batch.node_host and batch.node_host != local_host else ""
    out: list[str] = []
    err: list[str] = []
    for record in batch.records:
        name = record.task_name or "worker"
        line = f"({name} pid={batch.pid}{where}) {record.text}\n"
        (err if record.is_stderr else out).append(line)
    if out:
        sys.stdout.write("".join(out))
        sys.stdout.flush()
    if err:
        sys.stderr.write("".join(err))
        sys.stderr.flush()
