"""Leasing workers and pushing tasks to them: the owner's half of the hot path.

Tasks wait in one queue per resource shape. For each queue the submitter asks a node agent for
worker leases and streams tasks straight to the leased workers over their task channels
(``task_channel.py``); results come back on the same channel. A lease is reused while its queue
has tasks, so the agent sees one message per lease, not per task.

How many tasks go to one worker at once is decided by how long that function's tasks ran so far:
a worker gets more tasks while the estimated work already queued on it is below
``PIPELINE_BUDGET`` seconds. Tasks of unknown duration go one at a time, so sixteen sleeping
tasks spread over sixteen workers, while ten thousand no-op tasks travel in batches.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Protocol

import grpc

from ember.runtime.core.task_record import QUEUED, RUNNING, Lease, ShapeQueue, TaskRecord
from ember.runtime.wire import event_loop, resources
from ember.runtime.wire.lease_client import LeaseClient
from ember.runtime.wire.protocol import ember_pb2 as pb
from ember.runtime.wire.resources import ShapeKey
from ember.runtime.wire.task_channel import ChannelClient

if TYPE_CHECKING:
    from ember.runtime.core.worker_channels import WorkerChannels
    from ember.runtime.wire.rpc import Channels

log = logging.getLogger("ember.runtime.core.task_submitter")

PIPELINE_BUDGET = 0.002  # seconds of estimated work queued on one worker
MAX_IN_FLIGHT = 128  # tasks on one worker at once
PER_TASK_OVERHEAD = 0.00002  # what a task costs a worker beyond its function
MAX_PENDING_REQUESTS = 16  # lease requests outstanding per shape
LEASE_LINGER = 0.2  # seconds an idle lease is kept for the next task of its shape
LOST_REASON_WAIT = 1.0  # how long to wait for the agent's account of a dead worker


SPREAD = "SPREAD"
LOCALITY_BYTES = 1 << 20  # arguments on another node worth going there for
NODES_REFRESH = 5.0  # seconds between refreshes of the node list SPREAD rotates over


class TaskOutcomes(Protocol):
    """What the submitter reports about the tasks it ran, to their owner's
    ``task_manager.TaskManager``, which decides what each outcome means: a result to store, a
    retry, an error."""

    def on_task_result(self, task: TaskRecord, result: pb.TaskResult) -> None: ...

    def retry_after_crash(self, task: TaskRecord, reason: str) -> bool: ...

    def retry_preempted(self, task: TaskRecord, reason: str) -> None: ...

    def fail_crashed(self, tasks: list[TaskRecord], reason: str) -> None: ...

    def fail_rejected(self, tasks: list[TaskRecord], rejected: pb.LeaseRejected) -> None: ...

    def fail_unreachable(self, tasks: list[TaskRecord], reason: str) -> None: ...


class TaskSubmitter:
    def __init__(
        self,
        outcomes: TaskOutcomes,
        channels: Channels,
        worker_channels: WorkerChannels,
        lease_owner: pb.LeaseOwner,
        local_agent: str,
        head_address: str,
    ) -> None:
        self.outcomes = outcomes
        self.channels = channels
        self.worker_channels = worker_channels
        self.lease_owner = lease_owner  # who asks agents for leases: this job's owner process
        self.local_agent = local_agent
        self.head_address = head_address
        self.queues: dict[tuple[ShapeKey, str, tuple[object, ...], str], ShapeQueue] = {}
        self.spread_nodes: list[str] = []
        self._spread_next = 0
        self._nodes_fetched = 0.0
        self.agents: dict[str, LeaseClient] = {}
        self.estimates: dict[bytes, float] = {}
        self.sent_functions: dict[bytes, set[bytes]] = {}
        self._request_ids = 0
        self._requests: dict[int, tuple[ShapeQueue, LeaseClient]] = {}
        self._loop = asyncio.get_event_loop()
        self.running: dict[bytes, TaskRecord] = {}
        self._dirty: list[Lease] = []
        # True while the owner handles a batch of submissions and flushes after it.
        self.batching = False

    # ------------------------------------------------------------------ queues

    def enqueue(self, task: TaskRecord) -> None:
        target = self._target(task)
        options = task.options
        key = (options.key, target, options.constraints_key, task.runtime_env)
        queue = self.queues.get(key)
        if queue is None:
            queue = self.queues[key] = ShapeQueue(
                options.key, options.shape, target, options.constraints, task.runtime_env
            )
        task.move(QUEUED)
        task.queue = queue
        queue.ready.append(task)
        self.pump(queue)

    def _target(self, task: TaskRecord) -> str:
        """Where to lease for it: SPREAD, the node holding most of its argument bytes (when
        that is another node and worth it), or here."""
        if task.options.strategy == SPREAD:
            return SPREAD
        if not task.arg_values or task.options.constraints is not None:
            # A node affinity or label selector decides where: the local agent sends it on.
            return ""
        by_node: dict[str, int] = {}
        for value in task.arg_values:
            if value is not None and value.HasField("location"):
                address = value.location.node_address
                by_node[address] = by_node.get(address, 0) + value.location.size
        if not by_node:
            return ""
        best = max(by_node, key=by_node.__getitem__)
        if best == self.local_agent or by_node[best] < LOCALITY_BYTES:
            return ""
        return best

    def requeue_front(self, task: TaskRecord) -> ShapeQueue:
        """Put a task that ran back at the head of its queue, to run again; returns the queue."""
        queue = task.queue
        assert queue is not None, f"{task.describe()} runs again without having been queued"
        task.move(QUEUED)
        task.lease = None
        queue.ready.appendleft(task)
        return queue

    def remove_queued(self, task: TaskRecord) -> bool:
        queue = task.queue
        if queue is None:
            return False
        try:
            queue.ready.remove(task)
        except ValueError:
            return False
        self.pump(queue)
        return True

    def pump(self, queue: ShapeQueue) -> None:
        ready = queue.ready
        if ready:
            leases = [
                lease for lease in queue.leases
                if not lease.returning and not lease.dead and not lease.draining
            ]
            if len(leases) > 1:
                leases.sort(key=lambda lease: lease.est_work)
            for lease in leases:
                while ready and self._accepts(lease, ready[0]):
                    self._dispatch(lease, ready.popleft())
                if not ready:
                    break
        if ready:
            wanted = min(len(ready), MAX_PENDING_REQUESTS) - queue.pending_requests
            for _ in range(wanted):
                address = self._lease_address(queue)
                if not address:
                    break  # SPREAD before the node list is known: pumped again once it is
                self._request_lease(queue, self._agent(address), spilled=False)
        else:
            if queue.pending_requests:
                self._cancel_requests(queue)
            now = time.monotonic()
            for lease in queue.leases:
                if not lease.in_flight and lease.idle_since is None and not lease.returning:
                    lease.idle_since = now
                    self._loop.call_later(LEASE_LINGER, self._linger_over, lease, now)

    def _accepts(self, lease: Lease, task: TaskRecord) -> bool:
        if lease.spent:
            return False
        if not lease.in_flight:
            return True
        estimate = self.estimates.get(task.function.function_id)
        if estimate is None or len(lease.in_flight) >= MAX_IN_FLIGHT:
            return False
        return lease.est_work + estimate + PER_TASK_OVERHEAD <= PIPELINE_BUDGET

    def _dispatch(self, lease: Lease, task: TaskRecord) -> None:
        task.move(RUNNING)
        task.lease = lease
        task.scheduled = time.time()
        function = task.function
        estimate = self.estimates.get(function.function_id)
        task.estimate = (PIPELINE_BUDGET if estimate is None else estimate) + PER_TASK_OVERHEAD
        lease.est_work += task.estimate
        lease.in_flight[task.task_id] = task
        lease.idle_since = None
        options = task.options
        spec = pb.TaskSpec(
            task_id=task.task_id,
            function_id=function.function_id,
            name=function.name,
            args=task.args,
            num_returns=options.num_returns,
            attempt=task.attempt,
        )
        if options.placement_group:
            spec.placement_group_id = options.placement_group
            spec.capture_child_tasks = options.capture_child_tasks
        sent = self.sent_functions.get(lease.worker_id)
        if sent is None:
            sent = self.sent_functions[lease.worker_id] = set()
        if function.function_id not in sent:
            spec.function = function.data
            sent.add(function.function_id)
        if task.arg_values:
            spec.arg_values.extend(v for v in task.arg_values if v is not None)
        if lease.gpu_ids:
            spec.gpu_ids.extend(lease.gpu_ids)
        if task.options.threads > 1:
            spec.cpu_threads = task.options.threads
        if task.options.max_calls:
            self._count_call(lease, function.function_id, task.options.max_calls)
        self.running[task.task_id] = task
        if not lease.outbox:
            if not self._dirty and not self.batching:
                self._loop.call_soon(self.flush)
            self._dirty.append(lease)
        lease.outbox.append(spec)

    @staticmethod
    def _count_call(lease: Lease, function_id: bytes, max_calls: int) -> None:
        """``max_calls``: once the function ran that often on the lease's worker, the worker is
        replaced (the lease takes nothing more, and goes back with its worker discarded)."""
        calls = lease.calls
        if calls is None:
            calls = lease.calls = {}
        count = calls[function_id] = calls.get(function_id, 0) + 1
        if count >= max_calls:
            lease.spent = True

    def flush(self) -> None:
        """Send each lease's new tasks as one frame, once per turn of the loop."""
        dirty = self._dirty
        self._dirty = []
        for lease in dirty:
            channel = lease.channel
            if channel is None or not lease.outbox:
                continue  # still connecting: sent once the channel is up
            channel.send(pb.ExecuteRequest(tasks=lease.outbox))
            lease.outbox = []

    # ------------------------------------------------------------------ leases

    def _lease_address(self, queue: ShapeQueue) -> str:
        if queue.target == SPREAD:
            now = time.monotonic()
            if now - self._nodes_fetched > NODES_REFRESH:
                self._nodes_fetched = now
                event_loop.detach(self._refresh_nodes(), "refreshing the cluster's nodes")
            if self.spread_nodes:
                self._spread_next = (self._spread_next + 1) % len(self.spread_nodes)
                return self.spread_nodes[self._spread_next]
            return ""
        return queue.target or self.local_agent

    async def _refresh_nodes(self) -> None:
        try:
            view = await self.channels.head(self.head_address).GetClusterView(
                pb.Empty(), timeout=10
            )
        except grpc.aio.AioRpcError:
            self.spread_nodes = self.spread_nodes or [self.local_agent]
        else:
            self.spread_nodes = sorted(
                n.info.address for n in view.nodes
                if n.alive and n.drain_state == pb.NOT_DRAINING
            )
        for queue in list(self.queues.values()):
            if queue.target == SPREAD and queue.ready:
                self.pump(queue)

    def _agent(self, address: str) -> LeaseClient:
        agent = self.agents.get(address)
        if agent is None:
            agent = self.agents[address] = LeaseClient(
                address,
                self.channels,
                self.lease_owner,
                self.on_agent_message,
                self._resend,
                self.agent_unreachable,
            )
        return agent

    def _resend(self, agent: LeaseClient) -> list[pb.LeaseClientMessage]:
        """Requests outstanding when a lease stream broke are asked again on the new one."""
        return [self.request_message(rid, queue) for rid, queue in agent.requests.items()]

    def request_message(self, request_id: int, queue: ShapeQueue) -> pb.LeaseClientMessage:
        name = queue.ready[0].name if queue.ready else ""
        return pb.LeaseClientMessage(
            request=pb.LeaseRequest(
                request_id=request_id,
                shape=pb.ResourceSet(quantities=resources.to_float(queue.shape)),
                task_name=name,
                constraints=queue.constraints,
                runtime_env=queue.runtime_env,
            )
        )

    def _request_lease(self, queue: ShapeQueue, agent: LeaseClient, spilled: bool) -> None:
        self._request_ids += 1
        request_id = self._request_ids
        queue.pending_requests += 1
        agent.requests[request_id] = queue
        self._requests[request_id] = (queue, agent)
        message = self.request_message(request_id, queue)
        message.request.spilled = spilled
        agent.send(message)

    def _cancel_requests(self, queue: ShapeQueue) -> None:
        for request_id, (q, agent) in list(self._requests.items()):
            if q is queue and request_id in agent.requests:
                del agent.requests[request_id]
                queue.pending_requests -= 1
                agent.send(pb.LeaseClientMessage(cancel=pb.LeaseCancel(request_id=request_id)))

    def on_agent_message(self, agent: LeaseClient, message: pb.LeaseServerMessage) -> None:
        kind = message.WhichOneof("kind")
        if kind == "grant":
            self._on_grant(agent, message.grant)
        elif kind == "spillback":
            spill = message.spillback
            queue = self._request_done(agent, spill.request_id)
            if queue is not None:
                self._request_lease(queue, self._agent(spill.node_address), spilled=True)
        elif kind == "rejected":
            rejected = message.rejected
            queue = self._request_done(agent, rejected.request_id)
            if queue is not None:
                self.outcomes.fail_rejected(list(queue.ready), rejected)
                queue.ready.clear()
                self.pump(queue)
        elif kind == "lost":
            lost = message.lost
            lease = agent.leases.get(lost.lease_id)
            if lease is not None:
                lease.lost_reason = lost.reason
                lease.lost.set()
                self._lease_failed(lease, lost.reason)
        elif kind == "drain":
            lease = agent.leases.get(message.drain.lease_id)
            if lease is not None:
                self._lease_draining(lease, message.drain)
        elif kind == "reclaim_idle":
            for lease in list(agent.leases.values()):
                if not lease.in_flight and not lease.queue.ready:
                    self._return_lease(lease)

    def _lease_draining(self, lease: Lease, drain: pb.LeaseDrain) -> None:
        """The lease's node is being drained: send it nothing more and give it back once its
        tasks finish; past the drain's deadline, take its tasks back to run them elsewhere."""
        if lease.dead or lease.returning:
            return
        lease.draining = True
        if not drain.deadline_passed:
            if not lease.in_flight:
                self._return_lease(lease)
            self.pump(lease.queue)  # what waits for this shape asks for leases elsewhere
            return
        lease.dead = True
        self._drop_lease(lease)
        if lease.channel is not None:
            lease.channel.leases.discard(lease)
        tasks = list(lease.in_flight.values())
        lease.in_flight.clear()
        for task in tasks:
            self.running.pop(task.task_id, None)
        lease.agent.send(pb.LeaseClientMessage(
            release=pb.LeaseReturn(lease_id=lease.lease_id, discard_worker=True)
        ))
        reason = f"{drain.reason}; its deadline passed while it ran on {lease.describe()}"
        for task in tasks:
            self.outcomes.retry_preempted(task, reason)
        self.pump(lease.queue)

    def _request_done(self, agent: LeaseClient, request_id: int) -> ShapeQueue | None:
        entry = self._requests.pop(request_id, None)
        if entry is None:
            return None
        queue, _ = entry
        if agent.requests.pop(request_id, None) is not None:
            queue.pending_requests -= 1
        return queue

    def _on_grant(self, agent: LeaseClient, grant: pb.LeaseGrant) -> None:
        entry = self._requests.get(grant.request_id)
        queue = self._request_done(agent, grant.request_id)
        if queue is None and entry is not None:
            queue = entry[0]
        if queue is None:
            # Not ours any more (the owner is shutting down): give it straight back.
            agent.send(pb.LeaseClientMessage(release=pb.LeaseReturn(lease_id=grant.lease_id)))
            return
        lease = Lease(queue, agent, grant)
        agent.leases[lease.lease_id] = lease
        queue.leases.append(lease)
        channel = self.worker_channels.cached(lease.worker_id)
        if channel is not None:
            self._attach(lease, channel)
        else:
            event_loop.detach(self._open_channel(lease), "opening a task channel to a leased worker")
        self.pump(queue)

    async def _open_channel(self, lease: Lease) -> None:
        try:
            channel = await self.worker_channels.open(lease.worker_id, lease.worker_channel)
        except OSError as error:
            self._lease_failed(lease, f"cannot open a task channel to {lease.describe()}: {error}")
            return
        if lease.dead or lease.returning:
            return
        self._attach(lease, channel)

    def _attach(self, lease: Lease, channel: ChannelClient) -> None:
        lease.channel = channel
        channel.leases.add(lease)
        if lease.outbox:
            channel.send(pb.ExecuteRequest(tasks=lease.outbox))
            lease.outbox = []

    def _linger_over(self, lease: Lease, idle_since: float) -> None:
        if lease.idle_since == idle_since and not lease.in_flight and not lease.queue.ready:
            self._return_lease(lease)

    def _return_lease(self, lease: Lease) -> None:
        if lease.returning or lease.dead:
            return
        lease.returning = True
        self._drop_lease(lease)
        if lease.channel is not None:
            lease.channel.leases.discard(lease)
        # A worker that ran a function with max_calls goes: its count would not follow it.
        discard = lease.calls is not None
        if discard:
            self.sent_functions.pop(lease.worker_id, None)
        lease.agent.send(pb.LeaseClientMessage(release=pb.LeaseReturn(
            lease_id=lease.lease_id, discard_worker=discard
        )))

    def _drop_lease(self, lease: Lease) -> None:
        try:
            lease.queue.leases.remove(lease)
        except ValueError:
            pass
        lease.agent.leases.pop(lease.lease_id, None)

    def agent_unreachable(self, agent: LeaseClient, failures: int) -> None:
        """The lease stream broke; after repeated failures the queued tasks fail."""
        if failures < 20:
            return
        for queue in {q for q in agent.requests.values()}:
            reason = f"node agent {agent.address} is unreachable"
            self.outcomes.fail_unreachable(list(queue.ready), reason)
            queue.ready.clear()
        for request_id in list(agent.requests):
            self._request_done(agent, request_id)

    # ------------------------------------------------------------------ channels

    def on_results(self, done: list[tuple[TaskRecord, pb.TaskResult]]) -> None:
        estimates = self.estimates
        outcomes = self.outcomes
        touched: set[ShapeQueue] = set()
        for task, result in done:
            lease = task.lease
            if lease is not None:
                if lease.in_flight.pop(task.task_id, None) is not None:
                    lease.est_work -= task.estimate
                    if not lease.in_flight:
                        lease.est_work = 0.0
                        if lease.draining or lease.spent:
                            self._return_lease(lease)
                touched.add(lease.queue)
            function_id = task.function.function_id
            previous = estimates.get(function_id)
            run = result.run_seconds
            estimates[function_id] = run if previous is None else 0.8 * previous + 0.2 * run
            outcomes.on_task_result(task, result)
        for queue in touched:
            self.pump(queue)

    def on_channel_lost(self, channel: ChannelClient, reason: str) -> None:
        for lease in list(channel.leases):
            self._lease_failed(lease, f"task channel to {lease.describe()}: {reason}")

    def _lease_failed(self, lease: Lease, reason: str) -> None:
        if lease.dead:
            return
        lease.dead = True
        self.sent_functions.pop(lease.worker_id, None)  # the worker is gone
        try:
            lease.queue.leases.remove(lease)
        except ValueError:
            pass
        if lease.channel is not None:
            lease.channel.leases.discard(lease)
        tasks = list(lease.in_flight.values())
        lease.in_flight.clear()
        for task in tasks:
            self.running.pop(task.task_id, None)
        event_loop.detach(self._settle(lease, tasks, reason), "settling a lease's tasks")
        self.pump(lease.queue)

    async def _settle(self, lease: Lease, tasks: list[TaskRecord], reason: str) -> None:
        """Retry at once what may be retried; fail the rest once the cause is known.

        The agent tells how the worker ended (exit code, signal) in a LeaseLost message; it
        usually follows the broken stream within milliseconds. If it does not come, the lease
        is handed back with the worker discarded.
        """
        final = [t for t in tasks if not self.outcomes.retry_after_crash(t, reason)]
        if not lease.lost.is_set() and not lease.returning:
            try:
                await asyncio.wait_for(lease.lost.wait(), LOST_REASON_WAIT)
            except TimeoutError:
                lease.agent.send(
                    pb.LeaseClientMessage(
                        release=pb.LeaseReturn(lease_id=lease.lease_id, discard_worker=True)
                    )
                )
        lease.agent.leases.pop(lease.lease_id, None)
        if final:
            self.outcomes.fail_crashed(final, lease.lost_reason or reason)

    def cancel_running(self, task: TaskRecord, force: bool) -> None:
        lease = task.lease
        if lease is None or lease.dead:
            return
        event_loop.detach(self._cancel(lease, task, force), "cancelling a task")

    async def _cancel(self, lease: Lease, task: TaskRecord, force: bool) -> None:
        stub = self.channels.core_worker(lease.worker_address)
        try:
            await stub.CancelTasks(pb.CancelRequest(task_ids=[task.task_id], force=force), timeout=10)
        except grpc.aio.AioRpcError as error:
            # A force-cancelled worker may die before it answers; the channel tells the rest.
            log.debug("cancel of %s at %s: %s", task.describe(), lease.describe(), _code(error))

    def shutdown(self) -> None:
        for agent in self.agents.values():
            agent.close()
        for queue in self.queues.values():
            for lease in list(queue.leases):
                lease.dead = True


def _code(error: BaseException) -> str:
    if isinstance(error, grpc.aio.AioRpcError):
        return f"{error.code().name}: {error.details()}"
    return repr(error)
