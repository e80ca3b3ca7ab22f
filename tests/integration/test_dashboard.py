"""The dashboard: its JSON API during a workload, and the page itself in headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

import ember
from ember import status_report
from ember.runtime.wire import auth
from tests.conftest import REPO
from tests.integration.test_listening import default_interface_address

OUTPUT = REPO / "test-output"  # kept after the run (git ignores it)


def get(url: str, token: str | None = "", headers: dict[str, str] | None = None) -> tuple[int, object]:
    """GET with the cluster's token as a bearer token (None: no token at all)."""
    request = urllib.request.Request(url, headers=dict(headers or {}))
    if token is not None:
        request.add_header("Authorization", f"Bearer {token or auth.token()}")
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            body = response.read()
            kind = response.headers["Content-Type"]
            return response.status, json.loads(body) if kind == "application/json" else body.decode()
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@ember.remote
def dozing_task(seconds: float) -> int:
    import os

    print(f"dozing for {seconds} s in pid {os.getpid()}")
    time.sleep(seconds)
    return os.getpid()


@ember.remote
def broken_task() -> None:
    raise KeyError("no such key")


@ember.remote(max_restarts=1)
class Librarian:
    def shelve(self) -> str:
        return "done"


def test_api_shows_nodes_workers_tasks_actors_and_logs(cluster) -> None:
    base = f"http://{cluster.dashboard_url}"
    assert cluster.dashboard_url, "init() did not report the dashboard"
    dozing = [dozing_task.remote(4.0) for _ in range(2)]
    with pytest.raises(KeyError):
        ember.get(broken_task.remote())
    librarian = Librarian.options(name="librarian").remote()
    assert ember.get(librarian.shelve.remote()) == "done"

    status, page = get(base + "/")
    assert status == 200 and "<title>ember dashboard</title>" in str(page)

    status, overview = get(base + "/api/overview")
    assert status == 200 and isinstance(overview, dict)
    assert overview["nodes_alive"] == 1 and overview["resources"]["CPU"] == 4.0
    assert any(job["alive"] for job in overview["jobs"])

    status, nodes = get(base + "/api/nodes")
    assert status == 200 and isinstance(nodes, list) and len(nodes) == 1
    assert nodes[0]["alive"] and nodes[0]["object_store"]["capacity"] > 0

    def running() -> list[dict]:
        _, tasks = get(base + "/api/tasks")
        return [t for t in tasks["running"] if t["name"] == "dozing_task"]  # type: ignore[index]

    deadline = time.monotonic() + 10
    while not running() and time.monotonic() < deadline:
        time.sleep(0.3)
    assert running(), "the running tasks never showed"
    _, workers = get(base + "/api/workers")
    busy = [w for w in workers["workers"] if "dozing_task" in w["running"]]  # type: ignore[index]
    assert busy and all(w["state"] == "leased" for w in busy)
    librarian_workers = [w for w in workers["workers"] if "Librarian" in w["actor"]]  # type: ignore[index]
    assert len(librarian_workers) == 1

    _, tasks = get(base + "/api/tasks")
    failed = [t for t in tasks["ended"] if t["name"] == "broken_task"]  # type: ignore[index]
    assert failed and failed[0]["state"] == "failed" and failed[0]["error"] == "KeyError: 'no such key'"

    _, actors = get(base + "/api/actors")
    (mine,) = [a for a in actors if a["name"] == "librarian"]  # type: ignore[union-attr]
    assert mine["state"] == "alive" and mine["class_name"] == "Librarian" and mine["max_restarts"] == 1

    pids = ember.get(dozing)
    _, logs = get(base + "/api/logs")
    node = logs[0]["node"]  # type: ignore[index]
    name = next(f["name"] for f in logs[0]["files"] if f["name"].endswith(f"-{pids[0]}.out"))  # type: ignore[index]
    status, tail = get(f"{base}/api/logs/tail?node={node}&name={name}&lines=5")
    assert status == 200 and f"dozing for 4.0 s in pid {pids[0]}" in tail["text"]  # type: ignore[index]
    status, refused = get(f"{base}/api/logs/tail?node={node}&name=../../etc/passwd")
    assert status == 404 and "not a log file name" in refused["error"]  # type: ignore[index]
    assert get(base + "/api/nothing")[0] == 404


