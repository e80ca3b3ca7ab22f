"""``ember memory`` on a real two-node cluster: every live object is accounted for, with where its
copies are and why it is still alive; groups' totals add up; call sites when a driver records
them and "disabled" when it does not; the command's table and JSON.

Releases, borrows and reports travel asynchronously, so tests wait for what they look for (up
to a deadline) and never assert how long it took.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

import ember as ray
from ember.runtime import launcher
from ember.runtime.core import context
from ember.runtime.objects.memory_report import GROUP_BY, MemoryObject, MemoryReport
from ember.runtime.wire import auth
from ember.util.state import memory_report, memory_summary
from tests.conftest import REPO, eventually, wait_until_gone

BIG = 300_000  # above the inline threshold: stored in a node's object store


@pytest.fixture(scope="module")
def two_nodes():
    ctx = ray.init(num_cpus=2)
    second = launcher.start_agent(
        ctx.session_dir, context.require_core().head_address, num_cpus=2, resources={"second": 4}
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len([n for n in ray.nodes() if n["Alive"]]) < 2:
        time.sleep(0.05)
    try:
        yield ctx, second
    finally:
        ray.shutdown()
        second.stop()
    assert wait_until_gone(ctx.session_dir) == []


@ray.remote
class Keeper:
    def keep(self, refs):
        self.refs = refs
        return os.getpid()

    def drop(self):
        self.refs = None


@ray.remote
class Gate:
    def __init__(self):
        import asyncio

        self.event = asyncio.Event()

    async def wait(self):
        await self.event.wait()
        return "open"

    async def open(self):
        self.event.set()


@ray.remote
def memory_after(gate_value, payload):
    return len(payload)


@ray.remote(resources={"second": 1})
def read_on_second(payload):
    return len(payload)



def _find(report: MemoryReport, object_id: str) -> MemoryObject | None:
    return next((o for g in report.groups for o in g.objects if o.object_id == object_id), None)


def _object_when(object_id: str, ok, group_by: str = "node") -> MemoryObject | None:
    report = eventually(
        lambda: memory_report(group_by=group_by),
        lambda r: (found := _find(r, object_id)) is not None and ok(found),
    )
    return _find(report, object_id)


def test_an_object_kept_by_a_borrower_after_the_driver_dropped_its_ref(two_nodes):
    payload = ray.put(b"b" * BIG)
    object_id = payload.hex()
    keeper = Keeper.remote()
    keeper_pid = ray.get(keeper.keep.remote([payload]))  # nested: the actor keeps the ref itself
    del payload

    def dropped_and_borrowed(found: MemoryObject) -> bool:
        mine = [h for h in found.holders if h.pid == os.getpid()]
        return bool(mine) and mine[0].reference_type == "PINNED_IN_MEMORY"

    found = _object_when(object_id, dropped_and_borrowed)
    assert found is not None, "an object a borrower keeps is still live memory"
    assert found.owner_pid == os.getpid() and found.owner_kind == "DRIVER"
    assert found.size >= BIG
    assert "BORROWED" in found.reasons
    [owner_row] = [h for h in found.holders if h.pid == os.getpid()]
    assert owner_row.reasons == ["BORROWED"]
    assert any(f"pid {keeper_pid}" in who for who in owner_row.borrowers), owner_row.borrowers
    [keeper_row] = [h for h in found.holders if h.pid == keeper_pid]
    assert keeper_row.reference_type == "LOCAL_REFERENCE" and keeper_row.kind == "WORKER"
    assert [c.primary for c in found.copies if not c.pid] == [True]
    assert f"BORROWED by worker pid {keeper_pid}" in found.why()
    # Once the borrower lets go, the object is freed and leaves the report.
    ray.get(keeper.drop.remote())
    gone = eventually(lambda: memory_report(), lambda r: _find(r, object_id) is None)
    assert _find(gone, object_id) is None


def test_an_argument_of_a_pending_task_and_a_local_ref(two_nodes):
    gate = Gate.remote()
    argument = ray.put(b"a" * BIG)
    argument_id = argument.hex()
    held = ray.put(b"h" * (BIG + 1000))
    waiting = memory_after.remote(gate.wait.remote(), argument)  # cannot run until the gate opens
    del argument
    found = _object_when(argument_id, lambda o: o.reasons == ["USED_BY_PENDING_TASK"])
    assert found is not None and found.reasons == ["USED_BY_PENDING_TASK"], found
    [row] = [h for h in found.holders if h.pid == os.getpid()]
    assert row.reference_type == "USED_BY_PENDING_TASK"
    assert [name.split(" ")[0] for name in row.pending_tasks] == ["memory_after"]
    assert "USED_BY_PENDING_TASK memory_after" in found.why()
    local = _find(memory_report(), held.hex())
    assert local is not None and local.reasons == ["LOCAL_REFERENCE"] and local.size >= BIG + 1000
    assert [(h.pid, h.reference_type) for h in local.holders] == [(os.getpid(), "LOCAL_REFERENCE")]
    ray.get(gate.open.remote())
    assert ray.get(waiting) == BIG


@ray.remote
def memory_grow(payload):
    return payload + b"!"  # a result in the object store: its task is kept to be run again


def test_an_argument_kept_for_lineage(two_nodes):
    argument = ray.put(b"l" * BIG)
    argument_id = argument.hex()
    result = memory_grow.remote(argument)
    assert len(ray.get(result)) == BIG + 1
    del argument
    found = _object_when(argument_id, lambda o: o.reasons == ["LINEAGE"])
    assert found is not None and found.reasons == ["LINEAGE"], found
    [row] = [h for h in found.holders if h.pid == os.getpid()]
    assert row.reference_type == "UNKNOWN_STATUS"  # Ray's name for a ref held for lineage only
    del result  # nothing can ask for the result again: its lineage, and the argument, go
    gone = eventually(lambda: memory_report(), lambda r: _find(r, argument_id) is None)
    assert _find(gone, argument_id) is None


def test_copies_on_two_nodes_after_a_transfer(two_nodes):
    payload = ray.put(b"c" * BIG)
    assert ray.get(read_on_second.remote(payload)) == BIG  # the second node pulls a copy
    nodes = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
    found = _object_when(payload.hex(), lambda o: len([c for c in o.copies if not c.pid]) == 2)
    assert found is not None
    stores = sorted((c.node_id, c.primary, c.spilled) for c in found.copies if not c.pid)
    assert {node for node, _, _ in stores} == nodes
    here = ray.get_runtime_context().get_node_id()
    assert (here, True, False) in stores, "the first copy, where the driver put it"
    assert [primary for node, primary, _ in stores if node != here] == [False], "the pulled copy"


def test_group_totals_add_up_to_the_objects_sizes(two_nodes):
    refs = [ray.put(b"t" * (BIG + i * 4096)) for i in range(3)] + [ray.put(i) for i in range(3)]
    for group_by in GROUP_BY:
        report = memory_report(group_by=group_by)
        listed = [o for g in report.groups for o in g.objects]
        assert {r.hex() for r in refs} <= {o.object_id for o in listed}
        assert len({o.object_id for o in listed}) == len(listed) == report.total_objects
        for group in report.groups:
            assert group.total_size == sum(max(o.size, 0) for o in group.objects)
        assert sum(g.total_size for g in report.groups) == report.total_size
        assert report.total_size == sum(max(o.size, 0) for o in listed)
        sizes = {o.object_id: o.size for o in listed}
        assert all(sizes[r.hex()] >= BIG + i * 4096 for i, r in enumerate(refs[:3]))
    by_size = memory_report(group_by="owner", sort_by="size")
    for group in by_size.groups:
        assert [o.size for o in group.objects] == sorted((o.size for o in group.objects), reverse=True)
    with pytest.raises(ValueError, match="group_by must be one of"):
        memory_report(group_by="colour")
    with pytest.raises(ValueError, match="units must be one of"):
        memory_summary(units="TB")
    del refs


RECORDING_DRIVER = """
import sys
import ember
ember.init(sys.argv[1])

