"""The dashboard's charts on a real local cluster: the head's history moves with a workload and
agrees with what the metrics endpoints export; the overview and nodes pages draw it in headless
Chromium; and what a new user saw wrong (object store 0 B, no failures, no word on a wrong
token) is right."""

from __future__ import annotations

import os
import signal
import time
import urllib.parse
from collections.abc import Iterator
from functools import partial

import pytest

import ember
from ember.runtime.wire import auth
from tests.conftest import eventually, wait_until_gone
from tests.integration.test_dashboard import OUTPUT, _browse, _chromium, get
from tests.integration.test_metrics import endpoints, scrape, value


@pytest.fixture(scope="module")
def cluster() -> Iterator[object]:
    """A local cluster whose head samples its history every second, not every five (the test
    waits for samples, it does not time them)."""
    os.environ["EMBER_HISTORY_INTERVAL_S"] = "1"
    try:
        ctx = ember.init(num_cpus=4)
    finally:
        del os.environ["EMBER_HISTORY_INTERVAL_S"]
    try:
        yield ctx
    finally:
        ember.shutdown()
    assert wait_until_gone(ctx.session_dir) == []


@ember.remote
def charted(i: int) -> int:
    return i


@ember.remote
def charted_failure(i: int) -> None:
    raise ValueError(f"charted failure {i}")


@ember.remote
def charted_nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@ember.remote
class ChartedActor:
    def pid(self) -> int:
        return os.getpid()


# cluster-wide answers here may take a while on a busy machine
_eventually = partial(eventually, timeout=60.0)


def _history(base: str) -> dict:  # type: ignore[type-arg]
    status, answer = get(base + "/api/history")
    assert status == 200, answer
    return answer  # type: ignore[return-value]


def _last(history: dict, name: str) -> float | None:  # type: ignore[type-arg]
    values = [v for v in history["series"].get(name, []) if v is not None]
    return values[-1] if values else None


def test_the_history_moves_with_a_workload_and_agrees_with_the_metrics_endpoints(cluster) -> None:
    base = f"http://{cluster.dashboard_url}"
    naps = [charted_nap.remote(30.0) for _ in range(2)]
    try:
        # Two tasks hold two CPUs until cancelled: the samples see them running, however slowly
        # this machine goes today.
        busy = _eventually(
            lambda: _history(base),
            lambda h: (_last(h, "tasks_running") or 0) >= 2 and (_last(h, "cpu_used") or 0) >= 2 and any(
                (_last(h, f"node/{n}/cpu_used") or 0) >= 2 for n in h["nodes"]
            ),
        )
        assert (_last(busy, "tasks_running") or 0) >= 2, busy["series"].get("tasks_running")
        assert (_last(busy, "cpu_used") or 0) >= 2, busy["series"].get("cpu_used")
    finally:
        for ref in naps:
            ember.cancel(ref, force=True)
    assert ember.get([charted.remote(i) for i in range(40)]) == list(range(40))
    for i in range(3):
        with pytest.raises(ValueError, match=f"charted failure {i}"):
            ember.get(charted_failure.remote(i))
    kept = ember.put(b"x" * (4 << 20))  # held in the object store while the test reads

    head_address, node_address = endpoints()

    def settled() -> tuple[dict, dict, dict]:  # type: ignore[type-arg]
        return _history(base), scrape(node_address), scrape(head_address)

    def agrees(read: tuple[dict, dict, dict]) -> bool:  # type: ignore[type-arg]
        history, node, head = read
        return (
            _last(history, "tasks_finished") == value(node, "ember_tasks_finished_total")
            and _last(history, "tasks_failed") == value(node, "ember_tasks_failed_total") >= 3
            and _last(history, "object_store_used") == value(node, "ember_object_store_used_bytes") >= 4 << 20
            and _last(history, "nodes_alive") == value(head, "ember_nodes", state="alive") == 1
        )

    history, node, head = _eventually(settled, agrees)
    assert agrees((history, node, head)), (
        {k: _last(history, k) for k in ("tasks_finished", "tasks_failed", "object_store_used", "nodes_alive")},
        value(node, "ember_tasks_finished_total"), value(node, "ember_tasks_failed_total"),
        value(node, "ember_object_store_used_bytes"), value(head, "ember_nodes", state="alive"),
    )
    assert value(node, "ember_tasks_finished_total") >= 40
    series = history["series"]
    # The rates are the counters' differences: non-zero where a counter moved, zero elsewhere.
    finished = series["tasks_finished"]
    for name, total in (("tasks_finished_per_second", finished), ("tasks_failed_per_second", series["tasks_failed"])):
        rates = series[name]
        assert max(r for r in rates if r is not None) > 0, name
        for i in range(1, len(rates)):
            if rates[i] is not None and total[i] is not None and total[i - 1] is not None:
                assert (rates[i] > 0) == (total[i] > total[i - 1]), (name, i, rates[i], total[i - 1], total[i])
    assert len(history["times"]) == len(finished) and history["times"] == sorted(history["times"])
    assert history["interval"] == 1.0 and history["points"] == 3600
    (node_name,) = history["nodes"]
    assert history["nodes"][node_name]["CPU"] == 4.0 and history["nodes"][node_name]["alive"]

    # Asked for what came after its last moment, the head sends only newer ones.
    status, later = get(base + f"/api/history?since={history['times'][-1]}")
    assert status == 200 and all(t > history["times"][-1] for t in later["times"])  # type: ignore[index]
    for bad in ("abc", "-1", "inf"):
        status, answer = get(base + f"/api/history?since={bad}")
        assert status == 400 and "since must be seconds since the epoch" in answer["error"]  # type: ignore[index]
    assert get(base + "/api/history", token=None)[0] == 401
    del kept


