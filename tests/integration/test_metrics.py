"""Prometheus scrapes the head and a node agent while a workload runs: the values move with it.

The endpoints are parsed with prometheus-client's own parser, so what is checked is what
Prometheus would read.
"""

from __future__ import annotations

import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

import ember
from ember import connection

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(address: str) -> Samples:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def endpoints() -> tuple[str, str]:
    view = connection._view()
    node = next(n for n in view.nodes if n.alive)
    port = node.info.metrics_port
    return view.metrics_address, f"{node.info.host}:{port}" if port else ""


def wait_for(check, timeout: float = 10.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.2)


@ember.remote
def nap(seconds: float) -> float:
    from ember.util.metrics import Counter, Gauge, Histogram

    Counter("naps", description="naps taken", tag_keys=("kind",)).inc(1.0, tags={"kind": "short"})
    Gauge("last_nap_seconds", description="the last nap").set(seconds)
    Histogram("nap_seconds", description="naps", boundaries=[0.01, 0.1, 1.0]).observe(seconds)
    time.sleep(seconds)
    return seconds


@ember.remote
def fails() -> None:
    raise ValueError("on purpose")


@ember.remote
class Keeper:
    def ping(self) -> str:
        return "pong"


def test_endpoints_follow_a_workload(cluster) -> None:
    head, agent = wait_for(lambda: all(endpoints()) and endpoints())
    assert head and agent, "the head or the agent serves no metrics"
    before = scrape(agent)
    builds = [dict(labels) for (name, labels), v in before.items() if name == "ember_build_info" and v == 1.0]
    assert [(b["component"], b["version"]) for b in builds] == [("node_agent", ember.__version__)]

    # 32 naps on 4 CPUs, 3.2 s: longer than the 2 s between reports, and most must wait.
    refs = [nap.remote(0.4) for _ in range(32)]
    during = wait_for(lambda: (s := scrape(agent)) and (
        value(s, "ember_tasks", state="running") + value(s, "ember_tasks", state="pending_resources") > 0
    ) and s)
    assert during, "no running or pending task was ever reported"
    assert ember.get(refs) == [0.4] * 32
    with pytest.raises(ValueError):
        ember.get(fails.remote())
    keeper = Keeper.remote()
    assert ember.get(keeper.ping.remote()) == "pong"

    before_finished = value(before, "ember_tasks_finished_total")
    before_failed = value(before, "ember_tasks_failed_total")
    after = wait_for(lambda: (s := scrape(agent)) and (
        value(s, "ember_tasks_finished_total") >= before_finished + 32
        and value(s, "ember_tasks_failed_total") >= before_failed + 1
        and value(s, "naps_total", kind="short") >= 32  # workers report on their own clock
    ) and s)
    last = scrape(agent)
    assert after, (
        f"expected 32 more finished tasks, 1 more failed and 32 naps: "
        f"{[(k, v) for k, v in last.items() if k[0] in ('ember_tasks_finished_total', 'ember_tasks_failed_total', 'naps_total')]}"
    )
    assert value(after, "ember_task_run_seconds_count") >= value(before, "ember_task_run_seconds_count") + 32
    # 0.4 s naps land in the (0.1, 0.5] run-time bucket.
    assert value(after, "ember_task_run_seconds_bucket", le="0.5") - value(after, "ember_task_run_seconds_bucket", le="0.1") >= 32
    assert value(after, "ember_task_scheduling_latency_seconds_count") >= 32
    assert value(after, "ember_rpc_server_latency_seconds_count", method="ReportMetrics") >= 1
    assert value(after, "ember_object_store_capacity_bytes") > 0
    assert value(after, "ember_worker_processes", state="leased") + value(after, "ember_worker_processes", state="idle") >= 1
    # The users' own metrics, summed over the node's workers.
    assert value(after, "naps_total", kind="short") >= 32
    assert value(after, "last_nap_seconds") == 0.4
    assert value(after, "nap_seconds_count") >= 32
    assert value(after, "nap_seconds_bucket", le="0.1") == 0.0

    head_after = wait_for(lambda: (s := scrape(head)) and value(s, "ember_actors", state="alive") >= 1 and s)
    assert head_after, "the head never counted the actor"
    assert value(head_after, "ember_nodes", state="alive") == 1
    assert value(head_after, "ember_jobs", state="running") >= 1
    cpu = [v for (name, labels), v in head_after.items() if name == "ember_node_resources" and ("resource", "CPU") in labels]
    assert cpu == [4.0]



@ember.remote(resources={"custom": 2})
def hog(seconds: float) -> None:
    time.sleep(seconds)


def test_pending_demand_by_shape(cluster) -> None:
    head, _ = wait_for(lambda: all(endpoints()) and endpoints())
    refs = [hog.remote(1.5) for _ in range(3)]  # one at a time fits: two wait
    shape = "{CPU: 1, custom: 2}"
    waiting = wait_for(lambda: value(scrape(head), "ember_pending_demand", shape=shape, kind="task") >= 1)
    assert waiting, "the waiting shape never showed as demand"
    ember.get(refs)
    assert wait_for(lambda: value(scrape(head), "ember_pending_demand", shape=shape, kind="task") == 0)


def test_prometheus_file_sd_targets_list_the_endpoints(cluster) -> None:
    import json
    from pathlib import Path

    head, agent = wait_for(lambda: all(endpoints()) and endpoints())
    path = Path(cluster.session_dir) / "metrics_targets.json"
    targets = wait_for(lambda: path.exists() and json.loads(path.read_text()))
    found = {(t["labels"]["component"], t["targets"][0]) for t in targets}
    assert found == {("head", head), ("node_agent", agent)}
    for _, address in found:
        assert scrape(address)


def test_grafana_dashboard_asks_only_for_metrics_that_exist(cluster) -> None:
    import json
    import re

    from tests.conftest import REPO

    dashboard = json.loads((REPO / "manifests" / "grafana" / "ember-dashboard.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    wanted = {name for expr in exprs for name in re.findall(r"\bember_[a-z_]+", expr)}
    assert len(wanted) >= 12
    served: set[str] = set()
    for address in wait_for(lambda: all(endpoints()) and endpoints()):
        with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as response:
            for family in text_string_to_metric_families(response.read().decode()):
                served.add(family.name)
                served.update(sample.name for sample in family.samples)
                if family.type == "counter":
                    served.add(family.name + "_total")
                if family.type == "histogram":
                    served.update(family.name + s for s in ("_bucket", "_sum", "_count"))
    assert wanted <= served, f"the dashboard asks for metrics nobody serves: {sorted(wanted - served)}"
