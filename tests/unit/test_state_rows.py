"""The state API's rows and filters as pure logic: Ray's filter rules, detail trimming, the CLI's
filter syntax, and a placement group as the head describes it turned into a row."""

from __future__ import annotations

import pytest

from ember.list_command import parse_filter, render_list
from ember.runtime.wire.protocol import ember_pb2 as pb
from ember.util.state import filters
from ember.util.state.api import group_row
from ember.util.state.schema import ActorState, PlacementGroupState, TaskState


def _task(**fields):
    base = dict(
        task_id="ab", attempt_number=0, name="f", state="RUNNING", job_id="01000000",
        actor_id=None, type="NORMAL_TASK", func_or_class_name="f", parent_task_id=None,
        node_id="n1", worker_id="w1", worker_pid=42, error_type=None,
        required_resources={"CPU": 1.0}, language="PYTHON",
    )
    base.update(fields)
    return TaskState(**base)


def test_filters_follow_rays_rules():
    rows = [_task(), _task(task_id="cd", state="FINISHED", worker_pid=7), _task(task_id="ef", name="g")]
    check = lambda given: filters.apply(rows, filters.check(TaskState, given))  # noqa: E731
    assert [r.task_id for r in check([("state", "=", "running")])] == ["ab", "ef"]
    assert [r.task_id for r in check([("STATE", "!=", "Running")])] == ["cd"]
    assert [r.task_id for r in check([("worker_pid", "=", "7")])] == ["cd"]  # read as an int
    assert [r.task_id for r in check([("worker_pid", "=", 42), ("name", "=", "g")])] == ["ef"]
    assert check([("state", "=", "RUNNING"), ("state", "=", "FINISHED")]) == []
    with pytest.raises(ValueError, match="'bogus' is not a column of tasks.*filterable columns: task_id"):
        filters.check(TaskState, [("bogus", "=", 1)])
    with pytest.raises(ValueError, match="predicate '>'.*available predicates: =, !="):
        filters.check(TaskState, [("state", ">", "x")])
    with pytest.raises(ValueError, match="needs true or false"):
        filters.check(PlacementGroupState, [("is_detached", "=", "maybe")])
    assert filters.check(PlacementGroupState, [("is_detached", "=", "True")]) == [("is_detached", "=", True)]


def test_detail_columns_are_trimmed_without_detail():
    [row] = filters.trim([_task()], detail=False)
    assert row.required_resources is None and row.language is None and row.state == "RUNNING"
    assert "required_resources" not in TaskState.columns(detail=False)
    assert "required_resources" in TaskState.columns(detail=True)
    assert "death_cause" not in ActorState.filterable_columns()


def test_the_cli_filter_syntax():
    assert parse_filter("state=RUNNING") == ("state", "=", "RUNNING")
    assert parse_filter("state!=DEAD") == ("state", "!=", "DEAD")
    assert parse_filter(" name = f ") == ("name", "=", "f")
    for bad in ("state", "=x", "state=", "!=x"):
        with pytest.raises(ValueError, match="KEY=VALUE"):
            parse_filter(bad)


def test_a_listing_prints_as_rays_does():
    text = render_list(TaskState, [_task().asdict()], detail=False)
    lines = text.splitlines()
    assert lines[0].startswith("======== List: ") and "Total: 1" in lines
    header, row = lines[lines.index("Table:") + 2:]
    assert header.split()[:3] == ["TASK_ID", "ATTEMPT_NUMBER", "NAME"] and "REQUIRED_RESOURCES" not in header
    assert row.split()[:4] == ["0", "ab", "0", "f"]
    assert "No tasks in the cluster" in render_list(TaskState, [], detail=False)


def test_a_placement_group_row():
    group_id = bytes.fromhex("aa" * 14)
    info = pb.PlacementGroupInfo(
        spec=pb.PlacementGroupSpec(
            placement_group_id=group_id, name="trainers", strategy="STRICT_SPREAD",
            bundles=[pb.ResourceSet(quantities={"CPU": 1}), pb.ResourceSet(quantities={"GPU": 1})],
            detached=True, job_id=bytes.fromhex("01000000"),
        ),
        state=pb.PG_CREATED,
        bundle_nodes=[b"\x01" * 4, b"\x02" * 4],
        scheduling_state="FINISHED",
        scheduling_attempts=2,
        creation_seconds=0.25,
    )
    row = group_row(info)
    assert (row.placement_group_id, row.name, row.state, row.creator_job_id) == (
        group_id.hex(), "trainers", "CREATED", "01000000",
    )
    assert row.bundles == [
        {"bundle_id": f"{group_id.hex()}-0", "node_id": "01010101", "unit_resources": {"CPU": 1.0}},
        {"bundle_id": f"{group_id.hex()}-1", "node_id": "02020202", "unit_resources": {"GPU": 1.0}},
    ]
    assert row.is_detached is True
    assert row.stats == {
        "scheduling_state": "FINISHED", "scheduling_attempt": 2, "end_to_end_creation_latency_ms": 250.0,
    }
    pending = group_row(pb.PlacementGroupInfo(spec=pb.PlacementGroupSpec(bundles=[pb.ResourceSet()])))
    assert pending.state == "PENDING" and pending.bundles[0]["node_id"] is None
