"""GPUs as a GPU user expects, on nodes that have none: ``--num-gpus`` gives a node devices
(numbered 0..N-1, or named by ``CUDA_VISIBLE_DEVICES`` when the node starts with it: the fake
device list), and tasks and actors read their own in ``CUDA_VISIBLE_DEVICES``,
``ember.get_gpu_ids()`` and ``get_runtime_context().get_accelerator_ids()``.

Two tasks never share a whole device, which is shown while they run at once (they meet at a
barrier, so each result was produced while the others held their devices); fractions pack as
Ray documents; a worker kept for reuse sees each lease's devices; ``max_calls`` replaces
workers; ``accelerator_type=`` runs only where that model is; work in a placement group's
bundle gets devices as work outside one does.
"""

from __future__ import annotations

import asyncio
import collections
import os
import time

import pytest

import ember
from ember.exceptions import ActorDiedError, TaskUnschedulableError
from ember.runtime import launcher
from ember.runtime.core import context
from ember.util import placement_group, remove_placement_group
from ember.util.scheduling_strategies import PlacementGroupSchedulingStrategy

MAIN = {"main": 0.01}  # the head's node: where the barriers go, out of the GPU nodes' way


@pytest.fixture(scope="module")
def gpu_nodes():
    """The head's node with GPUs 0 and 1; a second node whose three GPUs are named 3, 5 and
    7 by CUDA_VISIBLE_DEVICES, of model A100."""
    with pytest.MonkeyPatch.context() as env:
        env.delenv("CUDA_VISIBLE_DEVICES", raising=False)
        ctx = ember.init(num_cpus=4, num_gpus=2, resources={"main": 100})
        core = context.require_core()
        env.setenv("CUDA_VISIBLE_DEVICES", "3,5,7")
        second = launcher.start_agent(
            ctx.session_dir, core.head_address, num_cpus=4, num_gpus=3,
            resources={"second": 100}, accelerator_type="A100",
        )
    try:
        _wait_for(lambda: ember.cluster_resources().get("GPU") == 5)
        yield ctx, core.head_address
    finally:
        ember.shutdown()
        second.stop()


def _wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the cluster did not get there in time"
        time.sleep(0.05)


def _gpus_free(count: float) -> None:
    """Wait until ``count`` GPUs of the cluster are free again (leases end after a linger)."""
    _wait_for(lambda: ember.available_resources().get("GPU", 0) == count)


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


@ember.remote(num_cpus=0)
class Barrier:
    """``wait`` returns once ``parties`` callers are waiting: they all run at that moment."""

    def __init__(self, parties):
        self.parties = parties
        self.arrived = 0
        self.all_here = asyncio.Event()
        self.go = asyncio.Event()

    async def wait(self):
        self.arrived += 1
        if self.arrived >= self.parties:
            self.all_here.set()
        await self.all_here.wait()

    async def arrive_and_hold(self):
        """Arrive, then wait for ``release``."""
        self.arrived += 1
        if self.arrived >= self.parties:
            self.all_here.set()
        await self.go.wait()

    async def wait_for_all(self):
        await self.all_here.wait()

    async def release(self):
        self.go.set()


def _seen():
    return {
        "pid": os.getpid(),
        "visible": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "gpu_ids": ember.get_gpu_ids(),
        "accelerators": ember.get_runtime_context().get_accelerator_ids(),
        "node": ember.get_runtime_context().get_node_id(),
    }


@ember.remote
def meet(barrier):
    """What a task sees, reported while every task of its group holds its devices."""
    ember.get(barrier.wait.remote(), timeout=60)
    return _seen()


@ember.remote
def hold_then_report(barrier):
    ember.get(barrier.arrive_and_hold.remote(), timeout=60)
    return _seen()


@ember.remote
def report():
    return _seen()


@ember.remote
class GpuActor:
    def seen(self):
        return _seen()


def test_whole_gpus_running_at_once_have_disjoint_devices(gpu_nodes):
    barrier = Barrier.options(resources=MAIN).remote(3)
    tasks = [meet.options(num_gpus=1, resources={"second": 1}).remote(barrier) for _ in range(3)]
    seen = ember.get(tasks, timeout=90)
    assert sorted(s["visible"] for s in seen) == ["3", "5", "7"]
    for s in seen:
        # Named by CUDA_VISIBLE_DEVICES on that node: strings, as Ray returns them.
        assert s["gpu_ids"] == [s["visible"]]
        assert s["accelerators"] == {"GPU": [s["visible"]]}

    barrier = Barrier.options(resources=MAIN).remote(2)
    tasks = [meet.options(num_gpus=1, resources={"main": 1}).remote(barrier) for _ in range(2)]
    seen = ember.get(tasks, timeout=90)
    assert sorted(s["visible"] for s in seen) == ["0", "1"]
    assert sorted(s["gpu_ids"] for s in seen) == [[0], [1]]  # numbered by the node: ints
    _gpus_free(5)