def test_the_head_serves_the_charting_library_itself(cluster) -> None:
    """Nothing is fetched from elsewhere: the page loads uPlot from the head, which needs no
    token for it (it is the library's code, no cluster data)."""
    base = f"http://{cluster.dashboard_url}"
    status, page = get(base + "/", token=None)
    assert '<script src="/static/uPlot.iife.min.js">' in str(page) and "http" not in str(page).split("<script", 1)[1].split(">", 1)[0]
    status, script = get(base + "/static/uPlot.iife.min.js", token=None)
    assert status == 200 and str(script).startswith("/*! https://github.com/leeoniya/uPlot (v1.6.32) */")
    status, licence = get(base + "/static/uPlot.LICENSE", token=None)
    assert status == 200 and "The MIT License" in str(licence)
    assert get(base + "/static/uPlot.min.css", token=None)[0] == 200
    for missing in ("/static/nothing.js", "/static/../dashboard.py", "/static/"):
        status, answer = get(base + missing, token=None)
        assert status == 404 and "nothing at" in answer["error"], missing  # type: ignore[index]


def test_the_overview_counts_the_stores_bytes_and_lists_failed_tasks(cluster) -> None:
    """What a new user saw: the overview said the object store held 0 B while the nodes page
    said 228.9 MiB, and "Recent failures: none" while the tasks page listed 24."""
    base = f"http://{cluster.dashboard_url}"
    kept = ember.put(b"y" * (3 << 20))
    with pytest.raises(ValueError):
        ember.get(charted_failure.remote(99))

    def both() -> tuple[dict, list]:  # type: ignore[type-arg]
        return get(base + "/api/overview")[1], get(base + "/api/nodes")[1]  # type: ignore[return-value]

    overview, nodes = _eventually(
        both,
        lambda read: read[0]["object_store"]["used"] == sum(n["object_store"]["used"] for n in read[1])
        and any(t["error"] == "ValueError: charted failure 99" for t in read[0]["failed_tasks"]),
    )
    assert overview["object_store"]["used"] >= 3 << 20
    assert overview["object_store"]["used"] == sum(n["object_store"]["used"] for n in nodes)
    assert overview["object_store"]["capacity"] == sum(n["object_store"]["capacity"] for n in nodes)
    (failed,) = [t for t in overview["failed_tasks"] if t["error"] == "ValueError: charted failure 99"]
    assert failed["name"] == "charted_failure" and failed["state"] == "failed" and failed["worker_pid"] > 0
    assert overview["tasks_failed"] >= 1
    times = [t["time"] for t in overview["failed_tasks"]]
    assert times == sorted(times, reverse=True)
    del kept


