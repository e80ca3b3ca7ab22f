"""What the scale benchmark reads about processes, and the many-node clusters it builds.

Memory and CPU come from ``/proc`` (Linux), so that ember's processes and Ray's are measured
the same way, from outside, without either system's cooperation: peak RSS (``VmHWM``, reset
through ``clear_refs`` before a measurement so that the peak is the workload's, not start-up's),
RSS, PSS and CPU seconds. The clusters are the systems' own local ones: ember's ``init()`` plus
agents from ``ember.runtime.launcher``, Ray's ``ray.cluster_utils.Cluster`` (one raylet and its
agents per node).
"""

from __future__ import annotations

import concurrent.futures
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# What the cluster's own processes are called on the command line, per system.
HEAD = {"ember": "ember.runtime.head_main", "ray": "gcs_server"}
AGENT = {"ember": "ember.runtime.agent_main", "ray": "raylet"}

# What one more node costs in resident memory, measured on the build machine (ember: agent,
# zygote and one warm worker, whose pages are mostly shared; Ray: raylet, dashboard agent and
# runtime-env agent). Used only to refuse a size that would not fit, with the reason printed.
NODE_MEMORY = {"ember": 170 * 2**20, "ray": 250 * 2**20}


# ------------------------------------------------------------------ /proc


def _status_kib(pid: int, field_name: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def rss(pid: int) -> int:
    return _status_kib(pid, "VmRSS")


def peak_rss(pid: int) -> int:
    return _status_kib(pid, "VmHWM")


def reset_peak(pid: int) -> None:
    """Start the process's peak RSS afresh (Linux 4.0+: ``5`` to ``clear_refs``)."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def pss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def cpu_seconds(pid: int) -> float:
    """CPU time the process's threads have used so far, in nanoseconds' resolution
    (``schedstat``; ``stat``'s clock ticks are 10 ms, too coarse for an idle head)."""
    total = 0
    try:
        for thread in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{thread}/schedstat") as f:
                    total += int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                continue
    except OSError:
        return 0.0
    if total:
        return total / 1e9
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    except (OSError, IndexError, ValueError):
        return 0.0


def mem_available() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                parent = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def processes_named(marker: str, root: int | None = None) -> list[int]:
    """This process's descendants whose command line contains ``marker``, oldest first."""
    pids = descendants(os.getpid() if root is None else root)
    return sorted(pid for pid in pids if marker in cmdline(pid))


def load_average() -> tuple[float, float, float]:
    one, five, fifteen = os.getloadavg()
    return round(one, 2), round(five, 2), round(fifteen, 2)


def median_seconds(call: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2]


# ------------------------------------------------------------------ many-node clusters


@dataclass
class ManyNodes:
    """A local cluster of one system grown node by node, each node with its own custom
    resource (``n<i>``) so that a task can be pinned to it."""

    system: str
    num_cpus: float = 1
    object_store_memory: int | None = None
    api: Any = None
    extra: list[Any] = field(default_factory=list)  # ember: LocalProcesses; Ray: node handles
    _ray_cluster: Any = None
    _session_dir: str = ""
    _head_address: str = ""

    def start(self) -> None:
        """The first node, with the head, and this process as the driver."""
        if self.system == "ember":
            import ember

            self.api = ember
            started = ember.init(
                num_cpus=self.num_cpus,
                resources={"n0": 1},
                object_store_memory=self.object_store_memory,
                include_dashboard=False,
                logging_level="WARNING",
            )
            from ember.runtime.core import context

            self._session_dir = started.session_dir
            self._head_address = context.require_core().head_address
        else:
            import ray
            from ray.cluster_utils import Cluster

            self.api = ray
            head: dict[str, Any] = {
                "num_cpus": self.num_cpus,
                "resources": {"n0": 1},
                "include_dashboard": False,
            }
            if self.object_store_memory:
                head["object_store_memory"] = self.object_store_memory
            self._ray_cluster = Cluster(initialize_head=True, head_node_args=head)
            ray.init(address=self._ray_cluster.address, logging_level="ERROR")
            self._head_address = self._ray_cluster.gcs_address

    @property
    def size(self) -> int:
        return 1 + len(self.extra)

    @property
    def head_address(self) -> str:
        return self._head_address

    def grow(self, nodes: int, parallel: int = 8) -> float:
        """Add nodes until there are ``nodes``; returns the seconds until all of them are alive
        in the head's view."""
        start = time.perf_counter()
        wanted = range(self.size, nodes)
        if self.system == "ember":
            from ember.runtime import launcher

            def one(index: int) -> Any:
                return launcher.start_agent(
                    self._session_dir,
                    self._head_address,
                    num_cpus=self.num_cpus,
                    resources={f"n{index}": 1},
                    object_store_memory=self.object_store_memory,
                )

            with concurrent.futures.ThreadPoolExecutor(parallel) as pool:
                self.extra += list(pool.map(one, wanted))
        else:
            for index in wanted:
                args: dict[str, Any] = {"num_cpus": self.num_cpus, "resources": {f"n{index}": 1}}
                if self.object_store_memory:
                    args["object_store_memory"] = self.object_store_memory
                self.extra.append(self._ray_cluster.add_node(**args))
        deadline = time.monotonic() + 120
        while self.alive() < nodes:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.system}: only {self.alive()} of {nodes} nodes alive after 120 s")
            time.sleep(0.05)
        return time.perf_counter() - start

    def alive(self) -> int:
        return len([n for n in self.api.nodes() if n["Alive"]])

    def stop(self) -> None:
        if self.api is None:
            return
        if self.system == "ember":
            # All at once: one by one, each agent's stop waits for its exit in turn.
            with concurrent.futures.ThreadPoolExecutor(16) as pool:
                list(pool.map(lambda agent: agent.stop(), self.extra))
            self.api.shutdown()
        else:
            self.api.shutdown()
            if self._ray_cluster is not None:
                self._ray_cluster.shutdown()
        self.extra = []
