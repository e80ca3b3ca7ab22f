"""GPU devices one by one: which devices a lease gets, how fractions pack, what a node finds.

The allocation rules are Ray's: whole GPUs take devices nobody holds any of, lowest first; a
fraction goes to the fullest device it fits on; more than one GPU must be whole devices.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ember.runtime.node import gpu_devices
from ember.runtime.node.gpu_devices import GpuDevices, accelerator_type_of, whole_devices_error
from ember.runtime.wire.resources import UNIT, to_fixed


def _gpus(amount: float) -> int:
    return to_fixed({"GPU": amount})["GPU"]


def _take(devices: GpuDevices, amount: float) -> list[tuple[str, int]]:
    chosen = devices.choose(_gpus(amount))
    assert chosen is not None, f"{amount} GPU did not fit: {devices.free}"
    devices.take(chosen)
    return chosen


def test_whole_gpus_take_distinct_devices_lowest_first():
    devices = GpuDevices(["0", "1", "2"])
    assert _take(devices, 1) == [("0", UNIT)]
    assert _take(devices, 2) == [("1", UNIT), ("2", UNIT)]
    assert devices.choose(_gpus(1)) is None
    devices.give_back([("1", UNIT)])
    assert _take(devices, 1) == [("1", UNIT)]


def test_fractions_pack_one_device_before_the_next():
    # Ray's documented example: three actors of 0.5 GPU on a 3-GPU node get [0], [0], [1].
    devices = GpuDevices(["0", "1", "2"])
    assert [_take(devices, 0.5)[0][0] for _ in range(3)] == ["0", "0", "1"]
    # The fullest device a fraction fits on: device 1 (half free), not 2 (all free).
    assert _take(devices, 0.25) == [("1", _gpus(0.25))]
    assert _take(devices, 0.5) == [("2", _gpus(0.5))]


def test_a_whole_gpu_needs_a_device_nobody_holds_any_of():
    devices = GpuDevices(["0", "1"])
    a = _take(devices, 0.5)
    _take(devices, 0.5)
    c = _take(devices, 0.5)
    assert (a[0][0], c[0][0]) == ("0", "1")
    devices.give_back(a)
    # Half of each device is free (one GPU in all), yet no device is whole.
    assert sum(devices.free.values()) == UNIT
    assert devices.choose(_gpus(1)) is None
    assert devices.choose(_gpus(0.5)) == [("0", _gpus(0.5))]


def test_more_than_one_gpu_must_be_whole_devices():
    devices = GpuDevices(["0", "1"])
    assert devices.choose(_gpus(1.5)) is None
    assert "whole number of devices" in whole_devices_error(_gpus(1.5))
    assert whole_devices_error(_gpus(2)) == whole_devices_error(_gpus(0.3)) == ""
    assert devices.choose(0) == []


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.sampled_from([0.1, 0.25, 0.5, 0.75, 1, 2, 3])), max_size=40))
def test_no_device_is_ever_promised_twice(operations):
    """Any mix of leases taken and given back: no device holds more than all of it, and a
    device given whole to one lease is in no other lease."""
    devices = GpuDevices(["a", "b", "c", "d"])
    live: list[list[tuple[str, int]]] = []
    for give_back, amount in operations:
        if give_back and live:
            devices.give_back(live.pop(0))
        else:
            chosen = devices.choose(_gpus(amount))
            if chosen is None:
                continue
            devices.take(chosen)
            live.append(chosen)
            assert len(chosen) == max(1, int(amount))  # a fraction is on one device
        held: dict[str, int] = {}
        for assignment in live:
            for device, share in assignment:
                held[device] = held.get(device, 0) + share
        assert all(held.get(d, 0) + devices.free[d] == UNIT for d in devices.ids)
        whole = [d for assignment in live for d, share in assignment if share == UNIT]
        assert len(whole) == len(set(whole))
        for device in whole:
            assert sum(1 for a in live for d, _ in a if d == device) == 1


@pytest.mark.parametrize(
    ("name", "model"),
    [
        ("NVIDIA A100-SXM4-40GB", "A100"),
        ("Tesla V100-SXM2-16GB", "V100"),
        ("NVIDIA H100 80GB HBM3", "H100"),
        ("NVIDIA A10G", "A10G"),
        ("NVIDIA L4", "L4"),
        ("Tesla T4", "T4"),
        ("NVIDIA GeForce RTX 3090", "RTX"),
        ("NVIDIA RTX A6000", "RTX"),
        ("mystery", ""),
    ],
)
def test_accelerator_type_from_the_gpu_name(name, model):
    assert accelerator_type_of(name) == model


@pytest.fixture
def fake_nvidia_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An nvidia-smi on PATH that lists two A100s, as the real one does."""
    script = tmp_path / "nvidia-smi"
    script.write_text(
        "#!/bin/sh\n"
        'test "$1" = "--query-gpu=name" || exit 9\n'
        "echo 'NVIDIA A100-SXM4-80GB'\n"
        "echo 'NVIDIA A100-SXM4-80GB'\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return script


def test_a_node_finds_its_gpus_and_their_model_with_nvidia_smi(fake_nvidia_smi):
    found = gpu_devices.discover(None)
    assert found.ids == ["0", "1"] and found.accelerator_type == "A100"
    told = gpu_devices.discover(1, "H100")
    assert told.ids == ["0"] and told.accelerator_type == "H100"


def test_cuda_visible_devices_names_the_nodes_devices(fake_nvidia_smi, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5,7")
    assert gpu_devices.discover(None).ids == ["3", "5"]  # two found: the first two named
    assert gpu_devices.discover(3).ids == ["3", "5", "7"]
    with pytest.raises(ValueError, match=r"--num-gpus 4 asks for more GPUs than CUDA_VISIBLE_DEVICES names \(3,5,7\)"):
        gpu_devices.discover(4)


def test_a_gpu_count_must_be_whole_devices(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    with pytest.raises(ValueError, match="--num-gpus must be a whole number of devices, got 1.5"):
        gpu_devices.discover(1.5)
    assert gpu_devices.discover(2).ids == ["0", "1"]
    assert gpu_devices.discover(0).ids == []
