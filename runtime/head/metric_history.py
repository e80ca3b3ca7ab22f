"""The last hour of the cluster's figures, kept by the head for the dashboard's charts.

A local cluster has no Prometheus, yet "is it busy, and since when?" wants a picture, not the
number of this instant. So the head samples what it already holds every ``INTERVAL`` seconds
(5 s: an hour is 720 points): the node agents' reports (free resources, pending demand, their
object store and their owners' task counts, ``pb.NodeUsage``) and its own actor directory. It
asks nobody anything and adds no message: a report carries the few numbers anyway.

Memory is bounded whatever the cluster does: every series is one preallocated array of
``points`` doubles (8 bytes each; NaN where there was no value), all sharing one time axis, and
there are at most ``len(CLUSTER_SERIES) + len(NODE_SERIES) * MAX_NODES_CHARTED`` series (14 +
4 x 100 at the defaults: 414 x 720 x 8 bytes, about 2.4 MB). A node's series are made when it
is first sampled and dropped once it has been gone for a whole window; past
``MAX_NODES_CHARTED`` live nodes the cluster's totals still count every node, but new nodes get
no series of their own (a chart of hundreds of lines shows nothing anyway).
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from array import array
from collections.abc import Iterable
from typing import Protocol

from ember.runtime.head.actor_manager import ActorManager
from ember.runtime.head.membership import NodeState
from ember.runtime.objects import ids
from ember.runtime.wire import resources
from ember.runtime.wire.protocol import ember_pb2 as pb

log = logging.getLogger("ember.runtime.head.metric_history")

INTERVAL = float(os.environ.get("EMBER_HISTORY_INTERVAL_S", "5"))
WINDOW = 3600.0  # seconds of history kept
MAX_NODES_CHARTED = 100

ACTOR_STATES = {pb.PENDING: "pending", pb.ALIVE: "alive", pb.RESTARTING: "restarting", pb.DEAD: "dead"}
CLUSTER_SERIES = (
    "nodes_alive",
    "tasks_running",
    "tasks_finished_per_second",
    "tasks_failed_per_second",
    "tasks_finished",  # since the live nodes' agents started: what their /metrics export
    "tasks_failed",
    "cpu_used",  # CPUs in use on every live node, charted or not
    "pending_demand",
    "object_store_used",
    "object_store_spilled",
    *(f"actors_{state}" for state in ACTOR_STATES.values()),
)
NODE_SERIES = ("cpu_used", "memory_used", "object_store_used", "object_store_spilled")


class HistoryView(Protocol):
    """What the history reads of the head (``head.Head``)."""

    nodes: dict[bytes, NodeState]
    actors: ActorManager

    def alive_nodes(self) -> list[NodeState]: ...


class RingTable:
    """Named series of floats over one time axis, each the latest ``points`` values.

    Every series is an ``array('d')`` of exactly ``points`` entries, made once: appending
    overwrites the oldest entry, so a table's memory never grows with time. A series added later
    holds NaN for the moments before it existed; a moment a series has no value for is NaN too.
    """

    def __init__(self, points: int) -> None:
        if points < 1:
            raise ValueError(f"a history needs at least one point, not {points}")
        self.points = points
        self.times = array("d", [math.nan]) * points
        self.series: dict[str, array[float]] = {}
        self._next = 0  # where the next moment goes
        self.count = 0  # moments held (at most ``points``)

    def append(self, stamp: float, values: dict[str, float]) -> None:
        """One moment: ``values`` by series name; series not named get NaN (new names are added)."""
        for name in values:
            if name not in self.series:
                self.series[name] = array("d", [math.nan]) * self.points
        at = self._next
        self.times[at] = stamp
        for name, column in self.series.items():
            column[at] = values.get(name, math.nan)
        self._next = (at + 1) % self.points
        self.count = min(self.count + 1, self.points)

    def _order(self) -> list[int]:
        """Indices of the moments held, oldest first."""
        start = (self._next - self.count) % self.points
        return [(start + i) % self.points for i in range(self.count)]

    def drop_empty(self, names: Iterable[str]) -> None:
        """Forget those of ``names`` that hold no value any more (their node left an hour ago)."""
        for name in list(names):
            column = self.series.get(name)
            if column is not None and all(math.isnan(v) for v in column):
                del self.series[name]

    def since(self, stamp: float) -> dict[str, object]:
        """The moments after ``stamp`` (all of them for 0), NaN as None (JSON's null)."""
        order = [i for i in self._order() if self.times[i] > stamp]
        return {
            "times": [self.times[i] for i in order],
            "series": {
                name: [None if math.isnan(column[i]) else column[i] for i in order]
                for name, column in self.series.items()
            },
        }


class MetricHistory:
    def __init__(self, head: HistoryView, interval: float = INTERVAL, window: float = WINDOW) -> None:
        if not interval > 0:
            raise ValueError(f"the history's interval must be a positive number of seconds, not {interval!r}")
        self.head = head
        self.interval = interval
        self.table = RingTable(max(1, math.ceil(window / interval)))
        # Each node's task counters at the previous sample, and when it was (monotonic):
        # the rates are the differences, so a node's counters need never reach the head per task.
        self._previous: dict[bytes, tuple[float, int, int]] = {}
        self._charted: list[bytes] = []  # nodes with series of their own, oldest first

    def sample(self, stamp: float | None = None, now: float | None = None) -> None:
        """Take one moment from what the head holds now."""
        stamp = time.time() if stamp is None else stamp
        now = time.monotonic() if now is None else now
        head = self.head
        alive = head.alive_nodes()
        values: dict[str, float] = dict.fromkeys(CLUSTER_SERIES, 0.0)
        values["nodes_alive"] = len(alive)
        finished_rate = failed_rate = 0.0
        previous, self._previous = self._previous, {}
        for node in alive:
            usage = node.usage
            values["tasks_running"] += usage.tasks_running
            values["tasks_finished"] += usage.tasks_finished
            values["tasks_failed"] += usage.tasks_failed
            values["object_store_used"] += usage.store_used
            values["object_store_spilled"] += usage.store_spilled
            values["pending_demand"] += sum(entry.count for entry in node.pending)
            cpus = resources.to_float(node.total).get("CPU", 0.0)
            values["cpu_used"] += cpus - resources.to_float(node.available).get("CPU", 0.0)
            self._previous[node.node_id] = (now, usage.tasks_finished, usage.tasks_failed)
            before = previous.get(node.node_id)
            if before is not None and now > before[0]:
                # A counter that went down belongs to an agent that restarted: no rate this once.
                finished_rate += max(0, usage.tasks_finished - before[1]) / (now - before[0])
                failed_rate += max(0, usage.tasks_failed - before[2]) / (now - before[0])
            if node.node_id in self._charted or len(self._charted) < MAX_NODES_CHARTED:
                if node.node_id not in self._charted:
                    self._charted.append(node.node_id)
                values.update(_node_values(node))
        if previous:  # the first moment has no rate: nothing to difference
            values["tasks_finished_per_second"] = finished_rate
            values["tasks_failed_per_second"] = failed_rate
        else:
            del values["tasks_finished_per_second"], values["tasks_failed_per_second"]
        values["pending_demand"] += sum(entry.count for entry in head.actors.demand())
        for record in head.actors.actors.values():
            values[f"actors_{ACTOR_STATES[record.info.state]}"] += 1
        self.table.append(stamp, values)
        alive_ids = {node.node_id for node in alive}
        for node_id in [n for n in self._charted if n not in alive_ids]:
            name = ids.short(node_id)
            self.table.drop_empty(f"node/{name}/{series}" for series in NODE_SERIES)
            if f"node/{name}/{NODE_SERIES[0]}" not in self.table.series:
                self._charted.remove(node_id)

    def view(self, since: float = 0.0) -> dict[str, object]:
        """The dashboard's ``/api/history?since=``: the moments after ``since``, and what each
        charted node has (its CPUs, memory and object store capacity), to scale its charts."""
        answer = self.table.since(since)
        nodes = {node.node_id: node for node in self.head.nodes.values()}
        capacity: dict[str, dict[str, float]] = {}
        for node_id in self._charted:
            node = nodes.get(node_id)
            if node is None:
                continue
            total = resources.to_float(node.total)
            capacity[ids.short(node_id)] = {
                "CPU": total.get("CPU", 0.0),
                "memory": total.get("memory", 0.0),
                "object_store": float(node.usage.store_capacity),
                "alive": node.alive,
            }
        answer.update(interval=self.interval, points=self.table.points, nodes=capacity)
        return answer

    async def run(self) -> None:
        """Sample every ``interval`` seconds until cancelled (the head stops)."""
        while True:
            try:
                self.sample()
            except Exception:  # noqa: BLE001 - a chart's gap, never the head's end
                log.exception("metric history: a sample failed; the charts will have a gap")
            await asyncio.sleep(self.interval)


def _node_values(node: NodeState) -> dict[str, float]:
    total = resources.to_float(node.total)
    free = resources.to_float(node.available)
    name = ids.short(node.node_id)
    return {
        f"node/{name}/cpu_used": total.get("CPU", 0.0) - free.get("CPU", 0.0),
        f"node/{name}/memory_used": total.get("memory", 0.0) - free.get("memory", 0.0),
        f"node/{name}/object_store_used": float(node.usage.store_used),
        f"node/{name}/object_store_spilled": float(node.usage.store_spilled),
    }
