"""The owner: what a driver, and a worker running nested tasks, does with its tasks and objects.

An owner submits tasks (resolving their ObjectRef arguments first), receives their results,
retries them when a worker dies, keeps the values it owns and serves them to borrowers, and
counts the refs alive in its process. Drivers and workers share this code (Ray calls it the
core worker); the public API in ``ember`` is a thin face over it.

``Owner`` is the user's entry point and the composition of the parts below it, each a module:

- ``task_arguments``: how a call's arguments travel, and waiting for the refs among them;
- ``task_submitter``, ``actor_submitter``: leasing workers and pushing tasks, calling actors;
- ``task_manager``: what becomes of each task (results, retries, failures, cancellation);
- ``memory_store``, ``reference_table``, ``borrowing``: the values held here, and the refs to
  them counted here and in the processes that borrow them;
- ``object_exchange``: values fetched from their owners, and served to borrowers;
- ``actor_lifecycle``: actors created, looked up, killed, and let go when unreferenced;
- ``placement_group_calls``: placement groups created, waited for, removed, at the head;
- ``store_client``: large values in the node's shared-memory object store.

Threads: the user's thread calls ``submit_task``, ``put``, ``get``, ``wait`` and ``cancel``;
everything else runs on the I/O thread. Submissions cross over in batches through a deque.

The module is a little over 600 lines because it is the owner's whole user-thread API over the
parts above, each method a few lines handing over to them: split, a reader would look for
``put`` in one module and ``get`` in another.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import grpc

from ember.runtime.core import call_sites
from ember.runtime.core.actor_lifecycle import ActorLifecycle
from ember.runtime.core.actor_submitter import ActorSubmitter
from ember.runtime.core.borrowing import Borrowing
from ember.runtime.core.gc_pacing import GcPacing
from ember.runtime.core.memory_store import VALUE, MemoryStore, StoredValue
from ember.runtime.core.object_exchange import ObjectExchange
from ember.runtime.core.placement_group_calls import PlacementGroupCalls
from ember.runtime.core.process_metrics import ProcessMetrics
from ember.runtime.core.reference_table import ReferenceTable
from ember.runtime.core.store_client import StoreClient
from ember.runtime.core.task_arguments import ArgumentResolver, serialize_args
from ember.runtime.core.task_manager import TaskManager
from ember.runtime.core.task_record import (
    QUEUED,
    ActorOptions,
    FunctionDescriptor,
    TaskOptions,
    TaskRecord,
    actor_call,
)
from ember.runtime.core.task_submitter import TaskSubmitter
from ember.runtime.core.worker_channels import WorkerChannels
from ember.runtime.objects import ids, serialization, unpicklable
from ember.runtime.objects.exceptions import (
    EmberError,
    GetTimeoutError,
    ObjectLostError,
    RuntimeConnectionError,
    TaskError,
)
from ember.runtime.objects.object_ref import ObjectRef
from ember.runtime.wire import package_transfer
from ember.runtime.wire import runtime_env as env_spec
from ember.runtime.wire.event_loop import IoThread
from ember.runtime.wire.metrics_report import REPORT_INTERVAL
from ember.runtime.wire.protocol import ember_pb2 as pb
from ember.runtime.wire.protocol import ember_pb2_grpc as rpc_pb
from ember.runtime.wire.rpc import Channels
from ember.runtime.wire.task_channel import ChannelClient

log = logging.getLogger("ember.runtime.core.owner")

RELEASE_DRAIN_INTERVAL = 0.05


class Owner:
    def __init__(
        self,
        io: IoThread,
        address: str,
        job_config: pb.JobConfig,
        local_agent: str,
        head_address: str,
        node_id: bytes,
        store_dir: str,
        component: str = "worker",
    ) -> None:
        self.io = io
        self.address = address
        self.job_config = job_config
        self.job_id = job_config.job_id
        self.local_agent = local_agent
        self.head_address = head_address
        self.channels = Channels()
        self.objects = StoreClient(io, self.channels, local_agent, node_id, store_dir, address)
        self.store = MemoryStore()
        self.borrowing = Borrowing(io, self.channels, address, self._maybe_free)
        self.escaped = self.borrowing.escaped
        self.borrowers = self.borrowing.borrowers
        self.references = ReferenceTable(self._on_zero_refs, address, self.borrowing.started)
        # Actor handles are counted like refs; an owned actor nobody can call is let go.
        self.handles = ReferenceTable(self._on_zero_handles)
        self.mint = ids.IdMint()
        self._put_task = self.mint.task_id()
        self._put_index = 0
        self.tasks: dict[bytes, TaskRecord] = {}
        # Finished tasks whose results live in an object store, kept (with their arguments)
        # while a result is referenced, to run them again if every copy is lost.
        self.lineage: dict[bytes, TaskRecord] = {}
        self._submissions: deque[TaskRecord] = deque()
        self._submit_scheduled = False
        self._closed = False
        self.lost = ""  # why the cluster is gone, once it is
        self.metrics = ProcessMetrics(component, self.job_id, address)
        self.gc_pacing = GcPacing()
        # Set in workers: called with True when the running task blocks in get, False after.
        self.on_blocked: Callable[[bool], None] | None = None
        # The runtime_env this process's tasks and actors inherit (canonical JSON, "" : none):
        # a driver's job-wide one, or the one a worker was set up for. Set once, before use.
        self.runtime_env = ""
        self.record_call_sites = call_sites.enabled()
        self.submitter: TaskSubmitter = io.run(self._start())
        self.placement_groups = PlacementGroupCalls(io, self.channels, head_address, self.promise)

    async def _start(self) -> TaskSubmitter:
        """The parts that live on the I/O thread, made there (they keep its loop)."""
        self._loop = asyncio.get_running_loop()
        self._drain_handle = self._loop.call_later(RELEASE_DRAIN_INTERVAL, self._periodic_drain)
        self._metrics_task = asyncio.ensure_future(self._report_metrics())
        self.worker_channels = WorkerChannels(
            pb.ChannelHello(job=self.job_config, owner_address=self.address),
            self._on_channel_reply,
            self._on_channel_lost,
        )
        self.task_manager = manager = TaskManager(
            self.tasks, self.lineage, self.store, self.references, self.borrowing, self.objects,
            self.metrics, self,
        )
        self.actors = ActorSubmitter(manager, self.channels, self.worker_channels, self.head_address)
        self.metrics.actor_info = self.actors.info  # where its calls ran, for the timeline
        lease_owner = pb.LeaseOwner(job_id=self.job_id, owner_address=self.address, pid=os.getpid())
        submitter = TaskSubmitter(
            manager, self.channels, self.worker_channels, lease_owner, self.local_agent,
            self.head_address,
        )
        manager.runs_on(submitter, self.actors)
        self.exchange = ObjectExchange(
            self.address, self.channels, self.store, self.references, self, self.borrowing,
            self.tasks, self.lineage,
        )
        self.arguments = ArgumentResolver(
            self.store, self.address, self.exchange.fetch_all, manager.finish,
            self._arguments_ready,
        )
        self.actor_lifecycle = ActorLifecycle(
            self.io, self.channels, self.head_address, self.job_config, self.address, self.mint,
            self.tasks, self.actors, self.exchange.value_of, self.metrics.live,
        )
        return submitter

    def _on_channel_reply(self, channel: ChannelClient, reply: pb.ExecuteReply) -> None:
        tasks: list[tuple[TaskRecord, pb.TaskResult]] = []
        calls: list[tuple[TaskRecord, pb.TaskResult]] = []
        task_running = self.submitter.running
        call_running = self.actors.running
        for result in reply.results:
            task = task_running.pop(result.task_id, None)
            if task is not None:
                tasks.append((task, result))
                continue
            call = call_running.pop(result.task_id, None)
            if call is not None:
                calls.append((call, result))
        if tasks:
            self.submitter.on_results(tasks)
        if calls:
            self.actors.on_results(calls)

    def _on_channel_lost(self, channel: ChannelClient, reason: str) -> None:
        self.submitter.on_channel_lost(channel, reason)
        self.actors.on_channel_lost(channel, reason)

    async def _report_metrics(self) -> None:
        """Every few seconds, what this process's tasks and user metrics did, to its agent."""
        while not self._closed:
            await asyncio.sleep(REPORT_INTERVAL)
            self.gc_pacing.pending(len(self.tasks))  # a burst that ended: the thresholds back
            await self.flush_metrics()

    async def flush_metrics(self, timeout: float = 5.0) -> None:
        """Send what was counted since the last report (also on the way out, so that a
        worker retired while idle loses nothing it counted)."""
        report = self.metrics.report()
        if report is None or not self.local_agent:
            return
        try:
            await self.channels.node_agent(self.local_agent).ReportMetrics(report, timeout=timeout)
        except grpc.aio.AioRpcError as error:
            log.debug("metrics report to %s failed: %s", self.local_agent, error.code().name)

    def _periodic_drain(self) -> None:
        self.handles.drain()
        self.references.drain()
        self.objects.release_dead_pins()
        if not self._closed:
            self._drain_handle = self._loop.call_later(
                RELEASE_DRAIN_INTERVAL, self._periodic_drain
            )

    # ================================================================== user thread

    def submit_task(
        self,
        function: FunctionDescriptor,
        args: Sequence[Any],
        kwargs: dict[str, Any],
        options: TaskOptions,
    ) -> list[ObjectRef]:
        self._check_open()
        data, deps, nested = serialize_args(function.name, args, kwargs, self.put)
        task_id = self.mint.task_id()
        return_ids = [task_id + i.to_bytes(4, "big") for i in range(1, options.num_returns + 1)]
        refs = [ObjectRef(rid, self.address, self) for rid in return_ids]
        # Refs nested in the arguments are held by the task until its reply, by which time the
        # worker has registered as a borrower of those it keeps.
        task = TaskRecord(task_id, function, options, data, deps, nested, return_ids, self.metrics.live)
        if options.runtime_env or self.runtime_env:
            task.runtime_env = self.environment_of(options.runtime_env)
        if self.record_call_sites:
            task.call_site = call_sites.find(call_sites.TASK_CALL)
        self._submissions.append(task)
        if not self._submit_scheduled:
            self._submit_scheduled = True
            self.io.call_soon(self._drain_submissions)
        return refs

    def environment_of(self, own: str) -> str:
        """A task's or actor's own runtime_env merged over this process's, as Ray does."""
        return env_spec.inherit_json(self.runtime_env, own)

    def upload_package(self, data: bytes) -> str:
        """Put a code package on the head (once: by content hash), for this job; its URI."""
        self._check_open()

        async def upload() -> str:
            stub = rpc_pb.PackagesStub(self.channels.channel(self.head_address))
            return await package_transfer.upload(stub, data, job_id=self.job_id)

        uri: str = self.io.run(upload())
        return uri

    def put(self, value: Any) -> ObjectRef:
        self._check_open()
        if isinstance(value, ObjectRef):
            raise TypeError(
                "Calling put on an ObjectRef is not allowed; to store the ref itself, "
                "wrap it in a list: put([ref])"
            )
        if self.references.pending_releases():
            # Free what was dropped before taking more room: the frees are queued on the I/O
            # loop ahead of this put's create, which sends them to the store first.
            self.references.drain()
        self._put_index += 1
        object_id = self._put_task + self._put_index.to_bytes(4, "big")
        try:
            data, location, contained = self.objects.encode(value, object_id, self.address)
        except EmberError:
            raise
        except Exception:
            why = unpicklable.reason(value)
            if why is None:
                raise
            raise TypeError(f"ember.put() could not store its value: {why}") from None
        if contained:
            self.borrowing.escape(contained)
        ref = ObjectRef(object_id, self.address, self)
        stored = StoredValue(data, VALUE, contained or None, location)
        if self.record_call_sites:
            stored.call_site = call_sites.find(call_sites.PUT)
        self.store.put(object_id, stored)
        return ref

    def promise(self) -> tuple[ObjectRef, Callable[[StoredValue], None]]:
        """A ref owned here whose value something other than a task provides later (a
        placement group's readiness), and the call (on the I/O thread) that provides it.
        Borrowers asking meanwhile wait; a value nobody holds a ref to any more is dropped."""
        self._check_open()
        self._put_index += 1
        object_id = self._put_task + self._put_index.to_bytes(4, "big")
        ref = ObjectRef(object_id, self.address, self)
        self.exchange.pending.add(object_id)

        def fulfil(value: StoredValue) -> None:
            self.exchange.pending.discard(object_id)
            if (
                self.references.count(object_id)
                or object_id in self.escaped
                or object_id in self.borrowers
            ):
                self.store.put(object_id, value)

        return ref, fulfil

    def get(self, refs: Sequence[ObjectRef], timeout: float | None = None) -> list[Any]:
        store = self.store
        missing = [ref for ref in refs if ref._id not in store]
        if missing:
            self._check_open()
            self._wait_present(missing, len(missing), timeout, raise_on_timeout=True)
        values = []
        for ref in refs:
            value = store.get(ref._id)
            try:
                values.append(self._deserialize(value, ref))
            except ObjectLostError as lost:
                if value is not None and value.kind != VALUE:
                    # The task failed, with an object it read lost (its message says so and
                    # why): its result is that error, not a copy gone missing here.
                    raise
                values.append(self._rebuild(ref, lost, timeout))
        return values

    def _rebuild(self, ref: ObjectRef, lost: ObjectLostError, timeout: float | None) -> Any:
        """Every copy of the object is gone: run the task that made it again, if it may be."""
        if self.lost:
            raise RuntimeConnectionError(self.lost)  # and nothing runs again for this job
        task = self.lineage.get(ref.task_id())
        if task is None:
            if ref._owner_address != self.address:
                what = f"this process borrows it from its owner at {ref._owner_address}"
            elif ref._id[:16] == self._put_task:
                what = "it was put, not computed"
            else:
                what = "the task that made it may not run again (max_retries=0, or an actor method)"
            raise ObjectLostError(f"{lost}; it cannot be rebuilt: {what}") from None
        if not self.io.run(self.task_manager.resubmit(task, str(lost))):
            raise ObjectLostError(
                f"{lost}; rebuilding it failed: {task.describe()} ran out of retries "
                f"(max_retries={task.options.max_retries})"
            ) from None
        self._wait_present([ref], 1, timeout, raise_on_timeout=True)
        return self._deserialize(self.store.get(ref._id), ref)

    def wait(
        self, refs: Sequence[ObjectRef], num_returns: int, timeout: float | None
    ) -> tuple[list[ObjectRef], list[ObjectRef]]:
        store = self.store
        missing = [ref for ref in refs if ref._id not in store]
        if len(refs) - len(missing) < num_returns:
            self._check_open()
            needed = num_returns - (len(refs) - len(missing))
            self._wait_present(missing, needed, timeout, raise_on_timeout=False)
        ready: list[ObjectRef] = []
        not_ready: list[ObjectRef] = []
        for ref in refs:
            if len(ready) < num_returns and ref._id in store:
                ready.append(ref)
            else:
                not_ready.append(ref)
        return ready, not_ready

    def _wait_present(
        self, missing: list[ObjectRef], needed: int, timeout: float | None, raise_on_timeout: bool
    ) -> None:
        borrowed = [ref for ref in missing if ref._owner_address != self.address]
        if borrowed:
            self.io.call_soon(self.exchange.fetch_all, borrowed)
        ids_missing = [ref._id for ref in missing]
        on_blocked = self.on_blocked
        if on_blocked is not None:
            on_blocked(True)
        try:
            done = self.store.wait(ids_missing, needed, timeout)
        finally:
            if on_blocked is not None:
                on_blocked(False)
        if self.lost:
            raise RuntimeConnectionError(self.lost)
        if not done and raise_on_timeout:
            still = [ref for ref in missing if ref._id not in self.store]
            first = still[0] if still else missing[0]
            task = self.tasks.get(first.task_id())
            what = f" (from {task.describe()}, {task.state})" if task else ""
            raise GetTimeoutError(
                f"get timed out after {timeout}s: {len(still)} of {len(missing)} objects "
                f"not ready, first {first!r}{what}"
            )

    def _deserialize(self, value: StoredValue | None, ref: ObjectRef) -> Any:
        if value is None:
            raise ObjectLostError(f"{ref!r} is no longer available at this process")
        if value.kind == VALUE:
            if value.location is not None:
                return self.objects.decode(ref._id, value.location)
            return serialization.loads(value.data)
        error = serialization.loads(value.data)
        if isinstance(error, TaskError):
            raise error.as_instanceof_cause()
        raise error

    def cancel(self, ref: ObjectRef, force: bool) -> None:
        self._check_open()
        if ref._owner_address != self.address:
            raise ValueError(f"cancel: {ref!r} was not submitted by this process")
        self.io.call_soon(self.task_manager.cancel, ref.task_id(), force)

    def as_concurrent_future(self, ref: ObjectRef) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def ready(_: bytes, value: StoredValue) -> None:
            try:
                future.set_result(self._deserialize(value, ref))
            except BaseException as error:  # the value is an error to raise
                future.set_exception(error)

        def register() -> None:
            if ref._owner_address != self.address:
                self.exchange.fetch_all([ref])
            self.store.on_ready(ref._id, ready)

        self.io.call_soon(register)
        return future

    def as_future(self, ref: ObjectRef) -> asyncio.Future[Any]:
        return asyncio.wrap_future(self.as_concurrent_future(ref))

    # ---------------------------------------------------------------- actors (user thread)

    def create_actor(
        self,
        cls: FunctionDescriptor,
        args: Sequence[Any],
        kwargs: dict[str, Any],
        options: ActorOptions,
        handle_meta: bytes,
    ) -> tuple[bytes, bytes]:
        """Register an actor with the head; returns its id and method table (an existing
        actor's, with get_if_exists). The head creates it in the background."""
        self._check_open()
        data, deps, nested = serialize_args(cls.name, args, kwargs, self.put)
        if nested:
            self.borrowing.escape(nested)
        runtime_env = self.environment_of(options.runtime_env)
        return self.actor_lifecycle.create(cls, data, deps, options, handle_meta, runtime_env)

    def submit_actor_call(
        self,
        actor_id: bytes,
        method: str,
        args: Sequence[Any],
        kwargs: dict[str, Any],
        options: TaskOptions,
    ) -> list[ObjectRef]:
        self._check_open()
        data, deps, nested = serialize_args(options.name, args, kwargs, self.put)
        task_id = self.mint.task_id()
        return_ids = [task_id + i.to_bytes(4, "big") for i in range(1, options.num_returns + 1)]
        refs = [ObjectRef(rid, self.address, self) for rid in return_ids]
        task = TaskRecord(
            task_id, actor_call(options.name), options, data, deps, nested, return_ids, self.metrics.live
        )
        task.actor_id = actor_id
        task.method = method
        if self.record_call_sites:
            task.call_site = call_sites.find(call_sites.ACTOR_CALL)
        self._submissions.append(task)
        if not self._submit_scheduled:
            self._submit_scheduled = True
            self.io.call_soon(self._drain_submissions)
        return refs

    def kill_actor(self, actor_id: bytes, no_restart: bool) -> None:
        self._check_open()
        self.actor_lifecycle.kill(actor_id, no_restart)

    def get_actor_info(self, name: str, namespace: str) -> pb.ActorInfo:
        self._check_open()
        return self.actor_lifecycle.info(name, namespace)

    def add_handle(self, actor_id: bytes) -> None:
        self.handles.add_local(actor_id, self.address)

    def _on_zero_handles(self, actor_id: bytes) -> None:
        if not self._closed:
            self.actor_lifecycle.unreferenced(actor_id)

    def _check_open(self) -> None:
        if self.lost:
            raise RuntimeConnectionError(self.lost)
        if self._closed:
            raise RuntimeError("ember has been shut down in this process; call ember.init()")

    def cluster_lost(self, why: str) -> None:
        """The cluster this driver's job ran on is gone: every call from now on, and every
        ``get`` waiting now, raises ``why`` instead of waiting for what will never come.
        (I/O thread.) The job's leases go back: nothing will use its workers again, and a
        lease stream redialed over and over would only keep them."""
        self.lost = why
        self.store.release_waiters()
        self.submitter.shutdown()

    # ================================================================== I/O thread

    def _drain_submissions(self) -> None:
        self._submit_scheduled = False
        submissions = self._submissions
        tasks = self.tasks
        submitter = self.submitter
        actors = self.actors
        submitter.batching = actors.batching = True
        try:
            while submissions:
                task = submissions.popleft()
                tasks[task.task_id] = task
                if task.actor_id is not None:
                    # Actor calls take their place in the actor's queue now, in submission order.
                    task.move(QUEUED)
                    if task.deps:
                        self.arguments.resolve(task)
                    actors.submit(task)
                elif task.deps:
                    self.arguments.resolve(task)
                else:
                    submitter.enqueue(task)
        finally:
            # Whatever the batch made ready goes out now, not on the loop's next turn.
            submitter.batching = actors.batching = False
            actors.flush()
            submitter.flush()
            self.gc_pacing.pending(len(tasks))

    def _arguments_ready(self, task: TaskRecord) -> None:
        """Every ref argument of the task has its value here: it may go."""
        if task.actor_id is not None:
            task.move(QUEUED)
            self.actors.wake(self.actors.client(task.actor_id))
        else:
            self.submitter.enqueue(task)

    def _on_zero_refs(self, object_id: bytes) -> None:
        if self.borrowing.stopped(object_id):
            # A borrowed object: forget the cached copy; its owner is told we let go.
            self.store.delete(object_id)
            return
        self._maybe_free(object_id)

    def _maybe_free(self, object_id: bytes) -> None:
        """Free an owned object once no ref here, no borrower and no pending task needs it."""
        if object_id in self.escaped or object_id in self.borrowers:
            return
        if self.references.count(object_id):
            return
        task_id = ids.task_of(object_id)
        if task_id in self.tasks:
            return  # still being computed; the result is dropped when it arrives
        task = self.lineage.get(task_id)
        if task is not None and not any(
            self.references.count(rid) for rid in task.return_ids if rid != object_id
        ):
            # Two of its results may be let go at once, one on the I/O thread and one on the
            # user's (a put drains releases first): both get here, and either may be second.
            self.lineage.pop(task_id, None)
            task.forget_arguments()
        value = self.store.delete(object_id)
        if value is not None and value.location is not None and self._owns(object_id):
            # Only the owner frees; a borrower just forgets its copy of the location.
            if self.io.in_loop_thread():
                self.objects.free(object_id, value.location)
            else:
                self.io.call_soon(self.objects.free, object_id, value.location)

    def _owns(self, object_id: bytes) -> bool:
        return object_id[:8] == self._put_task[:8]

    # ================================================================== lifetime

    def owns_objects(self) -> bool:
        """True while other processes may still ask this one for objects, or its actors live."""
        return bool(self.escaped or self.borrowers or self.tasks or self.actor_lifecycle.owned)

    def shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True

        async def close() -> None:
            self._drain_handle.cancel()
            self._metrics_task.cancel()
            await self.flush_metrics(timeout=0.5)
            self.submitter.shutdown()
            self.actors.shutdown()
            self.worker_channels.close()
            await self.channels.close()

        try:
            self.io.run(close(), timeout=2.0)
        except Exception:
            log.debug("error closing owner channels", exc_info=True)
        self.gc_pacing.restore()


