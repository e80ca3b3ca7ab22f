"""What ``ember status`` says about a node whose object store is broken."""

from __future__ import annotations

from ember import status_report
from ember.runtime.wire.protocol import ember_pb2 as pb


def _node(node_id: bytes, address: str, store_broken: str = "") -> pb.NodeView:
    return pb.NodeView(
        info=pb.NodeInfo(node_id=node_id, address=address, total=pb.ResourceSet(quantities={"CPU": 1})),
        available=pb.ResourceSet(quantities={"CPU": 1}),
        alive=True,
        store_broken=store_broken,
    )


def test_a_node_with_a_broken_store_is_listed_as_unhealthy_with_the_reason() -> None:
    view = pb.ClusterView(nodes=[
        _node(b"\x01" * 16, "10.0.0.1:5"),
        _node(b"\x02" * 16, "10.0.0.2:5", "the arena file /dev/shm/x/arena was deleted"),
    ])
    text = status_report.render(view)
    healthy, _, rest = text.partition("Unhealthy:\n")
    unhealthy, _, _ = rest.partition("Dead:")
    assert "10.0.0.1:5" in healthy and "10.0.0.2:5" not in healthy
    assert unhealthy.strip() == (
        "node_020202020202 10.0.0.2:5  object store broken (it takes no new objects; restart the "
        "node): the arena file /dev/shm/x/arena was deleted"
    )
    assert " 0/2 CPU" in text  # its resources still count: the node is alive


def test_no_unhealthy_section_while_every_store_is_sound() -> None:
    text = status_report.render(pb.ClusterView(nodes=[_node(b"\x01" * 16, "10.0.0.1:5")]))
    assert "Unhealthy:" not in text


def test_placement_groups_show_as_reserved_capacity_and_waiting_groups() -> None:
    """As ``ray status``: a group's CPUs count as used, with what the groups use of them; the
    group's own resource names are not listed; a waiting group is pending demand."""
    group = "ab" * 16
    node = _node(b"\x01" * 16, "10.0.0.1:5")
    node.info.total.quantities.update({"CPU": 4, f"CPU_group_{group}": 2, f"CPU_group_0_{group}": 2,
                                       f"bundle_group_{group}": 1000, f"bundle_group_0_{group}": 1000})
    node.available.quantities.update({"CPU": 2, f"CPU_group_{group}": 1.5, f"CPU_group_0_{group}": 1.5})
    waiting = pb.PlacementGroupDemand(
        placement_group_id=bytes.fromhex("cd" * 16), strategy="STRICT_SPREAD",
        bundles=[pb.ResourceSet(quantities={"CPU": 1})] * 2,
    )
    text = status_report.render(pb.ClusterView(nodes=[node], placement_group_demand=[waiting]))
    assert " 2/4 CPU (0.5 used of 2 reserved in placement groups)" in text
    assert "_group_" not in text
    assert " placement group cdcdcdcdcdcd (STRICT_SPREAD): bundles {CPU: 1}, {CPU: 1} waiting" in text
