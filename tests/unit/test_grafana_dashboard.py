"""The Grafana dashboard asks only for metrics ember exports: every metric name in every panel's
PromQL is one the head's or a node agent's collectors make (read from those collectors, not a
list kept here), and it shows what the dashboard's own charts show."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from types import SimpleNamespace

from ember.runtime.head.head_metrics import HeadMetrics
from ember.runtime.head.membership import NodeState
from ember.runtime.node.node_metrics import NodeMetrics
from ember.runtime.node.object_store import ObjectStore
from ember.runtime.wire.protocol import ember_pb2 as pb
from tests.conftest import REPO

DASHBOARD = REPO / "manifests" / "grafana" / "ember-dashboard.json"
# PromQL's own words, which are not metrics.
PROMQL_WORDS = {
    "sum", "min", "max", "avg", "count", "rate", "irate", "increase", "histogram_quantile", "by",
    "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "and", "or",
    "unless", "topk", "bottomk", "quantile", "delta", "deriv", "abs", "clamp_min", "clamp_max",
}
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def _exported(tmp_path: Path) -> set[str]:
    """The names a scrape of the head and of a node agent shows, from their collectors."""
    node = NodeState(pb.NodeInfo(node_id=b"n" * 16, address="127.0.0.1:1",
                                 total=pb.ResourceSet(quantities={"CPU": 1, "memory": 1 << 30})))
    node.pending = [pb.ResourceDemand(shape=pb.ResourceSet(quantities={"CPU": 1}), count=1)]
    actors = SimpleNamespace(actors={}, demand=lambda: [])
    head = SimpleNamespace(
        nodes={node.node_id: node}, alive_nodes=lambda: [node], actors=actors,
        placement_groups=SimpleNamespace(groups={}), jobs={},
    )
    store = ObjectStore(str(tmp_path / "store"), 1 << 20, str(tmp_path / "spill"))
    leases = SimpleNamespace(held=lambda: 0, envs=SimpleNamespace(setups={("wheel", "installed"): 1}))
    agent = NodeMetrics(store, SimpleNamespace(workers={}), leases)  # type: ignore[arg-type]

    async def families() -> list:  # type: ignore[type-arg]
        return [*await HeadMetrics(head).families(), *await agent.families()]  # type: ignore[arg-type]

    names = set()
    for family in asyncio.run(families()):
        names.update(family.name + suffix for suffix in SUFFIXES[family.type])
    return names


def _metrics_in(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: its identifiers outside strings, label
    matchers, ranges and grouping clauses (``by (le)``) that are not functions or keywords."""
    bare = re.sub(r'"[^"]*"|\{[^}]*\}|\[[^\]]*\]', " ", expr)
    bare = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", bare)
    names = set()
    for word in re.finditer(r"(?<![0-9.])[A-Za-z_:][A-Za-z0-9_:]*", bare):
        called = bare[word.end():].lstrip().startswith("(")
        if not called and word.group() not in PROMQL_WORDS:
            names.add(word.group())
    return names


def test_every_panel_asks_only_for_metrics_ember_exports(tmp_path: Path) -> None:
    exported = _exported(tmp_path)
    assert {"ember_tasks_finished_total", "ember_nodes", "ember_task_run_seconds_bucket"} <= exported
    dashboard = json.loads(DASHBOARD.read_text())
    asked: set[str] = set()
    for panel in dashboard["panels"]:
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        for target in panel["targets"]:
            names = _metrics_in(target["expr"])
            assert names, f"panel {panel['title']!r}: no metric in {target['expr']!r}"
            unknown = names - exported
            assert not unknown, f"panel {panel['title']!r} asks for {sorted(unknown)}, which ember does not export"
            asked |= names
    assert len(asked) >= 12


def test_the_dashboard_shows_what_the_heads_charts_show() -> None:
    """The same figures as the overview and nodes pages' charts, for Prometheus users."""
    exprs = " ".join(
        target["expr"] for panel in json.loads(DASHBOARD.read_text())["panels"] for target in panel["targets"]
    )
    for wanted in (
        'ember_tasks{state="running"}', "ember_tasks_finished_total", "ember_tasks_failed_total",
        'ember_node_resources{resource="CPU"}', 'ember_node_resources{resource="memory"}',
        "ember_object_store_used_bytes", "ember_object_store_on_disk_bytes", "ember_pending_demand",
        'ember_nodes{state="alive"}', "sum by (state) (ember_actors)",
    ):
        assert wanted in exprs, wanted


def test_the_metric_name_reader_reads_names_not_words() -> None:
    assert _metrics_in('histogram_quantile(0.95, sum by (le, method) (rate(x_bucket{a="b"}[5m])))') == {"x_bucket"}
    assert _metrics_in('a{resource="CPU"} - b{resource="CPU"}') == {"a", "b"}
    assert _metrics_in("sum(rate(ember_tasks_failed_total[1m]))") == {"ember_tasks_failed_total"}