def test_api_shows_submitted_jobs_with_their_status_and_output(cluster) -> None:
    from ember.job_submission import JobStatus, JobSubmissionClient

    base = f"http://{cluster.dashboard_url}"
    client = JobSubmissionClient(cluster.address, token=auth.token())
    job = client.submit_job(entrypoint="echo one; echo two; exit 4", metadata={"team": "a"})
    deadline = time.monotonic() + 60
    while not client.get_job_status(job).is_terminal() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert client.get_job_status(job) == JobStatus.FAILED
    status, jobs = get(base + "/api/jobs")
    assert status == 200
    (mine,) = [j for j in jobs if j["submission_id"] == job]  # type: ignore[union-attr]
    assert mine["status"] == "FAILED" and mine["exit_code"] == 4 and mine["metadata"] == {"team": "a"}
    assert mine["entrypoint"] == "echo one; echo two; exit 4" and mine["end_time"] >= mine["start_time"] > 0
    status, tail = get(f"{base}/api/jobs/logs?id={job}")
    assert status == 200 and tail["text"] == "one\ntwo\n" and not tail["truncated"]  # type: ignore[index]
    status, missing = get(f"{base}/api/jobs/logs?id=nope")
    assert status == 404 and "no job" in missing["error"]  # type: ignore[index]
    assert get(base + "/api/jobs", token="wrong")[0] == 401


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def _browse(url: str, screenshot: Path | None = None) -> str:
    browser = _chromium()
    assert browser is not None
    args = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
            "--window-size=1280,900"]
    args += [f"--screenshot={screenshot}"] if screenshot else ["--dump-dom"]
    out = subprocess.run(args + [url], capture_output=True, text=True, timeout=90)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_the_page_in_a_real_browser(cluster) -> None:
    if _chromium() is None:
        pytest.skip("no Chromium here (Debian: apt-get install chromium): the page is not loaded in a browser")
    base = f"http://{cluster.dashboard_url}"
    dozing = [dozing_task.remote(8.0) for _ in range(2)]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        _, tasks = get(base + "/api/tasks")
        if any(t["name"] == "dozing_task" for t in tasks["running"]):  # type: ignore[index]
            break
        time.sleep(0.3)
    token = urllib.parse.quote(auth.token())
    nodes_page = _browse(f"{base}/#tab=nodes&token={token}")
    node_id = ember.nodes()[0]["NodeID"][:12]
    assert node_id in nodes_page and ">alive<" in nodes_page
    # The charts of the head's history, drawn by the uPlot the head serves (a canvas each).
    charts = nodes_page.split('id="nodes-charts"', 1)[1]
    assert 'id="chart-node-cpu"' in charts and "<canvas" in charts
    tasks_page = _browse(f"{base}/#tab=tasks&token={token}")
    assert "dozing_task" in tasks_page and "<h3>Running</h3>" in tasks_page
    from ember.job_submission import JobSubmissionClient

    client = JobSubmissionClient(cluster.address, token=auth.token())
    job = client.submit_job(entrypoint="echo shown in the browser")
    while not client.get_job_status(job).is_terminal() and time.monotonic() < deadline + 60:
        time.sleep(0.1)
    jobs_page = _browse(f"{base}/#tab=jobs&token={token}")
    assert job in jobs_page and ">SUCCEEDED<" in jobs_page and "echo shown in the browser" in jobs_page
    reader = Librarian.options(name="reading-room").remote()
    unnamed = Librarian.remote()
    assert ember.get([reader.shelve.remote(), unnamed.shelve.remote()]) == ["done", "done"]
    actors_page = _browse(f"{base}/#tab=actors&token={token}")
    assert "Librarian" in actors_page and "reading-room" in actors_page
    assert "/</td>" not in actors_page  # an unnamed actor's name is empty, not "<namespace>/"
    OUTPUT.mkdir(exist_ok=True)
    for tab in ("overview", "nodes", "tasks", "actors", "jobs", "logs"):
        shot = OUTPUT / f"dashboard-{tab}.png"
        _browse(f"{base}/#tab={tab}&token={token}", screenshot=shot)
        assert shot.stat().st_size > 10_000
        print(f"screenshot: {shot}")
    ember.get(dozing)