@ember.remote
def made_by_a_task():
    return b"r" * 300_000

kept = ember.put(b"p" * 300_000)            # line 10
result = made_by_a_task.remote()            # line 11
ember.get(result)
print(kept.hex(), result.hex(), flush=True)
sys.stdin.readline()
"""


def _driver(record: bool) -> subprocess.Popen[str]:
    env = {**os.environ, "EMBER_TOKEN": auth.token()}
    env.pop("EMBER_RECORD_CALL_SITES", None)
    if record:
        env["EMBER_RECORD_CALL_SITES"] = "1"
    return subprocess.Popen(
        [sys.executable, "-c", RECORDING_DRIVER, f"ember://{context.require_core().head_address}"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=str(REPO), env=env,
    )


def test_call_sites_when_recorded_and_disabled_when_not(two_nodes):
    recording, silent = _driver(True), _driver(False)
    try:
        put_id, task_id = recording.stdout.readline().split()  # type: ignore[union-attr]
        quiet_put, quiet_task = silent.stdout.readline().split()  # type: ignore[union-attr]
        report = memory_report(group_by="call_site")
        put, task = _find(report, put_id), _find(report, task_id)
        assert put is not None and task is not None
        assert put.call_site == "(put object) | <string>:<module>:10", put.call_site
        assert task.call_site == "(task call) | <string>:<module>:11", task.call_site
        keys = {g.key for g in report.groups}
        assert put.call_site in keys and task.call_site in keys
        for quiet in (quiet_put, quiet_task):
            entry = _find(report, quiet)
            assert entry is not None and entry.call_site == "disabled"
        mine = ray.put(b"m" * BIG)  # this driver records nothing either
        assert _find(memory_report(), mine.hex()).call_site == "disabled"  # type: ignore[union-attr]
    finally:
        for driver in (recording, silent):
            driver.communicate("\n", timeout=60)
    assert recording.returncode == 0 and silent.returncode == 0


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "EMBER_TOKEN": auth.token()}
    return subprocess.run(
        [sys.executable, "-m", "ember.cli", "memory", *args, "--address", context.require_core().head_address],
        capture_output=True, text=True, timeout=120, env=env,
    )


def test_the_command(two_nodes):
    payload = ray.put(b"x" * 2_000_000)
    keeper = Keeper.remote()
    keeper_pid = ray.get(keeper.keep.remote([payload]))
    shown = _cli("--group-by", "owner", "--units", "MB")
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert out.startswith("======== Objects in the cluster: ")
    assert f"--- driver pid {os.getpid()} (" in out
    [line] = [line for line in out.splitlines() if payload.hex() in line]
    assert "2.00 MB" in line and f"driver pid {os.getpid()}" in line
    assert f"LOCAL_REFERENCE (driver pid {os.getpid()}, worker pid {keeper_pid})" in line
    assert f"BORROWED by worker pid {keeper_pid}" in line
    assert "EMBER_RECORD_CALL_SITES=1" in out  # this driver records no call sites
    as_json = _cli("--format", "json", "--sort-by", "object_id")
    assert as_json.returncode == 0, as_json.stderr
    report = json.loads(as_json.stdout)
    assert report["group_by"] == "node" and report["sort_by"] == "object_id"
    ids = [o["object_id"] for g in report["groups"] for o in g["objects"]]
    assert payload.hex() in ids
    for group in report["groups"]:
        listed = [o["object_id"] for o in group["objects"]]
        assert listed == sorted(listed)
    rays = _cli("--group-by", "STACK_TRACE", "--sort-by", "OBJECT_SIZE", "-n", "1")
    assert rays.returncode == 0 and "Grouped by call_site, sorted by size." in rays.stdout, rays.stderr
    wrong = _cli("--group-by", "colour")
    assert wrong.returncode == 2 and "invalid choice: 'colour'" in wrong.stderr
    ray.get(keeper.drop.remote())
