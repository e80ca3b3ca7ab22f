"""The pure parts of draining: owners pointing values at moved copies, naming the node to drain,
and what ``ember drain`` and ``ember status`` say."""

from __future__ import annotations

import pytest

from ember import drain_command, status_report
from ember.runtime.core import object_moves
from ember.runtime.core.memory_store import MemoryStore, StoredValue
from ember.runtime.core.task_record import FunctionDescriptor, TaskOptions, TaskRecord
from ember.runtime.wire.protocol import ember_pb2 as pb

OLD = pb.ObjectLocation(node_id=b"a" * 16, node_address="10.0.0.1:1", size=4096, offset=0)
NEW = pb.ObjectLocation(node_id=b"b" * 16, node_address="10.0.0.2:1", size=4096, offset=8192)


def _task(arguments: list[pb.ObjectValue | None]) -> TaskRecord:
    options = TaskOptions(name="f", shape={}, key=())
    task = TaskRecord(b"t" * 16, FunctionDescriptor("f", b"", b""), options, b"", [], [], [])
    task.arg_values = arguments
    return task


def test_relocate_points_values_and_waiting_arguments_at_the_new_copy() -> None:
    store = MemoryStore()
    held = StoredValue(b"", location=pb.ObjectLocation(**_fields(OLD)))
    store.put(b"x", held)
    store.put(b"inline", StoredValue(b"data"))
    before = held.location
    argument = pb.ObjectValue(id=b"x", location=OLD)
    task = _task([argument, None, pb.ObjectValue(id=b"other", data=b"1")])

    unknown = object_moves.relocate(store, [task], {b"x": NEW, b"gone": NEW, b"inline": NEW})

    assert held.location == NEW
    assert before == OLD  # replaced, not changed under a reader that holds the old one
    assert argument.location == NEW
    assert sorted(unknown) == [b"gone", b"inline"]


def test_borrowers_hear_only_of_what_they_borrow() -> None:
    requests = object_moves.by_borrower(
        {b"x": {"w1", "w2"}, b"y": {"w2"}, b"z": {"w3"}}, {b"x": NEW, b"y": OLD}
    )
    assert sorted(requests) == ["w1", "w2"]
    assert all(r.from_owner for r in requests.values())
    assert sorted(m.id for m in requests["w2"].objects) == [b"x", b"y"]
    assert [m.id for m in requests["w1"].objects] == [b"x"]


def _view(*nodes: tuple[bytes, str, bool]) -> pb.ClusterView:
    return pb.ClusterView(nodes=[
        pb.NodeView(info=pb.NodeInfo(node_id=node_id, address=address), alive=alive)
        for node_id, address, alive in nodes
    ])


def test_a_node_is_named_by_address_or_by_a_unique_id_prefix() -> None:
    view = _view(
        (bytes.fromhex("ab12" + "00" * 14), "10.0.0.1:5", False),
        (bytes.fromhex("ab34" + "00" * 14), "10.0.0.1:5", True),
        (bytes.fromhex("cd56" + "00" * 14), "10.0.0.2:5", True),
    )
    assert drain_command.resolve(view, "10.0.0.1:5").alive  # the live one of that address
    assert drain_command.resolve(view, "cd").info.address == "10.0.0.2:5"
    assert drain_command.resolve(view, "node_AB34").info.node_id.hex().startswith("ab34")
    with pytest.raises(drain_command.DrainError, match="names 2 nodes"):
        drain_command.resolve(view, "ab")
    with pytest.raises(drain_command.DrainError, match="no node 'ee'.*10.0.0.2:5"):
        drain_command.resolve(view, "ee")


def test_the_summary_says_what_moved() -> None:
    text = drain_command.summary("node ab12 (10.0.0.1:5)", pb.DrainProgress(
        seconds=2.5, leases_finished=2, leases_stopped=1, actors_restarted=1, actors_died=1,
        objects_copied=3, bytes_copied=3 << 20, requests_redirected=4,
    ))
    assert "node ab12 (10.0.0.1:5) is drained (2.5s)" in text
    assert "2 worker lease(s) finished their tasks, 1 stopped at the deadline" in text
    assert "1 restarted on other nodes, 1 died (max_restarts=0)" in text
    assert "3 copied to other nodes (3.0 MiB)" in text


def test_ember_status_marks_draining_nodes() -> None:
    view = _view((b"\x01" * 16, "10.0.0.1:5", True), (b"\x02" * 16, "10.0.0.2:5", True))
    view.nodes[0].drain_state = pb.DRAINING
    view.nodes[0].drain.waiting_for = "2 worker lease(s) running tasks"
    view.nodes[1].drain_state = pb.DRAINED
    text = status_report.render(view)
    assert "(draining: waiting for 2 worker lease(s) running tasks)" in text
    assert "(drained: may be stopped)" in text


def _fields(location: pb.ObjectLocation) -> dict[str, object]:
    return {f.name: v for f, v in location.ListFields()}
