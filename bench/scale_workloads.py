"""The scale benchmark's scenarios, as they run inside a benchmark child process.

Each takes the system's name ("ember" or "ray"), the sizes to measure and the options, and
calls ``emit(point)`` once per size with a dict of figures (plain numbers; the parent prints
and stores them). A scenario that starts a cluster stops it before it returns, also on error.
Functions and classes that run in workers are module-level, shipped by value (``scale.py``
registers this module with cloudpickle), as ``bench/workloads.py``'s are.
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
from collections.abc import Callable
from typing import Any

import scale_head
import scale_policy
from scale_probes import (
    AGENT,
    HEAD,
    NODE_MEMORY,
    ManyNodes,
    cpu_seconds,
    descendants,
    median_seconds,
    mem_available,
    peak_rss,
    processes_named,
    pss,
    reset_peak,
    rss,
)

Emit = Callable[[dict[str, Any]], None]
MB = 2**20
SMALL = b"x" * 100  # a small object: inline in ember's owner; Ray's put stores it in plasma


# ------------------------------------------------------------------ in workers


def noop() -> None:
    return None


def node_id() -> str:
    """The node this task runs on, in whichever system runs it."""
    import sys

    api = sys.modules.get("ember") or sys.modules["ray"]
    return str(api.get_runtime_context().get_node_id())


def touch(array: Any) -> int:
    """Read the array: one element of every 4 KiB page, so that every page is mapped."""
    return int(array[:: 4096 // array.itemsize].sum())


class Holder:
    """Keeps the refs it is given: their objects stay borrowed until ``release``."""

    def __init__(self) -> None:
        self.refs: list[Any] = []

    def hold(self, refs: list[Any]) -> int:
        self.refs.extend(refs)
        return len(self.refs)

    def release(self) -> int:
        count = len(self.refs)
        self.refs = []
        gc.collect()
        return count


# ------------------------------------------------------------------ helpers


def _init(system: str, **kwargs: Any) -> Any:
    import importlib

    api = importlib.import_module(system)
    if system == "ray":
        api.init(include_dashboard=False, logging_level="ERROR", **kwargs)
    else:
        api.init(include_dashboard=False, logging_level="WARNING", **kwargs)
    return api


def _owned_objects(system: str) -> int:
    """How many objects this driver still keeps (its owner's table), to see them freed."""
    if system == "ember":
        from ember.runtime.core import context

        return len(context.require_core().store)
    import ray

    return len(ray._private.worker.global_worker.core_worker.get_all_reference_counts())


def _settled_count(system: str) -> int:
    """The driver's objects once the warm-up's temporary refs are gone (ember applies
    releases every 50 ms, on its I/O thread)."""
    gc.collect()
    time.sleep(0.3)
    return _owned_objects(system)


def _wait_owned(system: str, at_most: int, timeout: float = 300.0) -> None:
    """Until the driver keeps at most ``at_most`` objects. Polls back off with the cost of
    asking (Ray's table is copied out on each call), so the poll does not dominate."""
    start = time.perf_counter()
    interval = 0.002
    while True:
        asked = time.perf_counter()
        if _owned_objects(system) <= at_most:
            return
        if asked - start > timeout:
            raise RuntimeError(f"{system}: objects still kept {timeout:.0f} s after they were let go")
        time.sleep(max(interval, 2 * (time.perf_counter() - asked)))
        interval = min(interval * 1.5, 0.05)


def _one(marker: str) -> int:
    pids = processes_named(marker)
    if not pids:
        raise RuntimeError(f"no process {marker!r} under this driver")
    return pids[0]


# ------------------------------------------------------------------ scenarios


class Budget:
    """Whether the next size fits in the seconds a size may take.

    The prediction keeps the last size's fixed part (a cluster's start-up) and scales its work
    by the size, and by how much the per-unit cost grew over the step before (at most 2x), so
    that a cost growing faster than the work is not waited for at the next size."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.history: list[tuple[int, float, float]] = []  # (size, work, fixed) seconds

    def record(self, size: int, total: float, work: float | None = None) -> None:
        work = total if work is None else min(work, total)
        self.history.append((size, work, total - work))

    def refuses(self, size: int) -> str:
        """Why ``size`` is not measured; '' when it fits."""
        if not self.history:
            return ""
        last, work, fixed = self.history[-1]
        growth = 1.0
        if len(self.history) > 1:
            before, before_work, _ = self.history[-2]
            if before_work > 0 and work > 0:
                growth = min(2.0, max(1.0, (work / last) / (before_work / before)))
        expected = fixed + work * size / last * growth
        if expected <= self.seconds:
            return ""
        how = "its per-unit cost growing as it did" if growth > 1 else "linearly"
        return (
            f"the previous size took {fixed + work:.0f} s, so this one would take about "
            f"{expected:.0f} s (scaled {how}), over the budget of {self.seconds:g} s a size "
            f"(--budget)"
        )


def tasks(system: str, sizes: list[int], options: dict[str, Any], emit: Emit) -> None:
    """N no-op tasks submitted at once by one driver, then awaited together."""
    [n] = sizes
    api = _init(system)
    try:
        f = api.remote(noop)
        api.get([f.remote() for _ in range(1000)])  # workers started, leases taken
        me, agent, head = os.getpid(), _one(AGENT[system]), _one(HEAD[system])
        gc.collect()
        before = {pid: rss(pid) for pid in (me, agent, head)}
        for pid in before:
            reset_peak(pid)
        start = time.perf_counter()
        refs = [f.remote() for _ in range(n)]
        submitted = time.perf_counter() - start
        api.get(refs)
        elapsed = time.perf_counter() - start
        emit({
            "size": n,
            "s": elapsed,
            "us_per_task": elapsed / n * 1e6,
            "submit_us_per_task": submitted / n * 1e6,
            "driver_bytes_per_task": (peak_rss(me) - before[me]) / n,
            "agent_peak_mb": peak_rss(agent) / MB,
            "agent_growth_mb": (peak_rss(agent) - before[agent]) / MB,
            "head_growth_mb": (peak_rss(head) - before[head]) / MB,
        })
        del refs
    finally:
        api.shutdown()


def objects(system: str, sizes: list[int], options: dict[str, Any], emit: Emit) -> None:
    """N small objects put and kept alive by one owner, then all let go at once."""
    [n] = sizes
    api = _init(system)
    try:
        api.get(api.put(SMALL))
        me, agent = os.getpid(), _one(AGENT[system])
        known = _settled_count(system)
        base, agent_base = rss(me), rss(agent)
        start = time.perf_counter()
        refs = [api.put(SMALL) for _ in range(n)]
        put = time.perf_counter() - start
        held = rss(me) - base
        agent_held = rss(agent) - agent_base
        start = time.perf_counter()
        del refs
        _wait_owned(system, known)
        freed = time.perf_counter() - start
        emit({
            "size": n,
            "put_us_per_object": put / n * 1e6,
            "driver_bytes_per_ref": held / n,
            "agent_bytes_per_ref": agent_held / n,
            "free_s": freed,
            "free_us_per_ref": freed / n * 1e6,
        })
    finally:
        api.shutdown()


def borrowed(system: str, sizes: list[int], options: dict[str, Any], emit: Emit) -> None:
    """N objects owned by the driver, lent to an actor that keeps them; the driver drops its
    own refs, then the actor lets go and the owner frees them."""
    [n] = sizes
    api = _init(system)
    try:
        holder = api.remote(Holder).remote()
        api.get(holder.hold.remote([]))
        me = os.getpid()
        known = _settled_count(system)
        refs = [api.put(SMALL) for _ in range(n)]
        gc.collect()
        base = rss(me)
        start = time.perf_counter()
        chunk = 1000
        api.get([holder.hold.remote(refs[i : i + chunk]) for i in range(0, n, chunk)])
        lent = time.perf_counter() - start
        lent_bytes = rss(me) - base
        del refs
        gc.collect()
        time.sleep(0.5)
        freed_early = max(0, n - (_owned_objects(system) - known))
        point: dict[str, Any] = {
            "size": n,
            "lend_us_per_ref": lent / n * 1e6,
            "owner_bytes_per_borrowed_ref": lent_bytes / n,
        }
        if freed_early:
            # A correctness failure, not a cost: say so, and time nothing that depends on it.
            point["failure"] = (
                f"{freed_early} of {n} objects were freed by their owner while the actor still "
                f"held refs to them"
            )
        else:
            start = time.perf_counter()
            assert api.get(holder.release.remote()) == n
            _wait_owned(system, known)
            freed = time.perf_counter() - start
            point.update(free_s=freed, free_us_per_ref=freed / n * 1e6)
        emit(point)
        api.kill(holder)
    finally:
        api.shutdown()


def _status_seconds(system: str, address: str) -> float:
    if system == "ember":
        from ember import status_report

        return median_seconds(lambda: status_report.render(status_report.fetch(address)), 10)
    from ray.autoscaler.v2 import sdk

    return median_seconds(lambda: sdk.get_cluster_status(address), 10)


def _demand_seconds(system: str, address: str, repeat: int = 20) -> float:
    if system == "ray":
        from ray._raylet import GcsClient
        from ray.autoscaler.v2 import sdk

        client = GcsClient(address=address)
        return median_seconds(lambda: sdk.get_cluster_resource_state(client), repeat)
    from ember.runtime.wire import rpc
    from ember.runtime.wire.protocol import ember_pb2 as pb

    async def ask() -> float:
        channels = rpc.Channels()
        try:
            head = channels.head(address)
            await head.GetDemand(pb.Empty(), timeout=30)
            times = []
            for _ in range(repeat):
                start = time.perf_counter()
                await head.GetDemand(pb.Empty(), timeout=30)
                times.append(time.perf_counter() - start)
            return sorted(times)[len(times) // 2]
        finally:
            await channels.close()

    return asyncio.run(ask())


# A second driver, a job of its own: it places SPREAD tasks over the cluster, says how long
# that took and on how many nodes, then waits for its stdin to close before it exits, so that
# the head's work for the job's end (its workers stopped on every node) can be timed.
PLACER = """
import sys, time
system, address, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
if system == "ember":
    import ember as api
    api.init(address=address, logging_level="WARNING")
else:
    import ray as api
    api.init(address=address, logging_level="ERROR")

def where():
    return str(api.get_runtime_context().get_node_id())

spread = api.remote(where).options(scheduling_strategy="SPREAD")
api.get([spread.remote() for _ in range(100)])
start = time.perf_counter()
placed = api.get([spread.remote() for _ in range(count)])
print(time.perf_counter() - start, len(set(placed)), flush=True)
sys.stdin.read()
"""


def _place_and_leave(
    system: str, address: str, count: int, head: int, idle_rate: float
) -> tuple[float, int, float]:
    """(seconds to place ``count`` SPREAD tasks, nodes they ran on, head CPU seconds the
    job's end cost beyond idling) from a driver process of its own."""
    import subprocess
    import sys

    env = dict(os.environ)
    if system == "ember":
        from ember.runtime.wire import auth

        env[auth.ENV] = auth.token()
    placer = subprocess.Popen(
        [sys.executable, "-c", PLACER, system, address, str(count)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        assert placer.stdout is not None and placer.stdin is not None
        line = placer.stdout.readline()
        if not line:
            raise RuntimeError(f"the placing driver failed: {placer.communicate()[1][-2000:]}")
        took, used = line.split()
        time.sleep(1.0)
        before, start = cpu_seconds(head), time.perf_counter()
        placer.stdin.close()
        placer.wait(60)
        time.sleep(2.5)  # the head learns the driver is gone; nodes stop its workers and report
        spent = cpu_seconds(head) - before - idle_rate * (time.perf_counter() - start)
        return float(took), int(used), max(0.0, spent)
    finally:
        if placer.poll() is None:
            placer.kill()
            placer.wait()


def _cluster_pss(system: str) -> int:
    """What the cluster's processes (all but this driver) hold, shared pages divided."""
    return sum(pss(pid) for pid in descendants(os.getpid()))


def nodes(system: str, sizes: list[int], options: dict[str, Any], emit: Emit) -> None:
    """One cluster grown to each size (1-CPU nodes); at each: the head's idle CPU and memory,
    the status and demand queries, 10,000 SPREAD tasks placed by a second driver, and what
    that driver's end costs the head."""
    count = int(options.get("spread_tasks", 10_000))
    idle_window = float(options.get("idle_window", 3.0))
    cluster = ManyNodes(system, num_cpus=1)
    try:
        cluster.start()
        time.sleep(2.0)
        head = _one(HEAD[system])
        per_node = NODE_MEMORY[system]
        budget = Budget(float(options["budget"]))
        for size in sizes:
            # What a size costs is mostly the nodes it adds: the budget counts those.
            reason = budget.refuses(size - cluster.size)
            if reason:
                emit({"size": size, "skipped": reason})
                break
            began = time.perf_counter()
            needed = (size - cluster.size) * per_node
            if needed > mem_available() / 2:
                emit({"size": size, "skipped": (
                    f"{size - cluster.size} more {system} nodes would take ~{needed / 2**30:.1f} GiB "
                    f"({per_node / MB:.0f} MiB a node), over half the "
                    f"{mem_available() / 2**30:.1f} GiB available")})
                break
            added = size - cluster.size
            head_before = rss(head)
            joined = cluster.grow(size)
            join_s = joined / added
            time.sleep(2.0)  # zygotes and warm workers finish starting; reports settle
            head_grew = rss(head) - head_before
            agents = processes_named(AGENT[system])
            head_cpu, agents_cpu = cpu_seconds(head), sum(cpu_seconds(p) for p in agents)
            time.sleep(idle_window)
            head_cpu = cpu_seconds(head) - head_cpu
            agents_cpu = sum(cpu_seconds(p) for p in agents) - agents_cpu
            per_node = _cluster_pss(system) // size  # measured: the next guard uses it
            status = _status_seconds(system, cluster.head_address)
            demand = _demand_seconds(system, cluster.head_address)
            place, used, job_end = _place_and_leave(
                system, cluster.head_address, count, head, head_cpu / idle_window
            )
            emit({
                "size": size,
                "head_idle_cpu_ms_per_s_per_node": head_cpu / idle_window * 1000 / size,
                "head_idle_cpu_ms_per_s": head_cpu / idle_window * 1000,
                "agent_idle_cpu_ms_per_s": agents_cpu / idle_window * 1000 / len(agents),
                "head_kib_per_node": head_grew / 1024 / max(1, added),
                "cluster_pss_mib_per_node": _cluster_pss(system) / MB / size,
                "join_s_per_node": join_s,
                "status_ms": status * 1000,
                "demand_ms": demand * 1000,
                "place_us_per_task": place / count * 1e6,
                "nodes_used": used,
                "job_end_head_cpu_ms": job_end * 1000,
            })
            budget.record(added, time.perf_counter() - began, work=joined)
    finally:
        cluster.stop()


def broadcast(system: str, sizes: list[int], options: dict[str, Any], emit: Emit) -> None:
    """One large array put on the first node, read at once by a task on each of k others."""
    import numpy as np

    nbytes = int(options.get("broadcast_mb", 1000)) * 10**6
    readers = max(sizes)
    cluster = ManyNodes(system, num_cpus=1, object_store_memory=int(nbytes * 1.5) + 200 * MB)
    try:
        cluster.start()
        api = cluster.api
        read = api.remote(touch)
        pinned = [read.options(resources={f"n{i}": 0.01}) for i in range(1, readers + 1)]
        cluster.grow(1 + readers)
        api.get([task.remote(np.ones(16)) for task in pinned])  # a warm worker on each node
        array = np.ones(nbytes // 8)
        for k in sizes:
            needed = (k + 2) * nbytes
            if needed > mem_available() * 0.8:
                emit({"size": k, "skipped": (
                    f"{k} copies of {nbytes / 1e9:g} GB (and the source and the driver's) need "
                    f"{needed / 2**30:.1f} GiB; {mem_available() / 2**30:.1f} GiB available")})
                break
            ref = api.put(array)
            api.wait([ref])
            start = time.perf_counter()
            sums = api.get([task.remote(ref) for task in pinned[:k]])
            elapsed = time.perf_counter() - start
            assert len(sums) == k and all(s == sums[0] for s in sums)
            emit({
                "size": k,
                "s": elapsed,
                "s_per_reader": elapsed / k,
                "gb_per_s": k * nbytes / 1e9 / elapsed,
            })
            del ref
            time.sleep(1.0)  # the copies are freed on every node before the next round
    finally:
        cluster.stop()


def policy_nodes(system: str, sizes: list[int], options: dict[str, Any], emit: Emit) -> None:
    """The autoscaling decision with ``size`` live nodes and 1,000 pending bundles."""
    demand = int(options.get("policy_demand", 1000))
    _policy(system, [(size, demand) for size in sizes], sizes, options, emit)


def policy_demand(system: str, sizes: list[int], options: dict[str, Any], emit: Emit) -> None:
    """The autoscaling decision with ``size`` pending bundles on 1,000 live nodes."""
    live = int(options.get("policy_nodes", 1000))
    _policy(system, [(live, size) for size in sizes], sizes, options, emit)


def _policy(
    system: str,
    points: list[tuple[int, int]],
    sizes: list[int],
    options: dict[str, Any],
    emit: Emit,
) -> None:
    """A pure function: every size in this one process, the cheap ones three times."""
    budget = Budget(float(options["budget"]))
    last = 0.0
    for (live, pending), size in zip(points, sizes, strict=True):
        reason = budget.refuses(size)
        if reason:
            emit({"size": size, "skipped": reason})
            break
        decide = scale_policy.decider(system, live, pending)
        last = median_seconds(decide, 3 if last < 1.0 else 1)
        budget.record(size, last)
        emit({
            "size": size,
            "nodes": live,
            "pending": pending,
            "ms": last * 1000,
            "us_per_pending": last / pending * 1e6,
            "us_per_node": last / live * 1e6,
        })


SCENARIOS: dict[str, Callable[[str, list[int], dict[str, Any], Emit], None]] = {
    "tasks": tasks,
    "objects": objects,
    "borrowed": borrowed,
    "nodes": nodes,
    "policy_nodes": policy_nodes,
    "policy_demand": policy_demand,
    "broadcast": broadcast,
    "head_tables": scale_head.head_tables,
}
