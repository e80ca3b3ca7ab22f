"""The node's GPUs, one by one: which devices it has, and which lease holds how much of each.

A node's ``GPU`` resource is a count, but a task needs *devices*: ``num_gpus=1`` must get a
device nobody else has, and its ``CUDA_VISIBLE_DEVICES`` must name it. So the agent keeps, per
device, how much is free (in the resource units of ``wire.resources``, one device being
``UNIT``) and picks devices for each lease as Ray does:

- a whole number of GPUs takes that many devices that are entirely free, lowest first;
- a fraction (``num_gpus=0.25``) goes to one device: the fullest one it still fits on, so that
  one device is packed before the next is touched (no fragmentation);
- more than one GPU must be a whole number (1.5 GPUs is no set of devices).

The devices are named by their ids as the machine knows them: those in ``CUDA_VISIBLE_DEVICES``
when the agent started with it set (Ray's way to give a node some of a machine's GPUs, and how
tests give a node devices it does not have), else ``0 .. N-1``.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass

from ember.runtime.wire.resources import UNIT

log = logging.getLogger("ember.runtime.node.gpu_devices")

VISIBLE_DEVICES = "CUDA_VISIBLE_DEVICES"
NVIDIA_SMI_TIMEOUT = 10.0  # seconds; a wedged driver must not keep the node from starting
NVIDIA_PROC = "/proc/driver/nvidia/gpus"

# What a lease holds of the devices: (device id, amount in resource units).
Assignment = list[tuple[str, int]]


def whole_devices_error(amount: int) -> str:
    """Why a GPU request cannot be given devices, or '' when it can."""
    if amount > UNIT and amount % UNIT:
        return (
            f"num_gpus={amount / UNIT:g}: more than one GPU must be a whole number of devices "
            f"(a fraction up to 1 shares one device)"
        )
    return ""


class GpuDevices:
    def __init__(self, device_ids: list[str]) -> None:
        self.ids = list(device_ids)
        self.free: dict[str, int] = {device: UNIT for device in self.ids}

    def __len__(self) -> int:
        return len(self.ids)

    def choose(self, amount: int, free: Mapping[str, int] | None = None) -> Assignment | None:
        """The devices ``amount`` would take from ``free`` (by default what is free now), or
        None if they are not free. Takes nothing."""
        if amount <= 0:
            return []
        free = self.free if free is None else free
        if amount < UNIT:
            fitting = [d for d in self.ids if free[d] >= amount]
            if not fitting:
                return None
            # The fullest device it fits on; the first of those.
            device = min(fitting, key=lambda d: free[d])
            return [(device, amount)]
        if amount % UNIT:
            return None
        whole = [d for d in self.ids if free[d] == UNIT]
        count = amount // UNIT
        if len(whole) < count:
            return None
        return [(device, UNIT) for device in whole[:count]]

    def take(self, assignment: Assignment, free: dict[str, int] | None = None) -> None:
        free = self.free if free is None else free
        for device, amount in assignment:
            free[device] -= amount

    def give_back(self, assignment: Assignment) -> None:
        for device, amount in assignment:
            self.free[device] += amount


@dataclass(frozen=True)
class NodeGpus:
    """What the node found, or was told, of its GPUs."""

    ids: list[str]
    accelerator_type: str  # '' when unknown


def discover(num_gpus: float | None, accelerator_type: str | None = None) -> NodeGpus:
    """The node's GPU ids and model. ``num_gpus`` (``--num-gpus``) overrides the count found;
    ``accelerator_type`` (``--accelerator-type``) the model. Raises ValueError on a count
    that cannot be devices."""
    if num_gpus is not None and (num_gpus < 0 or num_gpus != int(num_gpus)):
        raise ValueError(
            f"--num-gpus must be a whole number of devices, got {num_gpus:g}"
        )
    visible = _visible_devices()
    found_names: list[str] | None = None
    if num_gpus is None:
        found_names = _nvidia_smi_names()
        count = len(found_names) if found_names is not None else _proc_count()
        if visible is not None:
            count = min(count, len(visible)) if count else len(visible)
    else:
        count = int(num_gpus)
    if visible is not None:
        if count > len(visible):
            raise ValueError(
                f"--num-gpus {count} asks for more GPUs than {VISIBLE_DEVICES} names "
                f"({','.join(visible) or 'none'})"
            )
        ids = visible[:count]
    else:
        ids = [str(index) for index in range(count)]
    model = accelerator_type or ""
    if not model and ids:
        names = found_names if found_names is not None else _nvidia_smi_names()
        if names:
            model = accelerator_type_of(names[0])
    return NodeGpus(ids, model)


def accelerator_type_of(name: str) -> str:
    """The accelerator type Ray derives from a GPU's name: the first word after the vendor
    made of capitals and digits ('NVIDIA A100-SXM4-40GB' is 'A100', 'Tesla V100-SXM2-16GB'
    'V100', 'NVIDIA GeForce RTX 3090' 'RTX'); '' if there is none."""
    for word in name.split()[1:]:
        match = re.match(r"[A-Z0-9]+", word)
        if match and not word[match.end():match.end() + 1].islower():
            return match.group(0)
    return ""


def _visible_devices() -> list[str] | None:
    value = os.environ.get(VISIBLE_DEVICES)
    if value is None:
        return None
    return [d.strip() for d in value.split(",") if d.strip() and d.strip() != "-1"]


def _nvidia_smi_names() -> list[str] | None:
    """The GPUs' names as nvidia-smi lists them, or None without a working nvidia-smi."""
    command = shutil.which("nvidia-smi")
    if command is None:
        return None
    try:
        done = subprocess.run(
            [command, "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=NVIDIA_SMI_TIMEOUT, check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        log.warning("nvidia-smi did not list the GPUs: %s", error)
        return None
    if done.returncode != 0:
        log.warning("nvidia-smi failed (exit code %d): %s", done.returncode, done.stderr.strip())
        return None
    return [line.strip() for line in done.stdout.splitlines() if line.strip()]


def _proc_count() -> int:
    try:
        return len(os.listdir(NVIDIA_PROC))
    except OSError:
        return 0