def test_fractional_gpus_pack_two_to_a_device(gpu_nodes):
    barrier = Barrier.options(resources=MAIN).remote(4)
    tasks = [meet.options(num_gpus=0.5, resources={"main": 1}).remote(barrier) for _ in range(4)]
    seen = ember.get(tasks, timeout=90)
    assert collections.Counter(s["visible"] for s in seen) == {"0": 2, "1": 2}
    _gpus_free(5)


def test_actors_see_their_devices_and_fractional_actors_pack_as_ray_documents(gpu_nodes):
    # Ray's example: three actors of half a GPU get devices [0], [0], [1].
    halves = []
    for _ in range(3):
        actor = GpuActor.options(num_gpus=0.5, resources={"main": 1}).remote()
        halves.append(ember.get(actor.seen.remote()))
        halves[-1]["actor"] = actor
    assert [h["gpu_ids"] for h in halves] == [[0], [0], [1]]
    assert [h["visible"] for h in halves] == ["0", "0", "1"]
    whole = [GpuActor.options(num_gpus=1, resources={"second": 1}).remote() for _ in range(2)]
    seen = ember.get([a.seen.remote() for a in whole])
    assert len({s["visible"] for s in seen}) == 2 and {s["visible"] for s in seen} <= {"3", "5", "7"}
    # Its devices stay for its whole life.
    again = ember.get([a.seen.remote() for a in whole])
    assert [s["visible"] for s in again] == [s["visible"] for s in seen]
    for actor in [h["actor"] for h in halves] + whole:
        ember.kill(actor)
    _gpus_free(5)


def test_a_task_without_gpus_sees_none(gpu_nodes):
    for node in ("main", "second"):
        seen = ember.get(report.options(resources={node: 1}).remote())
        assert seen["visible"] == "" and seen["gpu_ids"] == [] and seen["accelerators"] == {"GPU": []}
    assert ember.get_gpu_ids() == []  # a driver has none


def test_a_reused_worker_sees_each_leases_devices(gpu_nodes):
    """With max_calls=0 a GPU task's worker serves later leases, each with devices of its own:
    CUDA_VISIBLE_DEVICES is set per task, and a CPU task on the same worker sees none."""
    ctx, head_address = gpu_nodes
    with pytest.MonkeyPatch.context() as env:
        env.setenv("CUDA_VISIBLE_DEVICES", "3,5,7")
        third = launcher.start_agent(
            ctx.session_dir, head_address, num_cpus=2, num_gpus=3, resources={"third": 100}
        )
    try:
        _wait_for(lambda: ember.cluster_resources().get("GPU") == 8)
        on_third = {"third": 1}
        holder = GpuActor.options(num_gpus=1, resources=on_third)
        first_holder = holder.remote()
        assert ember.get(first_holder.seen.remote())["visible"] == "3"
        # A probe holds a device and its worker while a second holder starts (so that holder
        # cannot take the probe's worker), and the first holder goes.
        barrier = Barrier.options(resources=MAIN).remote(1)
        probe = hold_then_report.options(num_gpus=1, max_calls=0, resources=on_third)
        first = probe.remote(barrier)
        ember.get(barrier.wait_for_all.remote(), timeout=60)
        second_holder = holder.remote()
        held = ember.get(second_holder.seen.remote())["visible"]
        ember.kill(first_holder)
        ember.get(barrier.release.remote())
        first = ember.get(first, timeout=60)
        assert {first["visible"], held} == {"5", "7"}
        _gpus_free(7)  # only the second holder's device is taken: the probe's lease ended
        # The probe's worker is the only idle one of this job on the node: the next lease of
        # the same shape gets it, with device 3 now.
        second = ember.get(
            report.options(num_gpus=1, max_calls=0, resources=on_third).remote(), timeout=60
        )
        assert second["pid"] == first["pid"]
        assert (second["visible"], second["gpu_ids"]) == ("3", ["3"])
        _gpus_free(7)
        cpu = ember.get(report.options(resources=on_third).remote(), timeout=60)
        assert cpu["pid"] == first["pid"]
        assert (cpu["visible"], cpu["gpu_ids"]) == ("", [])
        ember.kill(second_holder)
    finally:
        third.stop()
    _wait_for(lambda: ember.cluster_resources().get("GPU") == 5)


