"""The head's metric history: its rings stay the size they were made, its rates are the
differences of the nodes' counters, and a node's series go once it has been gone a window."""

from __future__ import annotations

import math

import pytest

from ember.runtime.head import metric_history
from ember.runtime.head.membership import NodeState
from ember.runtime.head.metric_history import MetricHistory, RingTable
from ember.runtime.objects import ids
from ember.runtime.wire import resources
from ember.runtime.wire.protocol import ember_pb2 as pb


def test_a_ring_table_keeps_its_size_and_the_latest_points_oldest_first() -> None:
    table = RingTable(5)
    for i in range(13):
        table.append(float(i), {"a": i * 10.0} if i % 2 == 0 else {"a": i * 10.0, "b": -i})
        # Made once: appending never grows an array, however long the head runs.
        assert len(table.times) == 5 and all(len(column) == 5 for column in table.series.values())
    assert table.count == 5
    view = table.since(0)
    assert view["times"] == [8.0, 9.0, 10.0, 11.0, 12.0]
    assert view["series"] == {"a": [80.0, 90.0, 100.0, 110.0, 120.0], "b": [None, -9.0, None, -11.0, None]}
    assert table.since(10.0)["times"] == [11.0, 12.0]
    assert table.since(12.0) == {"times": [], "series": {"a": [], "b": []}}


def test_a_series_added_later_holds_nothing_before_it_and_an_empty_one_is_dropped() -> None:
    table = RingTable(3)
    table.append(1.0, {"a": 1.0})
    table.append(2.0, {"a": 2.0, "late": 5.0})
    assert table.since(0)["series"]["late"] == [None, 5.0]  # type: ignore[index]
    table.drop_empty(["late"])
    assert "late" in table.series  # it still holds a value
    for stamp in (3.0, 4.0, 5.0):
        table.append(stamp, {"a": stamp})
    table.drop_empty(["late"])
    assert "late" not in table.series


def test_a_ring_table_needs_a_point() -> None:
    with pytest.raises(ValueError, match="at least one point, not 0"):
        RingTable(0)
    with pytest.raises(ValueError, match="positive number of seconds, not 0"):
        MetricHistory(_Head([]), interval=0)


class _Actors:
    def __init__(self) -> None:
        self.actors: dict[bytes, object] = {}

    def demand(self) -> list[pb.ResourceDemand]:
        return [pb.ResourceDemand(count=2)]


class _Head:
    def __init__(self, nodes: list[NodeState]) -> None:
        self.nodes = {node.node_id: node for node in nodes}
        self.actors = _Actors()

    def alive_nodes(self) -> list[NodeState]:
        return [node for node in self.nodes.values() if node.alive]


def _node(number: int, cpus: float = 4) -> NodeState:
    node_id = number.to_bytes(2, "big") * 8
    return NodeState(pb.NodeInfo(node_id=node_id, address=f"127.0.0.1:{7000 + number}",
                                 total=pb.ResourceSet(quantities={"CPU": cpus})))


def test_rates_are_the_nodes_counters_differences_and_totals_are_their_sums() -> None:
    a, b = _node(1), _node(2)
    head = _Head([a, b])
    history = MetricHistory(head, interval=5, window=60)  # type: ignore[arg-type]
    a.usage = pb.NodeUsage(tasks_finished=10, tasks_failed=1, store_used=100, tasks_running=2)
    b.usage = pb.NodeUsage(tasks_finished=5, store_used=50, store_spilled=7)
    a.pending = [pb.ResourceDemand(count=3)]
    a.available = resources.to_fixed({"CPU": 1})  # 3 of its 4 CPUs in use
    history.sample(stamp=100.0, now=0.0)
    a.usage = pb.NodeUsage(tasks_finished=30, tasks_failed=3, store_used=100)
    b.usage = pb.NodeUsage(tasks_finished=15, store_used=50)
    history.sample(stamp=105.0, now=5.0)
    series = history.view()["series"]
    assert series["tasks_finished"] == [15.0, 45.0]  # type: ignore[index]
    assert series["tasks_finished_per_second"] == [None, (20 + 10) / 5]  # type: ignore[index]
    assert series["tasks_failed_per_second"] == [None, 2 / 5]  # type: ignore[index]
    assert series["tasks_running"] == [2.0, 0.0]  # type: ignore[index]
    assert series["object_store_used"] == [150.0, 150.0]  # type: ignore[index]
    assert series["object_store_spilled"] == [7.0, 0.0]  # type: ignore[index]
    assert series["pending_demand"] == [5.0, 5.0]  # type: ignore[index]  # 3 tasks + 2 actors
    assert series["nodes_alive"] == [2.0, 2.0]  # type: ignore[index]
    assert series[f"node/{ids.short(a.node_id)}/cpu_used"] == [3.0, 3.0]  # type: ignore[index]
    assert series["cpu_used"] == [3.0, 3.0]  # type: ignore[index]  # b's 4 CPUs are free


