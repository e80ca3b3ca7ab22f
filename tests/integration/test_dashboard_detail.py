"""The dashboard's task and actor pages and its profile API during a workload: the JSON a page
draws, and the pages themselves in headless Chromium (skipped, with the reason, where it is
missing), saved as screenshots in test-output/."""

from __future__ import annotations

import os
import urllib.parse

import pytest

import ember
from ember import stack_command
from ember.runtime.wire import auth
from tests.conftest import eventually
from tests.integration.test_dashboard import OUTPUT, _browse, _chromium, get


def dashboard_detail_fails_here(value: int) -> None:
    raise RuntimeError(f"the page shows this failure of {value}")


@ember.remote
def page_task(value: int) -> None:
    print(f"page task printed {value}")
    dashboard_detail_fails_here(value)


@ember.remote
class PageActor:
    def __init__(self) -> None:
        print("page actor ready")

    def hello(self) -> int:
        print("page actor says hello")
        return os.getpid()


def profiled_here(stop_file: str) -> None:
    while not os.path.exists(stop_file):
        sum(range(10000))


@ember.remote
def profiled_task(stop_file: str) -> None:
    profiled_here(stop_file)



def test_the_profile_api_draws_the_workers_flame_graph(cluster, tmp_path) -> None:
    base = f"http://{cluster.dashboard_url}"
    stop = tmp_path / "stop"
    ref = profiled_task.remote(str(stop))
    try:
        dump = eventually(stack_command.stacks, lambda r: any(p.task_name == "profiled_task" for p in r.processes))
        (process,) = [p for p in dump.processes if p.task_name == "profiled_task"]
        query = urllib.parse.urlencode({"node": process.node_address, "pid": process.pid, "duration": 1})
        status, reply = get(f"{base}/api/profile?{query}")
    finally:
        stop.touch()
    ember.get(ref, timeout=60)
    assert status == 200, reply
    (found,) = reply["processes"]  # type: ignore[index]
    assert found["error"] == "" and found["pid"] == process.pid and found["sampler"] in ("self", "py-spy")
    assert "profiled_here" in found["svg"] and "<script" not in found["svg"]
    assert any(f["name"].endswith("profiled_here") for f in found["speedscope"]["shared"]["frames"])
    for bad, message in (("pid=0", "pid must be a process id"), ("pid=5&duration=120", "at most 60 seconds"),
                         ("pid=5&duration=x", "duration must be a number")):
        status, answer = get(f"{base}/api/profile?{bad}")
        assert status == 400 and message in answer["error"], answer  # type: ignore[index]
    status, _ = get(f"{base}/api/profile?pid=5", token=None)
    assert status == 401


def test_the_task_and_actor_pages_in_a_real_browser(cluster) -> None:
    if _chromium() is None:
        pytest.skip("no Chromium here (Debian: apt-get install chromium): the pages are not loaded in a browser")
    base = f"http://{cluster.dashboard_url}"
    ref = page_task.remote(5)
    with pytest.raises(ember.exceptions.TaskError):
        ember.get(ref)
    actor = PageActor.remote()
    ember.get(actor.hello.remote())
    task_id, actor_id = ref.task_id().hex(), actor._ember_actor_id.hex()
    eventually(lambda: get(f"{base}/api/task/{task_id}"), lambda answer: answer[0] == 200)
    eventually(
        lambda: get(f"{base}/api/actor/{actor_id}"),
        lambda answer: answer[0] == 200 and any(c["name"].endswith("hello") for c in answer[1]["calls"]),
    )
    token = urllib.parse.quote(auth.token())
    page = _browse(f"{base}/#task={task_id}&token={token}")
    assert "page task printed 5" in page
    assert "RuntimeError: the page shows this failure of 5" in page and "dashboard_detail_fails_here" in page
    assert task_id in page and ">failed<" in page
    actor_page = _browse(f"{base}/#actor={actor_id}&token={token}")
    assert "PageActor" in actor_page and "page actor says hello" in actor_page
    tasks_page = _browse(f"{base}/#tab=tasks&token={token}")
    assert f'data-task="{task_id}"' in tasks_page  # the tasks tab links to the page
    workers_page = _browse(f"{base}/#tab=workers&token={token}")
    assert 'class="profile"' in workers_page
    OUTPUT.mkdir(exist_ok=True)
    for name, fragment in (("task", f"task={task_id}"), ("actor", f"actor={actor_id}")):
        shot = OUTPUT / f"dashboard-{name}-detail.png"
        _browse(f"{base}/#{fragment}&token={token}", screenshot=shot)
        assert shot.stat().st_size > 10_000
        print(f"screenshot: {shot}")
    ember.kill(actor)
