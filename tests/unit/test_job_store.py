"""The head's job records and output files: a restart continues the output where it stopped,
with nothing twice, and records survive as they were written last."""

from __future__ import annotations

from pathlib import Path

import pytest

from ember.runtime.head.job_store import SUBMISSION_ID, JobStore
from ember.runtime.wire.protocol import ember_pb2 as pb


def test_output_resent_after_a_restart_is_not_written_twice(tmp_path: Path) -> None:
    store = JobStore(str(tmp_path / "jobs"))
    assert store.append("j", 0, b"hello ") == 6
    assert store.append("j", 0, b"hello world") == 11  # resent from 0: only the new part
    assert store.append("j", 11, b"!") == 12
    assert store.read("j", 0, 100) == b"hello world!"
    assert store.read("j", 6, 5) == b"world"
    with pytest.raises(ValueError, match="offset 20, but the head holds 12"):
        store.append("j", 20, b"gap")


def test_records_are_read_back_and_deleted_with_their_output(tmp_path: Path) -> None:
    store = JobStore(str(tmp_path / "jobs"))
    store.save(pb.JobInfo(submission_id="a", status=pb.JOB_RUNNING, entrypoint="true"))
    store.save(pb.JobInfo(submission_id="a", status=pb.JOB_SUCCEEDED, entrypoint="true"))
    store.save(pb.JobInfo(submission_id="b", status=pb.JOB_PENDING, entrypoint="false"))
    store.append("a", 0, b"out")
    (tmp_path / "jobs" / ".tmp-half-written").write_bytes(b"\x00garbage")
    (tmp_path / "jobs" / "c.job").write_bytes(b"\xff\xff not a record")
    again = JobStore(str(tmp_path / "jobs"))
    loaded = {info.submission_id: info.status for info in again.load()}
    assert loaded == {"a": pb.JOB_SUCCEEDED, "b": pb.JOB_PENDING}
    again.delete("a")
    assert [info.submission_id for info in again.load()] == ["b"]
    assert again.log_size("a") == 0


@pytest.mark.parametrize("name", ["ok", "nightly-2024.01_a", "A" * 128])
def test_good_submission_ids(name: str) -> None:
    assert SUBMISSION_ID.match(name)


@pytest.mark.parametrize("name", ["", "../x", ".hidden", "-flag", "a/b", "a b", "A" * 129, "é"])
def test_submission_ids_that_cannot_name_a_file_are_refused(name: str) -> None:
    assert not SUBMISSION_ID.match(name)
