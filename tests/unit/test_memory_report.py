"""``memory_report.build`` and ``text``: joining what processes and stores said into one entry
per object, grouping with totals that add up, and the options' errors; ``call_sites.find``
naming the user's line, not ember's."""

from __future__ import annotations

import pytest

from ember.runtime.core import call_sites
from ember.runtime.objects import memory_report
from ember.runtime.wire.protocol import ember_pb2 as pb

DRIVER, WORKER = "127.0.0.1:1000", "127.0.0.1:2000"
NODE_A, NODE_B = b"a" * 16, b"b" * 16
SHARED, SMALL, ORPHAN, ARG = b"\x01" * 20, b"\x02" * 20, b"\x03" * 20, b"\x04" * 20


def _listing() -> pb.ClusterObjects:
    driver = pb.ProcessObjects(pid=10, kind="DRIVER", address=DRIVER, node_id=NODE_A, job_id=b"\x01\x00\x00\x00")
    driver.objects.add(
        object_id=SHARED, size=500_000, reference_type="PINNED_IN_MEMORY", owner_address=DRIVER,
        reasons=["BORROWED"], borrowers=[WORKER], task_status="FINISHED",
        call_site="(put object) | job.py:<module>:3",
    )
    driver.objects.add(
        object_id=SMALL, size=30, reference_type="LOCAL_REFERENCE", owner_address=DRIVER,
        reasons=["LOCAL_REFERENCE"], in_memory_store=True, call_site="(put object) | job.py:<module>:4",
    )
    driver.objects.add(
        object_id=ARG, size=200_000, reference_type="USED_BY_PENDING_TASK", owner_address=DRIVER,
        reasons=["USED_BY_PENDING_TASK", "LINEAGE"], pending_tasks=["load " + "ab" * 16],
        call_site="(put object) | job.py:<module>:3",
    )
    driver.objects.add(object_id=b"\x09" * 16, reference_type="ACTOR_HANDLE", owner_address=DRIVER)
    worker = pb.ProcessObjects(pid=20, kind="WORKER", address=WORKER, node_id=NODE_B)
    worker.objects.add(
        object_id=SHARED, size=-1, reference_type="LOCAL_REFERENCE", owner_address=DRIVER,
        reasons=["LOCAL_REFERENCE"],
    )
    listing = pb.ClusterObjects(processes=[driver, worker], errors=["node x could not be asked"])
    store_a = listing.stores.add(node_id=NODE_A, node_address="127.0.0.1:3000", capacity=10**9, used=708_608)
    store_a.objects.add(object_id=SHARED, size=503_808, owner_address=DRIVER, primary=True)
    store_a.objects.add(object_id=ARG, size=204_800, owner_address=DRIVER, primary=True)
    store_b = listing.stores.add(node_id=NODE_B, node_address="127.0.0.1:4000", capacity=10**9, spilled=503_808)
    store_b.objects.add(object_id=SHARED, size=503_808, owner_address=DRIVER, spilled=True)
    store_b.objects.add(object_id=ORPHAN, size=4096, owner_address="127.0.0.1:9999", primary=True)
    return listing


def _by_id(report: memory_report.MemoryReport) -> dict[str, memory_report.MemoryObject]:
    return {o.object_id: o for g in report.groups for o in g.objects}


def test_one_entry_per_object_with_its_copies_owner_and_reasons() -> None:
    report = memory_report.build(_listing())
    objects = _by_id(report)
    assert set(objects) == {SHARED.hex(), SMALL.hex(), ORPHAN.hex(), ARG.hex()}
    shared = objects[SHARED.hex()]
    assert shared.size == 500_000, "the owner's size, not the store's rounded range"
    assert (shared.owner_pid, shared.owner_kind, shared.owner_job) == (10, "DRIVER", "01000000")
    assert shared.reasons == ["LOCAL_REFERENCE", "BORROWED"]
    assert sorted((c.node_id, c.primary, c.spilled) for c in shared.copies) == [
        (NODE_A.hex(), True, False), (NODE_B.hex(), False, True)
    ]
    assert "BORROWED by worker pid 20 (127.0.0.1:2000)" in shared.why()
    assert "LOCAL_REFERENCE (worker pid 20)" in shared.why()
    small = objects[SMALL.hex()]
    assert [(c.pid, c.describe()) for c in small.copies] == [(10, "memory of pid 10")]
    assert objects[ARG.hex()].why() == "USED_BY_PENDING_TASK load; LINEAGE (driver pid 10)"
    orphan = objects[ORPHAN.hex()]
    assert orphan.reasons == ["STORE_ONLY"] and orphan.owner_pid == 0 and orphan.size == 4096
    assert report.actor_handles == 1
    assert report.problems == ["node x could not be asked"]


