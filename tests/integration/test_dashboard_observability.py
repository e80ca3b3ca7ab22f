"""The dashboard's views inside a running job: the timeline, the workers' stacks, the start
of running tasks; their JSON API during a workload, and the timeline page in headless Chromium."""

from __future__ import annotations

import time
import urllib.parse

import pytest

import ember
from ember.runtime.wire import auth
from tests.conftest import eventually
from tests.integration.test_dashboard import OUTPUT, _browse, _chromium, get


@ember.remote
def drawn_task(i: int) -> int:
    return i


def dashboard_waits_here(event_name: str) -> None:
    time.sleep(600)


@ember.remote
def dashboard_stuck() -> None:
    dashboard_waits_here("never")



def test_the_timeline_api_draws_recent_tasks_and_the_trace_downloads(cluster) -> None:
    base = f"http://{cluster.dashboard_url}"
    ember.get([drawn_task.remote(i) for i in range(12)])
    # The driver reports its tasks every few seconds: the timeline has them after the next.
    status, timeline = eventually(
        lambda: get(base + "/api/timeline?seconds=600"),
        lambda answer: sum(row[0] == "drawn_task" for row in answer[1]["tasks"]) >= 12,
    )
    assert status == 200
    rows = [row for row in timeline["tasks"] if row[0] == "drawn_task"]  # type: ignore[index]
    assert len(rows) == 12
    for _name, node, pid, submitted, scheduled, started, ended, failed, task_id in rows:
        assert node and pid > 0 and not failed and len(task_id) == 32
        assert timeline["since"] <= ended <= timeline["now"]  # type: ignore[index]
        assert submitted <= scheduled <= started <= ended
    status, trace = get(base + "/api/timeline/trace?seconds=600")
    assert status == 200
    assert len([e for e in trace["traceEvents"] if e["ph"] == "X" and e["name"] == "drawn_task"]) == 12  # type: ignore[index]
    for bad in ("abc", "-5", "nan", "0"):
        status, answer = get(base + f"/api/timeline?seconds={bad}")
        assert status == 400 and "seconds must be a positive number" in answer["error"]  # type: ignore[index]
    status, _ = get(base + "/api/timeline", token=None)
    assert status == 401


def test_the_stacks_api_and_the_running_tasks_start(cluster) -> None:
    base = f"http://{cluster.dashboard_url}"
    ref = dashboard_stuck.remote()
    try:
        status, tasks = eventually(
            lambda: get(base + "/api/tasks"),
            lambda answer: any(t["name"] == "dashboard_stuck" for t in answer[1]["running"]),
        )
        (running,) = [t for t in tasks["running"] if t["name"] == "dashboard_stuck"]  # type: ignore[index]
        assert running["time"] > 0  # when it was sent to its worker: the "started" column
        _, workers = get(base + "/api/workers")
        (worker,) = [w for w in workers["workers"] if w["pid"] == running["worker_pid"]]  # type: ignore[index]
        query = urllib.parse.urlencode({"node": worker["node_address"], "pid": worker["pid"]})
        status, stacks = eventually(
            lambda: get(base + f"/api/stacks?{query}"),
            lambda answer: "dashboard_waits_here" in str(answer[1]),
        )
        assert status == 200
        (process,) = stacks["processes"]  # type: ignore[index]
        assert process["pid"] == worker["pid"] and process["task_name"] == "dashboard_stuck"
        main = process["threads"][0]
        assert main["name"] == "MainThread" and "in dashboard_waits_here" in main["stack"]
        status, answer = get(base + "/api/stacks?node=nowhere")
        assert status == 404 and "no live node 'nowhere'" in answer["error"]  # type: ignore[index]
        status, answer = get(base + "/api/stacks?pid=1.5")
        assert status == 400 and "pid must be a process id" in answer["error"]  # type: ignore[index]
    finally:
        ember.cancel(ref, force=True)


def test_the_timeline_and_workers_pages_in_a_real_browser(cluster) -> None:
    if _chromium() is None:
        pytest.skip("no Chromium here (Debian: apt-get install chromium): the page is not loaded in a browser")
    base = f"http://{cluster.dashboard_url}"
    ember.get([drawn_task.remote(i) for i in range(5)])
    eventually(lambda: get(base + "/api/timeline"), lambda answer: bool(answer[1]["tasks"]))
    token = urllib.parse.quote(auth.token())
    page = _browse(f"{base}/#tab=timeline&token={token}")
    assert 'id="timeline-canvas" width=' in page  # drawn: the canvas was sized for its rows
    summary = page.split('id="timeline-summary">', 1)[1].split("<", 1)[0]
    assert " tasks on " in summary and " workers" in summary
    workers_page = _browse(f"{base}/#tab=workers&token={token}")
    assert 'class="stack"' in workers_page
    OUTPUT.mkdir(exist_ok=True)
    for tab in ("timeline", "workers"):
        shot = OUTPUT / f"dashboard-{tab}.png"
        _browse(f"{base}/#tab={tab}&token={token}", screenshot=shot)
        assert shot.stat().st_size > 10_000
        print(f"screenshot: {shot}")