def test_a_killed_actors_worker_is_told_as_the_heads_lease_with_its_actor_and_job(cluster) -> None:
    """What a new user saw: "... while leased to owner pid 0 at ... (job )"."""
    base = f"http://{cluster.dashboard_url}"
    actor = ChartedActor.remote()
    pid = ember.get(actor.pid.remote())
    os.kill(pid, signal.SIGKILL)
    _, overview = _eventually(
        lambda: get(base + "/api/overview"),
        lambda answer: any(f"worker pid {pid} " in e["message"] and "while leased to" in e["message"] for e in answer[1]["events"]),
    )
    # Its node's account (the actor's own death is another event).
    (event,) = [  # type: ignore[index]
        e["message"] for e in overview["events"] if f"worker pid {pid} " in e["message"] and "while leased to" in e["message"]
    ]
    actor_id = actor._ember_actor_id.hex()[:12]
    head = cluster.address.removeprefix("ember://")
    assert f"while leased to the head at {head} for actor {actor_id} of job " in event, event
    assert "pid 0" not in event and "(job )" not in event, event


def test_a_wrong_token_is_said_to_be_wrong(cluster) -> None:
    base = f"http://{cluster.dashboard_url}"
    status, refused = get(base + "/api/overview", token="not-the-token")
    assert status == 401 and refused["error"].startswith("wrong token")  # type: ignore[index]
    status, refused = get(base + "/api/overview", token=None)
    assert status == 401 and "the cluster token is needed" in refused["error"]  # type: ignore[index]
    if _chromium() is None:
        pytest.skip("no Chromium here (Debian: apt-get install chromium): the login form is not loaded in a browser")
    page = _browse(f"{base}/#tab=overview&token=not-the-token")
    said = page.split('id="login-error">', 1)[1].split("<", 1)[0]
    assert said.startswith("wrong token"), said


def _chart(page: str, chart_id: str) -> dict[str, str]:
    """The data-* attributes of a chart's box in the dumped page, and whether it holds a canvas."""
    start = page.index(f'id="chart-{chart_id}"')
    tag = page[page.rindex("<div", 0, start):page.index(">", start)]
    attributes = dict(
        part.split("=", 1) for part in tag.replace('"', "").split()[1:] if "=" in part
    )
    body = page[start:page.find('class="chart"', start + 1) if 'class="chart"' in page[start + 1:] else len(page)]
    attributes["canvas"] = "yes" if "<canvas" in body else "no"
    return attributes


def test_the_overview_and_nodes_pages_draw_their_charts_in_a_real_browser(cluster) -> None:
    if _chromium() is None:
        pytest.skip("no Chromium here (Debian: apt-get install chromium): the charts are not drawn in a browser")
    base = f"http://{cluster.dashboard_url}"
    naps = [charted_nap.remote(60.0) for _ in range(3)]
    try:
        ember.get([charted.remote(i) for i in range(20)])
        _eventually(
            lambda: _history(base),
            lambda h: (_last(h, "tasks_running") or 0) >= 3 and max(
                (v or 0) for v in h["series"].get("tasks_finished_per_second", [0])
            ) > 0,
        )
        token = urllib.parse.quote(auth.token())
        overview = _browse(f"{base}/#tab=overview&token={token}")
        for chart_id in ("tasks-running", "tasks-rate", "cpu-total", "store-total", "demand", "actors"):
            chart = _chart(overview, chart_id)
            assert chart["canvas"] == "yes" and int(chart["data-points"]) > 0, (chart_id, chart)
        for chart_id in ("tasks-running", "tasks-rate", "cpu-total"):
            assert float(_chart(overview, chart_id)["data-max"]) > 0, chart_id
        nodes = _browse(f"{base}/#tab=nodes&token={token}")
        for chart_id in ("node-cpu", "node-memory", "node-store", "node-spilled"):
            chart = _chart(nodes, chart_id)
            assert chart["canvas"] == "yes" and chart["data-lines"] == "1", (chart_id, chart)
        assert float(_chart(nodes, "node-cpu")["data-max"]) >= 3
        OUTPUT.mkdir(exist_ok=True)
        for tab in ("overview", "nodes"):
            shot = OUTPUT / f"dashboard-{tab}-charts.png"
            _browse(f"{base}/#tab={tab}&token={token}", screenshot=shot)
            assert shot.stat().st_size > 10_000
            print(f"screenshot: {shot}")
    finally:
        for ref in naps:
            ember.cancel(ref, force=True)
