"""The node agent's metrics: its own state, and the sum of what its node's processes report.

Gauges a process reports (tasks waiting or running now) count while the process keeps
reporting; a process silent for ``STALE_AFTER`` (it exited) counts no more. Counters and
histograms only ever add up, as Prometheus expects of them.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Iterable

from ember.runtime.node.leases import Leases
from ember.runtime.node.object_store import ObjectStore
from ember.runtime.node.worker_pool import WorkerPool
from ember.runtime.wire.metrics_report import (
    LATENCY_BOUNDS,
    RUN_BOUNDS,
    RUNNING,
    STALE_AFTER,
    TASK_STATES,
    TagKey,
    Totals,
)
from ember.runtime.wire.metrics_server import Family, RpcLatency, build_info
from ember.runtime.wire.protocol import ember_pb2 as pb

ENDED_KEPT = 1000  # tasks that ended, kept for the dashboard
UINT64_MAX = (1 << 64) - 1
FOUND_KEPT = 100  # events of each kind one FindTasks answer carries at most (an actor's calls)


class NodeMetrics:
    def __init__(self, store: ObjectStore, pool: WorkerPool, leases: Leases) -> None:
        self.store = store
        self.pool = pool
        self.leases = leases
        self.rpc = RpcLatency()
        self.tasks_now: dict[int, tuple[float, dict[str, int]]] = {}  # pid -> (seen, counts)
        self.running: dict[int, list[pb.TaskEvent]] = {}  # pid -> its tasks running now
        self.pending: dict[int, list[pb.TaskEvent]] = {}  # pid -> its tasks waiting now
        self.live_counts: dict[int, list[pb.TaskCount]] = {}  # pid -> its live tasks by name
        self.ended: collections.deque[pb.TaskEvent] = collections.deque(maxlen=ENDED_KEPT)
        # Tasks that ended, by (name, type, state), since the agent started: the state API's
        # summary, exact where ``ended`` keeps only the latest.
        self.ended_counts: dict[tuple[str, str, str], int] = {}
        self.ended_dropped = 0  # ended tasks not (or no longer) in ``ended``
        self.finished = 0
        self.failed = 0
        self.latency = Totals(LATENCY_BOUNDS)
        self.run_time = Totals(RUN_BOUNDS)
        self.user_counters: dict[tuple[str, TagKey], float] = {}
        self.user_gauges: dict[tuple[str, TagKey], float] = {}
        self.user_histograms: dict[tuple[str, TagKey], Totals] = {}
        self.user_info: dict[str, tuple[str, str, tuple[str, ...]]] = {}  # name -> kind, doc, keys

    def add(self, report: pb.MetricsReport) -> None:
        self.tasks_now[report.pid] = (time.monotonic(), dict(report.tasks))
        for event in report.ended:
            event.owner_pid = report.pid
            if len(self.ended) == ENDED_KEPT:
                self.ended_dropped += 1
            self.ended.append(event)
        self.ended_dropped += report.ended_dropped
        for count in report.ended_counts:
            count_key = (count.name, count.type, count.state)
            self.ended_counts[count_key] = self.ended_counts.get(count_key, 0) + count.count
        for events, listed in ((report.running, self.running), (report.pending, self.pending)):
            if events:
                for event in events:
                    event.owner_pid = report.pid
                listed[report.pid] = list(events)
            else:
                listed.pop(report.pid, None)
        if report.live_counts:
            self.live_counts[report.pid] = list(report.live_counts)
        else:
            self.live_counts.pop(report.pid, None)
        self.finished += report.tasks_finished
        self.failed += report.tasks_failed
        if report.HasField("scheduling_latency"):
            self.latency.add(report.scheduling_latency)
        if report.HasField("run_time"):
            self.run_time.add(report.run_time)
        for sample in report.user:
            keys = tuple(sorted(sample.tags))
            known = self.user_info.setdefault(sample.name, (sample.kind, sample.description, keys))
            if known[0] != sample.kind or known[2] != keys:
                continue  # two processes disagree on what the metric is: keep the first
            key = (sample.name, tuple(sorted(sample.tags.items())))
            if sample.kind == "counter":
                self.user_counters[key] = self.user_counters.get(key, 0.0) + sample.value
            elif sample.kind == "gauge":
                self.user_gauges[key] = sample.value
            elif sample.kind == "histogram":
                totals = self.user_histograms.get(key)
                if totals is None:
                    totals = self.user_histograms[key] = Totals(tuple(sample.histogram.bounds))
                totals.add(sample.histogram)

    async def families(self) -> list[Family]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        families: list[Family] = [build_info("node_agent")]
        store = self.store.info()
        for name, key, doc in (
            ("ember_object_store_capacity_bytes", "capacity", "Size of the node's object store."),
            ("ember_object_store_used_bytes", "used", "Bytes of objects in the node's shared memory."),
            ("ember_object_store_on_disk_bytes", "spilled", "Bytes of spilled objects on disk now."),
            ("ember_object_store_objects", "objects", "Objects in the node's store."),
        ):
            families.append(GaugeMetricFamily(name, doc, value=store[key]))
        families.append(GaugeMetricFamily(
            "ember_object_store_broken",
            "1 when the node's object store is broken: it takes no new objects (the agent's "
            "log and ember status say why).",
            value=1 if self.store.broken else 0,
        ))
        families.append(CounterMetricFamily(
            "ember_object_store_spilled_bytes", "Bytes written to disk to make room.",
            value=self.store.spilled_total,
        ))
        families.append(CounterMetricFamily(
            "ember_object_store_restored_bytes", "Bytes read back from disk.", value=store["restored"]
        ))
        workers = GaugeMetricFamily(
            "ember_worker_processes", "Worker processes of the node, by state.", labels=["state"]
        )
        states: dict[str, int] = {}
        for worker in self.pool.workers.values():
            states[worker.state] = states.get(worker.state, 0) + 1
        for state, count in sorted(states.items()):
            workers.add_metric([state], count)
        families.append(workers)
        families.append(GaugeMetricFamily(
            "ember_leases", "Workers leased to owners now.", value=self.leases.held()
        ))
        envs = self.leases.envs
        if envs is not None:
            setups = CounterMetricFamily(
                "ember_runtime_env_setups",
                "Parts of runtime_envs this node set up (a package unpacked, a wheel or a "
                "virtualenv installed), by kind and outcome; a part is set up once per node.",
                labels=["kind", "outcome"],
            )
            for (kind, outcome), count in sorted(envs.setups.items()):
                setups.add_metric([kind, outcome], count)
            families.append(setups)

        self._forget_stale()
        tasks = GaugeMetricFamily(
            "ember_tasks",
            "Tasks owned by the node's processes that wait for arguments (pending_args), for a "
            "worker (pending_resources), or run.",
            labels=["state"],
        )
        for state in TASK_STATES:
            tasks.add_metric([state], sum(c.get(state, 0) for _, c in self.tasks_now.values()))
        families.append(tasks)
        families.append(CounterMetricFamily(
            "ember_tasks_finished", "Tasks owned here that returned.", value=self.finished
        ))
        families.append(CounterMetricFamily(
            "ember_tasks_failed", "Tasks owned here that ended with an error.", value=self.failed
        ))
        for name, doc, totals in (
            ("ember_task_scheduling_latency_seconds", "From submission until a worker ran it.", self.latency),
            ("ember_task_run_seconds", "How long tasks ran.", self.run_time),
        ):
            family = HistogramMetricFamily(name, doc)
            family.add_metric([], totals.exposition(), totals.sum)
            families.append(family)
        families += self.rpc.families()
        families += self._user_families()
        return families

    def usage(self) -> pb.NodeUsage:
        """What the head's history charts of this node, sent in every report (``node_report``):
        the same figures this agent's metrics endpoint exports, read from the same fields.
        The counts are what processes reported, summed: held within the field's range, since a
        value it cannot hold would raise in the report, and the report is the node's heartbeat."""
        self._forget_stale()
        store = self.store
        return pb.NodeUsage(
            store_used=_uint64(store.used),
            store_spilled=_uint64(store.spilled_bytes),
            store_capacity=_uint64(store.capacity),
            tasks_running=_uint64(sum(c.get(RUNNING, 0) for _, c in self.tasks_now.values())),
            tasks_finished=_uint64(self.finished),
            tasks_failed=_uint64(self.failed),
        )

    def _forget_stale(self) -> None:
        now = time.monotonic()
        for pid, (seen, _) in list(self.tasks_now.items()):
            if now - seen > STALE_AFTER:
                del self.tasks_now[pid]
                self.running.pop(pid, None)
                self.pending.pop(pid, None)
                self.live_counts.pop(pid, None)

    def find_tasks(self, lookup: pb.TaskLookup) -> pb.TaskList:
        """One task's events (its attempts), or one actor's calls, the latest ``lookup.limit``
        of each kind, tracebacks included: what a task's or actor's page shows."""
        self._forget_stale()
        limit = lookup.limit or FOUND_KEPT

        def matches(event: pb.TaskEvent) -> bool:
            if lookup.task_id:
                return event.task_id == lookup.task_id
            return bool(lookup.actor_id) and event.actor_id == lookup.actor_id

        def latest(events: Iterable[pb.TaskEvent]) -> list[pb.TaskEvent]:
            found = []
            for event in events:
                if matches(event):
                    found.append(event)
                    if len(found) >= limit:
                        break
            return found

        return pb.TaskList(
            ended=latest(reversed(self.ended)),
            running=latest(event for events in self.running.values() for event in events),
            pending=latest(event for events in self.pending.values() for event in events),
        )

    def task_list(self) -> pb.TaskList:
        self._forget_stale()
        counts: dict[str, int] = {}
        for _, by_state in self.tasks_now.values():
            for state, count in by_state.items():
                counts[state] = counts.get(state, 0) + count
        listed = self._listing(counts)
        for event in listed.ended:  # the listing's copies: tracebacks are for FindTasks
            if event.traceback:
                event.ClearField("traceback")
        return listed

    def _listing(self, counts: dict[str, int]) -> pb.TaskList:
        return pb.TaskList(
            ended=reversed(self.ended),
            running=[event for events in self.running.values() for event in events],
            counts=counts,
            pending=[event for events in self.pending.values() for event in events],
            live_counts=[count for counts in self.live_counts.values() for count in counts],
            ended_counts=[
                pb.TaskCount(name=name, type=kind, state=state, count=n)
                for (name, kind, state), n in self.ended_counts.items()
            ],
            ended_dropped=self.ended_dropped,
        )

    def _user_families(self) -> list[Family]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        made: dict[str, Family] = {}
        for name, (kind, doc, keys) in self.user_info.items():
            kind_of = {"counter": CounterMetricFamily, "gauge": GaugeMetricFamily}
            if kind == "histogram":
                made[name] = HistogramMetricFamily(name, doc, labels=list(keys))
            else:
                made[name] = kind_of[kind](name, doc, labels=list(keys))
        for values in (self.user_counters, self.user_gauges):
            for (name, tags), value in values.items():
                made[name].add_metric([v for _, v in tags], value)
        for (name, tags), totals in self.user_histograms.items():
            made[name].add_metric([v for _, v in tags], totals.exposition(), totals.sum)
        return list(made.values())


def _uint64(value: int) -> int:
    return min(max(value, 0), UINT64_MAX)
