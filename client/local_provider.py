"""The local provider: a ``Cluster``'s worker groups as node agents on this machine, scaled by
the same policy the Kubernetes operator applies.

Every ``interval`` seconds it reads the head's demand and the nodes' idleness, asks the policy
(``ember.operator.autoscaling_policy``) for a plan, starts agents for new workers — each with
its group's resources and labels naming its group and itself — and drains, then stops, the
workers the plan removes. It tells the head which node shapes it can add, so work that no
running node fits waits as demand instead of failing.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ember.operator.autoscaling_policy import Gang, Node, Plan, Want, WorkerGroup, plan
from ember.runtime import launcher
from ember.runtime.wire import resources, rpc
from ember.runtime.wire.protocol import ember_pb2 as pb

log = logging.getLogger("ember.local_provider")

GROUP_LABEL = "ember.dev/group"
WORKER_LABEL = "ember.dev/worker"
NODE_TYPE_LABEL = "ember.dev/node-type"  # "head" or "worker", as the Kubernetes pods' label


@dataclass
class GroupSpec:
    name: str
    shape: dict[str, float]  # CPU, GPU, memory (bytes), custom resources
    min_replicas: int = 0
    max_replicas: int = 1
    replicas: int | None = None  # fixed size when autoscaling is off


@dataclass
class AutoscalingSpec:
    enabled: bool = True
    idle_timeout: float = 60.0
    upscaling_mode: str = "Default"
    interval: float = 1.0


@dataclass
class Worker:
    name: str
    group: str
    processes: launcher.LocalProcesses | None = None  # None while it starts
    node_id: bytes = b""


@dataclass
class Progress:
    nodes: int = 0
    pending: list[str] = field(default_factory=list)
    last_action: str = "started"
    last_action_at: float = field(default_factory=time.monotonic)


def _group_labels(group: str) -> dict[str, str]:
    """The labels every node of a group starts with (each also names its worker)."""
    return {GROUP_LABEL: group, NODE_TYPE_LABEL: "worker"}


class LocalProvider:
    def __init__(
        self,
        session_dir: str,
        head_address: str,
        token: str,
        groups: list[GroupSpec],
        autoscaling: AutoscalingSpec,
        on_progress: Callable[[Progress], None] = lambda progress: None,
        on_workers: Callable[[dict[str, list[int]]], None] = lambda workers: None,
        object_store_memory: int | None = None,
    ) -> None:
        """``on_workers`` hears the running workers (name: pids) whenever they change, from the
        thread that changed them, one call at a time. ``object_store_memory``: each node's
        share of this machine's (``local_capacity``); None: each takes the default."""
        self.session_dir = session_dir
        self.head_address = head_address
        self.token = token
        self.groups = {g.name: g for g in groups}
        self.autoscaling = autoscaling
        self.on_progress = on_progress
        self.on_workers = on_workers
        self.object_store_memory = object_store_memory
        self.workers: dict[str, Worker] = {}
        self.progress = Progress()
        self._counter = 0
        self._lock = threading.Lock()
        self.channels = rpc.Channels()

    # ------------------------------------------------------------------ the loop

    async def run(self, stop: asyncio.Event) -> None:
        head = self.channels.head(self.head_address)
        shapes = [pb.ResourceSet(quantities=g.shape) for g in self.groups.values()]
        labels = [pb.NodeLabels(labels=_group_labels(g.name)) for g in self.groups.values()]
        await head.SetNodeTypes(pb.NodeTypes(shapes=shapes, labels=labels), timeout=10)
        while not stop.is_set():
            try:
                demand = await head.GetDemand(pb.Empty(), timeout=10)
                await self.step(demand)
            except Exception:  # noqa: BLE001 - one bad round must not end the cluster's scaling
                log.exception("autoscaling round failed")
            try:
                await asyncio.wait_for(stop.wait(), self.autoscaling.interval)
            except TimeoutError:
                pass

    async def step(self, demand: pb.Demand) -> Plan:
        groups, nodes = self._observe(demand)
        bundles = [
            Want(dict(entry.shape.quantities), dict(entry.label_selector))
            for entry in [*demand.tasks, *demand.actors]
            for _ in range(entry.count)
        ]
        requested = [dict(b.quantities) for b in demand.requested]
        gangs = [
            Gang(
                tuple(dict(b.quantities) for b in group.bundles), group.strategy,
                tuple(dict(s.conditions) for s in group.bundle_label_selector),
            )
            for group in demand.placement_groups
        ]
        if self.autoscaling.enabled:
            decided = plan(
                groups, nodes, bundles, self.autoscaling.idle_timeout,
                self.autoscaling.upscaling_mode, requested, gangs,
            )
        else:
            decided = Plan(replicas={g.name: g.replicas if g.replicas is not None else g.min_replicas for g in self.groups.values()})
        await self._apply(decided)
        self.progress.nodes = len(demand.nodes)
        self.progress.pending = [
            f"{resources.describe(resources.to_fixed(e.shape.quantities))} x{e.count}"
            for e in [*demand.tasks, *demand.actors]
        ] + [
            f"placement group {g.placement_group_id.hex()[:12]} ({g.strategy}, "
            f"{len(g.bundles)} bundle{'s' if len(g.bundles) != 1 else ''})"
            for g in demand.placement_groups
        ]
        self.on_progress(self.progress)
        return decided

    def _observe(self, demand: pb.Demand) -> tuple[list[WorkerGroup], list[Node]]:
        live: dict[str, pb.NodeLoad] = {}
        for load in demand.nodes:
            name = load.labels.get(WORKER_LABEL, "")
            if name in self.workers:
                live[name] = load
                self.workers[name].node_id = load.node_id
        groups = [
            WorkerGroup(
                spec.name,
                spec.shape,
                spec.min_replicas,
                spec.max_replicas,
                tuple(w.name for w in self.workers.values() if w.group == spec.name),
                _group_labels(spec.name),
            )
            for spec in self.groups.values()
        ]
        nodes = []
        for worker in self.workers.values():
            found = live.get(worker.name)
            if found is None:
                nodes.append(Node(worker.name, worker.group, {}, 0.0, starting=True))
            else:
                nodes.append(Node(
                    worker.name,
                    worker.group,
                    dict(found.available.quantities),
                    found.idle_seconds if not found.draining else 0.0,
                    total=dict(found.total.quantities),
                    labels=dict(found.labels),
                ))
        return groups, nodes

    async def _apply(self, decided: Plan) -> None:
        for names in decided.remove.values():
            for name in names:
                await self._remove(self.workers[name])
        for name, spec in self.groups.items():
            have = sum(1 for w in self.workers.values() if w.group == name)
            for _ in range(decided.replicas.get(name, have) - have):
                self._add(spec)

    # ------------------------------------------------------------------ workers

    def _add(self, spec: GroupSpec) -> None:
        self._counter += 1
        worker = Worker(f"{spec.name}-{self._counter}", spec.name)
        self.workers[worker.name] = worker
        self._action(f"+1 {spec.name} ({worker.name})")
        shape = dict(spec.shape)
        custom = {k: v for k, v in shape.items() if k not in ("CPU", "GPU", "memory")}

        def start() -> None:
            try:
                worker.processes = launcher.start_agent(
                    self.session_dir,
                    self.head_address,
                    num_cpus=shape.get("CPU", 0.0),
                    num_gpus=shape.get("GPU", 0.0),
                    memory=int(shape["memory"]) if "memory" in shape else None,
                    object_store_memory=self.object_store_memory,
                    resources=custom or None,
                    labels={**_group_labels(spec.name), WORKER_LABEL: worker.name},
                    token=self.token,
                )
                self._workers_changed()
            except Exception as error:  # noqa: BLE001 - say it, and let the next round retry
                log.error("could not start worker %s of group %s: %s", worker.name, spec.name, error)
                with self._lock:
                    self.workers.pop(worker.name, None)

        # Starting an agent takes a few hundred milliseconds: the loop goes on meanwhile.
        threading.Thread(target=start, name=f"start-{worker.name}", daemon=True).start()

    async def _remove(self, worker: Worker) -> None:
        """Drain the worker's node (nothing acknowledged is lost), then stop its agent."""
        if worker.processes is None:
            return
        head = self.channels.head(self.head_address)
        if worker.node_id:
            await head.DrainNode(
                pb.DrainRequest(node_id=worker.node_id, reason="idle: the autoscaler removes it"),
                timeout=10,
            )
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                view = await head.GetClusterView(pb.Empty(), timeout=10)
                node = next((n for n in view.nodes if n.info.node_id == worker.node_id), None)
                if node is None or not node.alive or node.drain_state == pb.DRAINED:
                    break
                await asyncio.sleep(0.2)
        processes = worker.processes
        self.workers.pop(worker.name, None)
        await asyncio.get_running_loop().run_in_executor(None, processes.stop)
        self._workers_changed()
        self._action(f"-1 {worker.group} ({worker.name}, idle)")

    def _action(self, what: str) -> None:
        log.info("autoscaler: %s", what)
        self.progress.last_action = what
        self.progress.last_action_at = time.monotonic()

    def _workers_changed(self) -> None:
        with self._lock:
            running = {
                w.name: w.processes.pids for w in list(self.workers.values()) if w.processes
            }
            self.on_workers(running)

    def stop_all(self) -> None:
        for worker in list(self.workers.values()):
            if worker.processes is not None:
                worker.processes.stop()
        self.workers.clear()
        self._workers_changed()
