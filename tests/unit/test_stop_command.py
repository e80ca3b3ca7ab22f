"""ember stop's account of what it stopped, for records whose processes are gone."""

from __future__ import annotations

import pytest

from ember import stop_command
from ember.runtime import session

GONE = 4_194_000  # above any pid this machine hands out


def test_nothing_recorded_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EMBER_TEMP_DIR", str(tmp_path))
    assert stop_command.run(0.1) == 0
    assert capsys.readouterr().out == "Nothing to stop: ember start and ember up left nothing running here.\n"


@pytest.mark.parametrize(("what", "said"), [
    ({"kind": "up", "name": "local", "head_pids": [GONE], "nodes": [{"name": "small-1", "pids": [GONE]}]},
     "Cluster 'local' at ember://127.0.0.1:10001 (ember up) had already stopped."),
    ({"kind": "head", "head_pids": [GONE], "nodes": []},
     "The cluster at ember://127.0.0.1:10001 (ember start --head) had already stopped."),
    ({"kind": "agent", "joined": "ember://10.0.0.1:10001", "nodes": []},
     "A node that had joined ember://10.0.0.1:10001 (ember start --address) had already stopped."),
    ({}, "The processes of /s/session_x had already stopped."),
])
def test_a_record_whose_processes_are_gone_is_named_and_forgotten(tmp_path, monkeypatch, capsys, what, said):
    monkeypatch.setenv("EMBER_TEMP_DIR", str(tmp_path))
    session.record_started("/s/session_x", [GONE], "ember://127.0.0.1:10001", what=what)
    assert stop_command.run(0.1) == 0
    assert capsys.readouterr().out == said + "\n"
    assert session.started_records() == []


def test_update_keeps_the_record_whole(tmp_path, monkeypatch):
    monkeypatch.setenv("EMBER_TEMP_DIR", str(tmp_path))
    session.record_started("/s/session_y", [1], what={"kind": "up", "nodes": []})
    session.update_started("/s/session_y", nodes=[{"name": "small-1", "pids": [2]}])
    ((_, record),) = session.started_records()
    assert record["kind"] == "up" and record["nodes"] == [{"name": "small-1", "pids": [2]}]
    session.forget_started("/s/session_y")
    session.update_started("/s/session_y", nodes=[])  # after forgetting: nothing comes back
    assert session.started_records() == []
