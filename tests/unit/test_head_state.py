"""The head's state directory: records survive a new HeadState, and nobody else may read them."""

from __future__ import annotations

import os
from pathlib import Path

from ember.runtime.head.head_state import HeadState
from ember.runtime.wire.protocol import ember_pb2 as pb


def test_job_numbers_continue_across_restarts(tmp_path: Path) -> None:
    state = HeadState(str(tmp_path / "state"))
    assert [state.next_job_number() for _ in range(3)] == [1, 2, 3]
    assert HeadState(str(tmp_path / "state")).next_job_number() == 4


def test_actors_are_saved_replaced_and_dropped(tmp_path: Path) -> None:
    state = HeadState(str(tmp_path / "state"))
    spec = pb.ActorSpec(actor_id=b"\x01" * 16, class_name="Counter", name="c", detached=True)
    state.save_actor(spec, pb.ActorInfo(actor_id=spec.actor_id, state=pb.PENDING, version=1))
    state.save_actor(spec, pb.ActorInfo(actor_id=spec.actor_id, state=pb.ALIVE, version=2))
    (loaded,) = HeadState(str(tmp_path / "state")).load_actors()
    assert loaded.spec == spec and loaded.info.state == pb.ALIVE and loaded.info.version == 2
    state.drop_actor(spec.actor_id)
    assert state.load_actors() == []


def test_a_torn_or_bad_record_does_not_stop_the_head(tmp_path: Path) -> None:
    state = HeadState(str(tmp_path / "state"))
    (tmp_path / "state" / "actors" / ".tmp123").write_bytes(b"half a wri")
    (tmp_path / "state" / "actors" / "00ff").write_bytes(b"\xff\xff\xff garbage")
    assert state.load_actors() == []


def test_the_directory_is_private(tmp_path: Path) -> None:
    HeadState(str(tmp_path / "state"))
    for path in (tmp_path / "state", tmp_path / "state" / "actors"):
        assert os.stat(path).st_mode & 0o077 == 0, oct(os.stat(path).st_mode)