def test_the_dashboard_wants_the_token(cluster) -> None:
    base = f"http://{cluster.dashboard_url}"
    # The page itself holds no data; the API does.
    assert get(base + "/", token=None)[0] == 200
    for token in (None, "wrong"):
        status, refused = get(base + "/api/nodes", token=token)
        assert status == 401 and "token" in refused["error"]  # type: ignore[index]
    assert get(base + "/api/nodes")[0] == 200
    assert not cluster.dashboard_url.startswith("0.0.0.0")  # loopback unless told otherwise

    def login(token: str) -> tuple[int, str]:
        request = urllib.request.Request(
            base + "/api/login", data=json.dumps({"token": token}).encode(), method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.headers.get("Set-Cookie", "")
        except urllib.error.HTTPError as error:
            return error.code, ""

    assert login("wrong") == (401, "")
    status, cookie = login(auth.token())
    assert status == 200 and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert auth.token() not in cookie  # the cookie is derived from the token, not the token
    session = cookie.split(";")[0]
    assert get(base + "/api/overview", token=None, headers={"Cookie": session})[0] == 200
    assert get(base + "/api/overview", token=None, headers={"Cookie": session[:-1] + "x"})[0] == 401


@pytest.mark.parametrize("in_kubernetes", [False, True], ids=["machine", "pod"])
def test_the_head_says_an_address_the_dashboard_opens_at(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, in_kubernetes: bool
) -> None:
    """Bound to every interface (as in a pod), the head names the address it advertises (the
    pod's IP), not 0.0.0.0; in a pod it says how to come in through the head Service."""
    host = default_interface_address() or "127.0.0.1"
    if in_kubernetes:
        # What every container gets, and what the operator's head pod is told.
        monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
        monkeypatch.setenv("POD_NAME", "small-head")
    token = auth.generate()
    session_dir = tmp_path / "session"
    session_dir.mkdir()
    head = subprocess.Popen(
        [sys.executable, "-m", "ember.runtime.head_main", "--host", host, "--session-dir",
         str(session_dir), "--dashboard-host", "0.0.0.0", "--dashboard-port", "0"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, env={**os.environ, auth.ENV: token},
    )
    try:
        assert head.stdout is not None
        ready = head.stdout.readline().decode().split()
        assert ready[0] == "EMBER_READY", ready
        said = [
            line.split("ember.runtime.head.head: ", 1)[1]
            for line in (session_dir / "logs" / "head.log").read_text().splitlines()
            if "ember.runtime.head.head: dashboard at" in line
        ]
        auth.set_token(token)
        view = status_report.fetch(ready[1])
        port = int(view.dashboard_address.rsplit(":", 1)[1])
        status, overview = get(f"http://{host}:{port}/api/overview", token=token)
    finally:
        auth.set_token("")
        head.terminate()
        head.wait(10)
    assert view.dashboard_address == f"{host}:{port}"  # drivers print this one
    assert status == 200, overview  # it opens there
    expected = f"dashboard at http://{host}:{port}"
    if in_kubernetes:
        expected += (
            f"; from outside the cluster, through the head Service: "
            f"kubectl port-forward svc/small-head {port}"
        )
    assert said == [expected]