def test_a_restarted_agents_counters_give_no_negative_rate() -> None:
    node = _node(1)
    history = MetricHistory(_Head([node]), interval=1, window=10)  # type: ignore[arg-type]
    node.usage = pb.NodeUsage(tasks_finished=50)
    history.sample(stamp=1.0, now=1.0)
    node.usage = pb.NodeUsage(tasks_finished=4)
    history.sample(stamp=2.0, now=2.0)
    assert history.view()["series"]["tasks_finished_per_second"] == [None, 0.0]  # type: ignore[index]


def test_a_gone_nodes_series_leave_after_a_window_and_the_charted_nodes_are_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(metric_history, "MAX_NODES_CHARTED", 2)
    nodes = [_node(i) for i in range(1, 4)]
    head = _Head(nodes)
    history = MetricHistory(head, interval=1, window=3)  # type: ignore[arg-type]
    history.sample(stamp=1.0, now=1.0)
    charted = {name.split("/")[1] for name in history.table.series if name.startswith("node/")}
    assert charted == {ids.short(nodes[0].node_id), ids.short(nodes[1].node_id)}
    assert history.view()["series"]["nodes_alive"] == [3.0]  # type: ignore[index]  # all counted
    nodes[0].alive = False
    for i in range(2, 5):
        history.sample(stamp=float(i), now=float(i))
    # Gone for a whole window: its series and its place go, and a waiting node takes it.
    assert not any(ids.short(nodes[0].node_id) in name for name in history.table.series)
    history.sample(stamp=5.0, now=5.0)
    charted = {name.split("/")[1] for name in history.table.series if name.startswith("node/")}
    assert charted == {ids.short(nodes[1].node_id), ids.short(nodes[2].node_id)}


def test_the_bound_the_docstring_states() -> None:
    series = len(metric_history.CLUSTER_SERIES) + len(metric_history.NODE_SERIES) * metric_history.MAX_NODES_CHARTED
    points = math.ceil(metric_history.WINDOW / 5)
    assert (len(metric_history.CLUSTER_SERIES), points) == (14, 720)
    assert series * points * 8 < 2.5e6  # "about 2.4 MB"
    assert "414 x 720 x 8 bytes" in (metric_history.__doc__ or "")


def test_hostile_task_counts_never_break_the_nodes_report(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Counts processes report are summed into the heartbeat's usage: sums beyond what its
    fields hold are held at their largest, never raised (a raise would end the node's session
    with the head, and the head would declare the node dead)."""
    from types import SimpleNamespace

    from ember.runtime.node.node_metrics import UINT64_MAX, NodeMetrics
    from ember.runtime.node.object_store import ObjectStore

    store = ObjectStore(str(tmp_path / "store"), 1 << 20, str(tmp_path / "spill"))
    metrics = NodeMetrics(store, SimpleNamespace(workers={}), SimpleNamespace())  # type: ignore[arg-type]
    for pid in (1, 2, 3):
        metrics.add(pb.MetricsReport(
            pid=pid, tasks={"running": 2**32 - 1}, tasks_finished=2**64 - 1, tasks_failed=2**64 - 1,
        ))
    usage = metrics.usage()
    assert usage.tasks_running == 3 * (2**32 - 1)
    assert usage.tasks_finished == usage.tasks_failed == UINT64_MAX