@ember.remote(max_calls=2)
def whoami():
    return os.getpid()


def test_max_calls_replaces_the_worker(gpu_nodes):
    at_once = collections.Counter(ember.get([whoami.remote() for _ in range(8)]))
    one_by_one = collections.Counter(ember.get(whoami.remote()) for _ in range(6))
    for pids in (at_once, one_by_one):
        assert max(pids.values()) <= 2
    replaced = set(at_once) | set(one_by_one)
    _wait_for(lambda: all(_gone(pid) for pid in replaced))


def test_gpu_tasks_get_a_fresh_worker_unless_max_calls_says_otherwise(gpu_nodes):
    fresh = [ember.get(report.options(num_gpus=1, resources={"main": 1}).remote())["pid"] for _ in range(4)]
    assert len(set(fresh)) == 4
    _wait_for(lambda: all(_gone(pid) for pid in fresh))
    reused = ember.get([
        report.options(num_gpus=1, max_calls=0, resources={"main": 1}).remote() for _ in range(6)
    ])
    assert len({s["pid"] for s in reused}) < 6  # two devices: at most two workers at a time
    _gpus_free(5)


def test_accelerator_type_runs_where_that_model_is(gpu_nodes):
    assert ember.cluster_resources()["accelerator_type:A100"] == 1.0
    second_node = ember.get(report.options(resources={"second": 1}).remote())["node"]
    seen = ember.get(report.options(num_gpus=1, accelerator_type="A100").remote())
    assert seen["node"] == second_node and seen["visible"] in {"3", "5", "7"}
    actor = GpuActor.options(accelerator_type="A100").remote()
    assert ember.get(actor.seen.remote())["node"] == second_node
    ember.kill(actor)
    with pytest.raises(TaskUnschedulableError, match="accelerator_type:H100"):
        ember.get(report.options(accelerator_type="H100").remote(), timeout=60)
    with pytest.raises(ActorDiedError, match="accelerator_type:H100"):
        ember.get(GpuActor.options(accelerator_type="H100").remote().seen.remote(), timeout=60)


def test_work_in_a_placement_group_bundle_gets_devices(gpu_nodes):
    # A bundle holds GPU_group_* resources, not GPU: the node still hands out devices by the
    # GPU they stand for, disjoint from what work outside the group holds.
    pg = placement_group([{"CPU": 1, "GPU": 1, "main": 1}] * 2, strategy="STRICT_PACK")
    ember.get(pg.ready(), timeout=60)
    try:
        barrier = Barrier.options(resources=MAIN).remote(2)
        tasks = [
            meet.options(
                num_gpus=1, scheduling_strategy=PlacementGroupSchedulingStrategy(pg, index)
            ).remote(barrier)
            for index in range(2)
        ]
        seen = ember.get(tasks, timeout=90)
        assert sorted(s["visible"] for s in seen) == ["0", "1"]
        assert sorted(s["gpu_ids"] for s in seen) == [[0], [1]]
        actor = GpuActor.options(
            num_gpus=0.5, scheduling_strategy=PlacementGroupSchedulingStrategy(pg, 0)
        ).remote()
        assert ember.get(actor.seen.remote(), timeout=60)["visible"] in {"0", "1"}
        ember.kill(actor)
    finally:
        remove_placement_group(pg)
    _gpus_free(5)

    # One device in a group, the other outside it: held at once, never the same one.
    pg = placement_group([{"CPU": 1, "GPU": 1, "main": 1}])
    ember.get(pg.ready(), timeout=60)
    try:
        barrier = Barrier.options(resources=MAIN).remote(2)
        inside = meet.options(
            num_gpus=1, scheduling_strategy=PlacementGroupSchedulingStrategy(pg, 0)
        ).remote(barrier)
        outside = meet.options(num_gpus=1, resources={"main": 1}).remote(barrier)
        seen = ember.get([inside, outside], timeout=90)
        assert sorted(s["visible"] for s in seen) == ["0", "1"]
    finally:
        remove_placement_group(pg)
    _gpus_free(5)


def test_gpu_options_are_checked_where_they_are_written():
    with pytest.raises(ValueError, match="num_gpus must be a whole number when more than 1"):
        report.options(num_gpus=1.5)
    with pytest.raises(ValueError, match="max_calls must be an int >= 0"):
        report.options(max_calls=-1)
    with pytest.raises(ValueError, match="accelerator_type must be the name of a GPU model"):
        report.options(accelerator_type="")
    with pytest.raises(ValueError, match="invalid option 'max_calls'"):
        GpuActor.options(max_calls=1)
