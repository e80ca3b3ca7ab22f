"""A node's default resources follow the container's cgroup limits, not the host's."""

from __future__ import annotations

from pathlib import Path

import pytest

from ember.runtime.node import node_resources
from ember.runtime.wire import resources


@pytest.fixture
def cgroup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(node_resources, "CGROUP_ROOT", str(tmp_path))
    return tmp_path


def test_cgroup_v2_cpu_quota_caps_cpus(cgroup: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(node_resources.os, "sched_getaffinity", lambda pid: set(range(8)))
    (cgroup / "cpu.max").write_text("250000 100000\n")
    assert node_resources.cpu_count() == 2  # 2.5 CPUs of quota: two whole workers
    (cgroup / "cpu.max").write_text("max 100000\n")
    assert node_resources.cpu_count() == 8


def test_cgroup_v1_cpu_quota(cgroup: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(node_resources.os, "sched_getaffinity", lambda pid: set(range(8)))
    (cgroup / "cpu").mkdir()
    (cgroup / "cpu" / "cpu.cfs_quota_us").write_text("300000\n")
    (cgroup / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert node_resources.cpu_count() == 3


def test_memory_limit_and_store_size(cgroup: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (cgroup / "memory.max").write_text(f"{4 * 2**30}\n")
    monkeypatch.setattr(node_resources, "shm_bytes", lambda: 64 * 2**20)
    assert node_resources.memory_bytes() == 4 * 2**30
    total = resources.to_float(node_resources.default_resources(num_cpus=1))
    # 30% of the 4 GiB limit would be 1.2 GiB; the pod's /dev/shm holds only 64 MiB.
    assert total["object_store_memory"] == 64 * 2**20
    assert total["memory"] == 4 * 2**30 - 64 * 2**20
    explicit = resources.to_float(node_resources.default_resources(object_store_memory=2**30))
    assert explicit["object_store_memory"] == 2**30
