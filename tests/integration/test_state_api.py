"""``ember.util.state`` and ``ember list`` / ``ember summary`` against a real local cluster.

Tasks reach the state API in their owners' reports (every two seconds), so tests wait for
what they look for to appear, up to a deadline; they never assert how long it took.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import warnings
from functools import partial

import pytest

import ember as ray
from ember.runtime.wire import auth
from ember.util import placement_group, remove_placement_group, state
from ember.util.state import StateApiError, list_actors, list_nodes, list_objects, list_tasks
from tests.conftest import eventually as _eventually

# Once a test has run 1,500 tasks, every listing says that ended tasks were left out; the test
# about it records the warning itself.
pytestmark = pytest.mark.filterwarnings("ignore:.*ended tasks are no longer listed")

eventually = partial(_eventually, timeout=20.0)


@ray.remote
class Gate:
    def __init__(self):
        self.event = asyncio.Event()

    async def wait(self):
        await self.event.wait()
        return "open"

    async def open(self):
        self.event.set()


@ray.remote
def state_api_square(x):
    return x * x


@ray.remote
def state_api_fails():
    raise ValueError("state api failure")


@ray.remote(resources={"custom": 2})
def state_api_hold_custom(gate):
    return ray.get(gate.wait.remote())


@ray.remote(resources={"custom": 1})
def state_api_wants_custom():
    return "ran"


@ray.remote
def state_api_after(value):
    return value


@ray.remote
class StateApiActor:
    def __init__(self):
        self.kept = None

    def keep(self, refs):
        self.kept = refs[0]
        return True

    def pid(self):
        return os.getpid()


def _by_name(rows, name):
    return [row for row in rows if row.name == name]


def test_finished_and_failed_tasks(cluster):
    ray.get([state_api_square.remote(i) for i in range(20)])
    with pytest.raises(ValueError):
        ray.get(state_api_fails.remote())
    rows = eventually(
        lambda: list_tasks(filters=[("func_or_class_name", "=", "state_api_square")], limit=1000),
        lambda rows: len(rows) == 20,
    )
    assert len(rows) == 20 and {row.state for row in rows} == {"FINISHED"}
    row = rows[0]
    assert row.type == "NORMAL_TASK" and row.actor_id is None and row.worker_pid > 0
    assert row.job_id == ray.get_runtime_context().get_job_id()
    assert row.node_id == ray.get_runtime_context().get_node_id()
    assert row.required_resources is None  # a detail column
    [failed] = eventually(
        lambda: list_tasks(filters=[("name", "=", "state_api_fails")], detail=True),
        lambda rows: len(rows) == 1,
    )
    assert failed.state == "FAILED" and failed.error_type == "TASK_EXECUTION_EXCEPTION"
    assert failed.error_message == "ValueError: state api failure"
    assert failed.required_resources == {"CPU": 1.0}
    assert failed.start_time_ms <= failed.end_time_ms and failed.creation_time_ms <= failed.end_time_ms
    assert failed.language == "PYTHON"


def test_waiting_and_running_tasks(cluster):
    gate = Gate.remote()
    holding = state_api_hold_custom.remote(gate)  # takes both "custom": the next one waits
    waiting_for_node = state_api_wants_custom.remote()
    waiting_for_args = state_api_after.remote(gate.wait.remote())

    def states():
        rows = list_tasks(filters=[("state", "!=", "FINISHED")], limit=1000)
        return {row.name: row.state for row in rows}

    expected = {
        "state_api_hold_custom": "RUNNING",
        "state_api_wants_custom": "PENDING_NODE_ASSIGNMENT",
        "state_api_after": "PENDING_ARGS_AVAIL",
    }
    seen = eventually(states, lambda seen: expected.items() <= seen.items())
    assert expected.items() <= seen.items()
    [running] = list_tasks(filters=[("name", "=", "state_api_hold_custom"), ("state", "=", "running")])
    assert running.worker_pid and running.node_id
    ray.get(gate.open.remote())
    assert ray.get([holding, waiting_for_node, waiting_for_args]) == ["open", "ran", "open"]
    done = eventually(
        lambda: list_tasks(filters=[("name", "=", "state_api_wants_custom")]),
        lambda rows: [row.state for row in rows] == ["FINISHED"],
    )
    assert [row.state for row in done] == ["FINISHED"]


def test_actor_tasks_and_actor_creation(cluster):
    actor = StateApiActor.remote()
    pid = ray.get(actor.pid.remote())
    rows = eventually(
        lambda: list_tasks(filters=[("actor_id", "=", actor._ember_actor_id.hex())]),
        lambda rows: {row.type for row in rows} == {"ACTOR_CREATION_TASK", "ACTOR_TASK"},
    )
    kinds = {row.type: row for row in rows}
    assert kinds["ACTOR_CREATION_TASK"].name == "StateApiActor.__init__"
    assert kinds["ACTOR_CREATION_TASK"].state == "FINISHED"
    assert kinds["ACTOR_TASK"].name == "StateApiActor.pid"
    assert kinds["ACTOR_TASK"].worker_pid == pid  # the actor's worker, from the head's table


@ray.remote
def summarized_ok():
    return 1


@ray.remote
def summarized_bad():
    raise RuntimeError("no")


def test_summarize_tasks_counts_every_task(cluster):
    ray.get([summarized_ok.remote() for _ in range(1500)])  # more than a node lists
    for ref in [summarized_bad.remote() for _ in range(3)]:
        with pytest.raises(RuntimeError):
            ray.get(ref)

    def read():
        return state.summarize_tasks()["cluster"]

    cluster_summary = eventually(
        read,
        lambda s: s["summary"].get("summarized_ok", {}).get("state_counts") == {"FINISHED": 1500}
        and s["summary"].get("summarized_bad", {}).get("state_counts") == {"FAILED": 3},
    )
    assert cluster_summary["summary"]["summarized_ok"] == {
        "func_or_class_name": "summarized_ok", "type": "NORMAL_TASK", "state_counts": {"FINISHED": 1500},
    }
    assert cluster_summary["summary"]["summarized_bad"]["state_counts"] == {"FAILED": 3}
    assert cluster_summary["total_tasks"] >= 1503
    assert cluster_summary["summary_by"] == "func_name"
    # The listing keeps only the latest, and says so.
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        list_tasks(filters=[("name", "=", "summarized_ok")], limit=5000)
    assert any("no longer listed" in str(w.message) for w in said)


def test_filters_limit_and_their_errors(cluster):
    ray.get([state_api_square.remote(i) for i in range(5)])
    eventually(lambda: list_tasks(filters=[("name", "=", "state_api_square")]), lambda rows: len(rows) >= 5)
    lower = list_tasks(filters=[("state", "=", "finished"), ("name", "=", "STATE_API_SQUARE")])
    assert lower and all(row.state == "FINISHED" for row in lower)
    pid = lower[0].worker_pid
    assert all(row.worker_pid == pid for row in list_tasks(filters=[("worker_pid", "=", str(pid))]))
    assert not any(row.name == "state_api_square" for row in list_tasks(filters=[("name", "!=", "state_api_square")], limit=10_000))
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        assert len(list_tasks(limit=2)) == 2
    assert any("Limit last 2 entries" in str(w.message) for w in said)
    with pytest.raises(ValueError, match="'bogus' is not a column of tasks"):
        list_tasks(filters=[("bogus", "=", "x")])
    with pytest.raises(ValueError, match="'required_resources' is not a column"):
        list_tasks(filters=[("required_resources", "=", "x")])
    with pytest.raises(ValueError, match="predicate '<'"):
        list_actors(filters=[("state", "<", "ALIVE")])
    with pytest.raises(ValueError, match="needs an integer"):
        list_tasks(filters=[("worker_pid", "=", "many")])
    with pytest.raises(ValueError, match="tuple"):
        list_tasks(filters=["state=RUNNING"])
    with pytest.raises(ValueError, match="limit"):
        list_tasks(limit=0)
    # Rows read as objects and, for older Ray code, as dicts.
    row = lower[0]
    assert row["state"] == row.state and row.get("missing", 7) == 7 and row.asdict()["name"] == row.name


def test_actors(cluster):
    alive = StateApiActor.options(name="state-api-named").remote()
    doomed = StateApiActor.remote()
    ray.get([alive.pid.remote(), doomed.pid.remote()])
    ray.kill(doomed)
    rows = {row.actor_id: row for row in list_actors(filters=[("class_name", "=", "StateApiActor")], detail=True)}
    named = rows[alive._ember_actor_id.hex()]
    assert named.state == "ALIVE" and named.name == "state-api-named" and named.pid
    assert named.ray_namespace == ray.get_runtime_context().namespace
    assert named.required_resources == {} and named.is_detached is False and named.num_restarts == 0
    dead = eventually(
        lambda: list_actors(filters=[("actor_id", "=", doomed._ember_actor_id.hex())], detail=True),
        lambda rows: rows and rows[0].state == "DEAD",
    )[0]
    assert "ember.kill" in dead.death_cause["actor_died_error_context"]["error_message"]
    assert alive._ember_actor_id.hex() in {row.actor_id for row in list_actors(filters=[("state", "=", "alive")], limit=1000)}
    assert doomed._ember_actor_id.hex() not in {row.actor_id for row in list_actors(filters=[("state", "=", "ALIVE")], limit=1000)}


def test_nodes(cluster):
    [node] = list_nodes()
    assert node.state == "ALIVE" and node.node_id == ray.get_runtime_context().get_node_id()
    assert node.resources_total["CPU"] == 4 and node.resources_total["custom"] == 2
    assert node.node_ip == node.node_name
    assert list_nodes(filters=[("state", "=", "DEAD")]) == []


def test_objects(cluster):
    mine = ray.put(b"x" * 300_000)
    gate = Gate.remote()
    blocked_arg = ray.put("argument")
    waiting = state_api_after.remote(gate.wait.remote())  # holds gate's ref until it can run
    keeper = StateApiActor.remote()
    ray.get(keeper.keep.remote([blocked_arg]))  # the actor's worker now borrows it
    rows = list_objects(limit=10_000)
    by_id = {}
    for row in rows:
        by_id.setdefault(row.object_id, []).append(row)
    [driver_row] = by_id[mine.hex()]
    assert driver_row.type == "DRIVER" and driver_row.pid == os.getpid()
    assert driver_row.reference_type == "LOCAL_REFERENCE" and driver_row.object_size >= 300_000
    assert driver_row.task_status == "FINISHED" and driver_row.call_site == "disabled"
    holders = {(row.type, row.reference_type) for row in by_id[blocked_arg.hex()]}
    assert ("WORKER", "LOCAL_REFERENCE") in holders and ("DRIVER", "LOCAL_REFERENCE") in holders
    pending = [row for row in rows if row.reference_type == "USED_BY_PENDING_TASK" and row.type == "DRIVER"]
    assert pending, "the gate's result, an argument of a task that cannot run yet"
    handles = [row for row in rows if row.reference_type == "ACTOR_HANDLE"]
    assert keeper._ember_actor_id.hex() in {row.object_id for row in handles}
    # The server's filter keeps exactly the rows a listing of the same moment has. Listings taken
    # moments apart may differ (a process that exits between them is left out of the second),
    # so the two are read until a pair agrees.
    filtered, unfiltered = eventually(
        lambda: (
            list_objects(filters=[("reference_type", "=", "ACTOR_HANDLE")], limit=10_000),
            [row for row in list_objects(limit=10_000) if row.reference_type == "ACTOR_HANDLE"],
        ),
        lambda pair: pair[0] == pair[1],
    )
    assert filtered == unfiltered
    assert keeper._ember_actor_id.hex() in {row.object_id for row in filtered}
    ray.get(gate.open.remote())
    assert ray.get(waiting) == "open"


def test_placement_groups_are_what_the_head_knows(cluster):
    assert state.list_placement_groups(filters=[("name", "=", "state-api-group")]) == []
    pg = placement_group([{"CPU": 1}, {"CPU": 0.5}], strategy="PACK", name="state-api-group")
    ray.get(pg.ready(), timeout=60)
    [row] = state.list_placement_groups(filters=[("name", "=", "state-api-group")], detail=True)
    assert (row.placement_group_id, row.state, row.is_detached) == (pg.id.hex(), "CREATED", False)
    assert [b["unit_resources"] for b in row.bundles] == [{"CPU": 1.0}, {"CPU": 0.5}]
    [node] = list_nodes()
    assert {b["node_id"] for b in row.bundles} == {node.node_id}
    assert row.stats["scheduling_state"] == "FINISHED"
    listed = _cli("list", "placement-groups", "--filter", "name=state-api-group")
    assert pg.id.hex() in listed.stdout and "CREATED" in listed.stdout

    remove_placement_group(pg)
    removed = eventually(
        lambda: state.list_placement_groups(filters=[("placement_group_id", "=", pg.id.hex())]),
        lambda rows: [r.state for r in rows] == ["REMOVED"],
    )
    assert [r.state for r in removed] == ["REMOVED"]
    assert state.list_placement_groups(filters=[("state", "=", "CREATED")]) == []


@ray.remote
def state_api_from_a_task():
    return [row.class_name for row in list_actors(filters=[("class_name", "=", "StateApiActor")])]


def test_from_inside_a_task(cluster):
    actor = StateApiActor.remote()
    ray.get(actor.pid.remote())
    assert "StateApiActor" in ray.get(state_api_from_a_task.remote())


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "EMBER_TOKEN": auth.token()}
    return subprocess.run(
        [sys.executable, "-m", "ember.cli", *args, "--address", _address()],
        capture_output=True, text=True, timeout=120, env=env,
    )


def _address() -> str:
    from ember.runtime.core import context

    return context.require_core().head_address


def test_the_cli(cluster):
    ray.get([state_api_square.remote(i) for i in range(3)])
    actor = StateApiActor.remote()
    ray.get(actor.pid.remote())
    eventually(lambda: list_tasks(filters=[("name", "=", "state_api_square")]), lambda rows: len(rows) >= 3)

    listed = _cli("list", "tasks", "--filter", "name=state_api_square", "--limit", "1000")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].startswith("======== List:") and "Stats:" in lines
    assert "TASK_ID" in listed.stdout and "FINISHED" in listed.stdout
    table = lines[lines.index("Table:") + 2:]
    assert all("state_api_square" in line for line in table[1:]) and len(table) >= 4

    actors = _cli("list", "actors", "--filter", "state!=DEAD", "--filter", "class_name=StateApiActor")
    assert actor._ember_actor_id.hex() in actors.stdout and "ALIVE" in actors.stdout

    detail = _cli("list", "actors", "--detail", "--filter", f"actor_id={actor._ember_actor_id.hex()}")
    assert "required_resources: {}" in detail.stdout and "num_restarts: 0" in detail.stdout

    as_json = _cli("list", "nodes", "--format", "json")
    [node] = json.loads(as_json.stdout)
    assert node["state"] == "ALIVE" and "resources_total" in node and "start_time_ms" not in node

    pending = _cli("list", "placement-groups", "--filter", "state=PENDING")
    assert "No placement-groups in the cluster" in pending.stdout
    assert "OBJECT_ID" in _cli("list", "objects").stdout

    summary = _cli("summary", "tasks")
    assert summary.returncode == 0, summary.stderr
    assert "Tasks Summary" in summary.stdout and "state_api_square" in summary.stdout
    assert "total_tasks:" in summary.stdout

    bad = _cli("list", "tasks", "--filter", "bogus=1")
    assert bad.returncode == 1 and "'bogus' is not a column of tasks" in bad.stderr
    malformed = _cli("list", "tasks", "--filter", "state")
    assert malformed.returncode == 1 and "KEY=VALUE" in malformed.stderr


def test_a_head_that_cannot_be_reached_is_named(cluster):
    with pytest.raises(StateApiError, match="127.0.0.1:9"):
        list_nodes(address="127.0.0.1:9", timeout=2)
