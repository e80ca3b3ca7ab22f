"""What a node offers by default: what the machine, or the container's cgroup limits, allow."""

from __future__ import annotations

import math
import os

from ember.runtime.wire import resources
from ember.runtime.wire.resources import Shape

OBJECT_STORE_FRACTION = 0.3  # of the node's memory, as Ray
CGROUP_ROOT = "/sys/fs/cgroup"  # where a container's limits are (v2, or v1 controllers below)
SHM = "/dev/shm"  # the object store's arena lives here: a pod's is often small


def cpu_count() -> float:
    try:
        count: float = len(os.sched_getaffinity(0))
    except AttributeError:
        count = os.cpu_count() or 1
    quota = _cgroup_cpu_quota()
    if quota is not None:
        count = min(count, max(1.0, math.floor(quota)))
    return count


def _cgroup_cpu_quota() -> float | None:
    try:
        with open(os.path.join(CGROUP_ROOT, "cpu.max")) as f:
            quota, period = f.read().split()
        if quota != "max":
            return int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        with open(os.path.join(CGROUP_ROOT, "cpu", "cpu.cfs_quota_us")) as f:
            quota_us = int(f.read())
        with open(os.path.join(CGROUP_ROOT, "cpu", "cpu.cfs_period_us")) as f:
            period_us = int(f.read())
        if quota_us > 0:
            return quota_us / period_us
    except (OSError, ValueError):
        pass
    return None


def memory_bytes() -> int:
    total = 0
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    total = int(line.split()[1]) * 1024
                    break
    except OSError:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in (
        os.path.join(CGROUP_ROOT, "memory.max"),
        os.path.join(CGROUP_ROOT, "memory", "memory.limit_in_bytes"),
    ):
        try:
            with open(path) as f:
                value = f.read().strip()
            if value != "max" and int(value) < total:
                total = int(value)
        except (OSError, ValueError):
            pass
    return total


def shm_bytes() -> int:
    try:
        stat = os.statvfs(SHM)
    except OSError:
        return 0
    return int(stat.f_blocks * stat.f_frsize * 0.95)


def default_resources(
    num_cpus: float | None = None,
    num_gpus: int = 0,
    memory: int | None = None,
    object_store_memory: int | None = None,
    custom: dict[str, float] | None = None,
) -> Shape:
    """The node's total resources, filling in what the caller did not say. The GPUs are
    counted by ``gpu_devices.discover``, which knows them one by one."""
    machine_memory = memory_bytes()
    if object_store_memory is None:
        object_store_memory = int(machine_memory * OBJECT_STORE_FRACTION)
        # A container's /dev/shm may be far smaller (64 MiB unless a memory volume is mounted):
        # a store larger than it would fail with SIGBUS on first touch, not with a clear error.
        object_store_memory = min(object_store_memory, shm_bytes() or object_store_memory)
    if memory is None:
        memory = max(0, machine_memory - object_store_memory)
    quantities: dict[str, float] = {
        "CPU": cpu_count() if num_cpus is None else num_cpus,
        "GPU": num_gpus,
        "memory": memory,
        "object_store_memory": object_store_memory,
    }
    for name, value in (custom or {}).items():
        if name in ("CPU", "GPU"):
            raise ValueError(f"use num_cpus/num_gpus instead of resources={{'{name}': ...}}")
        quantities[name] = value
    return resources.to_fixed(quantities)
