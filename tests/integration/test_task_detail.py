"""The dashboard's task and actor detail (``/api/task/<id>``, ``/api/actor/<id>``) and
``ember.util.state.get_task`` / ``get_actor`` on a real local cluster: a task's own log lines,
its error with the remote traceback, its four times in order; an actor's record, calls and log.

Tests wait for what they look for (owners report every two seconds) and assert no durations.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import ember
from ember.util.state import get_actor, get_task
from tests.conftest import eventually
from tests.integration.test_dashboard import get


def raise_deep_inside(value: int) -> None:
    raise ValueError(f"the detail task gives up on {value}")


@ember.remote
def prints_then_raises(value: int, blob: object) -> None:
    print(f"detail task says hello with {value}")
    raise_deep_inside(value)


@ember.remote
def quiet_neighbour() -> int:
    print("a line of another task")
    return os.getpid()


@ember.remote
class DetailedActor:
    def __init__(self) -> None:
        print("the detailed actor is born")

    def poke(self, n: int) -> int:
        print(f"poked {n}")
        return n + 1



def test_a_failed_tasks_detail_has_its_lines_traceback_and_times(cluster) -> None:
    base = f"http://{cluster.dashboard_url}"
    big = ember.put(np.zeros(300_000, dtype=np.uint8))  # stored, not inline: its size is the object's
    # One after another, on one leased worker: its log file holds the neighbours' lines too.
    neighbours = [ember.get(quiet_neighbour.remote())]
    ref = prints_then_raises.remote(7, big)
    with pytest.raises(ember.exceptions.TaskError):
        ember.get(ref)
    neighbours.append(ember.get(quiet_neighbour.remote()))
    task_id = ref.task_id().hex()
    status, detail = eventually(
        lambda: get(f"{base}/api/task/{task_id}"), lambda answer: answer[0] == 200 and answer[1]["state"] == "failed"
    )
    assert status == 200, detail
    assert detail["name"] == "prints_then_raises" and detail["task_id"] == task_id
    assert "ValueError: the detail task gives up on 7" in detail["traceback"]
    assert "in raise_deep_inside" in detail["traceback"]  # the whole remote traceback
    assert detail["error"].startswith("ValueError")
    times = [detail["submitted"], detail["scheduled"], detail["started"], detail["ended"]]
    assert all(t > 0 for t in times) and times == sorted(times), times
    assert detail["worker_pid"] in neighbours and detail["node_address"]
    assert detail["args_size"] > 0
    assert detail["ref_arg_sizes"] and detail["ref_arg_sizes"][0] >= 300_000
    log = detail["log"]
    assert log["error"] == "", log
    assert "detail task says hello with 7" in log["out"]
    assert "a line of another task" not in log["out"]  # its own lines only
    # The same from the state API.
    state = get_task(task_id)
    assert state is not None and state.state == "FAILED" and state.name == "prints_then_raises"
    assert get_task("00" * 16) is None
    # Bad and unknown ids are named.
    status, answer = get(f"{base}/api/task/xyz")
    assert status == 400 and "not a task id" in answer["error"]
    status, answer = get(f"{base}/api/task/{'00' * 16}")
    assert status == 404 and "no node keeps task" in answer["error"]
    status, _ = get(f"{base}/api/task/{task_id}", token=None)
    assert status == 401


def test_an_actors_detail_has_its_log_and_calls(cluster) -> None:
    base = f"http://{cluster.dashboard_url}"
    actor = DetailedActor.remote()
    assert ember.get(actor.poke.remote(41)) == 42
    actor_id = actor._ember_actor_id.hex()
    status, detail = eventually(
        lambda: get(f"{base}/api/actor/{actor_id}"),
        lambda answer: answer[0] == 200 and any(c["name"].endswith("poke") for c in answer[1]["calls"]),
    )
    assert status == 200, detail
    assert detail["class_name"] == "DetailedActor" and detail["state"] == "alive"
    assert detail["pid"] > 0 and detail["node_address"]
    assert "the detailed actor is born" in detail["log"]["out"] and "poked 41" in detail["log"]["out"]
    (call,) = [c for c in detail["calls"] if c["name"].endswith("poke")]
    assert call["state"] == "finished" and call["worker_pid"] == detail["pid"]
    state = get_actor(actor_id)
    assert state is not None and state.class_name == "DetailedActor" and state.state == "ALIVE"
    assert get_actor("00" * 16) is None
    status, answer = get(f"{base}/api/actor/{'00' * 16}")
    assert status == 404 and "no actor" in answer["error"]
    ember.kill(actor)
