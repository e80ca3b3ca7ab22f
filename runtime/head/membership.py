"""The head's records of the cluster's members: its nodes, and the drivers' jobs.

A node is known by what its agent said when it registered (``NodeInfo``) and has reported since
(free resources, demand, idleness); a job by its driver's hello. Both are kept once they end,
marked dead: a node that comes back after it was declared dead is refused (its work ran
elsewhere), and an agent that registers later still hears which jobs ended. While a node is
drained (``drain.py``), its record carries the drain, and placement passes it by.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

from ember.runtime.objects import ids
from ember.runtime.wire import resources
from ember.runtime.wire.protocol import ember_pb2 as pb
from ember.runtime.wire.resources import Shape


class Draining(Protocol):
    """What a node's record needs of its drain (``drain.NodeDrain``)."""

    progress: pb.DrainProgress  # the agent's latest account, from its reports

    def fill(self, view: pb.NodeView) -> None: ...


class NodeState:
    def __init__(self, info: pb.NodeInfo) -> None:
        self.info = info
        self.node_id = info.node_id
        self.total: Shape = resources.to_fixed(info.total.quantities)
        self.available: Shape = dict(self.total)
        self.alive = True
        self.death_cause = ""
        self.last_seen = time.monotonic()
        self.num_workers = 0
        self.idle_seconds = 0.0
        self.store_broken = ""  # why its object store takes no new objects, as it reported
        self.pending: list[pb.ResourceDemand] = []
        # Its object store and its owners' tasks, as of its latest report (``metric_history``).
        self.usage = pb.NodeUsage()
        self.outbox: asyncio.Queue[pb.HeadToNode] = asyncio.Queue()
        self.drain: Draining | None = None  # set while it is drained: nothing is placed there
        # What the placement group bundles committed here offer, under their groups' names
        # (``bundle_resources``): kept by the head's placement groups, beside ``total``.
        self.bundles: Shape = {}

    def capacity(self) -> Shape:
        """Everything the node offers: its own resources and its bundles'."""
        if not self.bundles:
            return self.total
        merged = dict(self.total)
        resources.add(merged, self.bundles)
        return merged

    def describe(self) -> str:
        return f"node {ids.short(self.node_id)} ({self.info.address})"

    def view(self) -> pb.NodeView:
        info = self.info
        if self.bundles and self.alive:
            info = pb.NodeInfo()
            info.CopyFrom(self.info)
            info.total.quantities.update(resources.to_float(self.bundles))
        view = pb.NodeView(
            info=info,
            available=pb.ResourceSet(quantities=resources.to_float(self.available)),
            alive=self.alive,
            num_workers=self.num_workers,
            death_cause=self.death_cause,
            pending=self.pending if self.alive else [],
            seconds_since_report=time.monotonic() - self.last_seen,
            idle_seconds=self.idle_seconds if self.alive else 0.0,
            store_broken=self.store_broken,
        )
        if self.drain is not None:
            self.drain.fill(view)
        return view


class JobState:
    def __init__(self, job_id: bytes, hello: pb.DriverHello, peer: str = "") -> None:
        self.job_id = job_id
        self.driver_address = hello.address  # as the driver declared it
        self.peer = peer  # where its session came from, as gRPC saw it (the relay checks)
        self.namespace = hello.namespace
        self.pid = hello.pid
        self.alive = True
        self.started = time.time()

    def ended(self) -> pb.JobEnded:
        return pb.JobEnded(job_id=self.job_id, driver_address=self.driver_address)