@pytest.mark.parametrize("group_by", memory_report.GROUP_BY)
def test_group_totals_add_up(group_by: str) -> None:
    report = memory_report.build(_listing(), group_by=group_by)
    assert report.total_objects == 4
    assert report.total_size == 500_000 + 30 + 200_000 + 4096
    assert sum(g.total_size for g in report.groups) == report.total_size
    for group in report.groups:
        assert group.total_size == sum(o.size for o in group.objects)
    assert [g.total_size for g in report.groups] == sorted((g.total_size for g in report.groups), reverse=True)


def test_groups_are_named_for_what_they_group() -> None:
    by_site = {g.key: len(g.objects) for g in memory_report.build(_listing(), "call_site").groups}
    assert by_site == {"(put object) | job.py:<module>:3": 2, "(put object) | job.py:<module>:4": 1, "(unknown)": 1}
    by_owner = {g.key for g in memory_report.build(_listing(), "owner").groups}
    assert by_owner == {"driver pid 10 (127.0.0.1:1000)", "owner 127.0.0.1:9999 (not asked, or gone)"}
    by_node = {g.key for g in memory_report.build(_listing(), "node").groups}
    assert by_node == {f"node {NODE_A.hex()[:12]} (127.0.0.1:3000)", "node (unknown)"}


def test_the_text_in_units_and_limited_per_group() -> None:
    report = memory_report.build(_listing(), "owner", "size")
    shown = memory_report.text(report, "KB", num_entries=1)
    assert shown.splitlines()[0] == "======== Objects in the cluster: 4 objects, 704.13 KB ========"
    assert "--- driver pid 10 (127.0.0.1:1000): 3 objects, 700.03 KB ---" in shown
    assert "500.00 KB" in shown and "... and 2 more" in shown
    assert "warning: node x could not be asked" in shown
    assert memory_report.size_text(-1, "MB") == "?" and memory_report.size_text(1500, "b") == "1500 B"


def test_rays_names_for_the_options() -> None:
    assert [memory_report.option(n) for n in ("NODE_ADDRESS", "STACK_TRACE", "owner")] == ["node", "call_site", "owner"]
    assert [memory_report.option(n) for n in ("OBJECT_SIZE", "PID", "REFERENCE_TYPE")] == ["size", "pid", "reference_type"]


def test_wrong_options_are_named() -> None:
    with pytest.raises(memory_report.MemoryReportError, match="group_by must be one of node, owner, call_site, not 'pid'"):
        memory_report.build(_listing(), group_by="pid")
    with pytest.raises(memory_report.MemoryReportError, match="sort_by must be one of"):
        memory_report.build(_listing(), sort_by="age")
    with pytest.raises(memory_report.MemoryReportError, match="units must be one of B, KB, MB, GB, not 'TB'"):
        memory_report.text(memory_report.build(_listing()), "TB")


def _user_code() -> str:
    return call_sites.find(call_sites.PUT)


def test_a_call_site_names_the_first_frame_outside_ember() -> None:
    site = _user_code()
    assert site.startswith("(put object) | ") and site.endswith(":_user_code:" + str(_user_code.__code__.co_firstlineno + 1))
    assert __file__ in site


def test_recording_is_opt_in() -> None:
    assert not call_sites.enabled({})
    assert call_sites.enabled({"EMBER_RECORD_CALL_SITES": "1"})
    assert call_sites.enabled({"EMBER_RECORD_CALL_SITES": "true"})
    assert not call_sites.enabled({"EMBER_RECORD_CALL_SITES": "0"})
