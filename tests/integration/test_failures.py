"""Exceptions, crashed workers, retries and cancellation, on real processes."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

import ember
from ember.exceptions import (
    TaskCancelledError,
    TaskError,
    WorkerCrashedError,
)


class CustomError(Exception):
    def __init__(self, code):
        super().__init__(f"custom failure {code}")
        self.code = code


@ember.remote
def raises(kind):
    if kind == "value":
        raise ValueError("bad value")
    if kind == "custom":
        raise CustomError(42)
    if kind == "oserror":
        raise FileNotFoundError(2, "No such file", "/nope")
    raise KeyError(kind)


def test_task_exception_keeps_its_type_and_remote_traceback(cluster):
    with pytest.raises(ValueError, match="bad value") as info:
        ember.get(raises.remote("value"))
    error = info.value
    assert isinstance(error, TaskError) and isinstance(error, ember.exceptions.RayTaskError)
    text = str(error)
    assert "Traceback (most recent call last)" in text
    assert 'raise ValueError("bad value")' in text
    assert f"pid={error.pid}" in text and error.pid != os.getpid()
    assert "executor.py" not in text  # ember's own frames are left out


def test_custom_exception_attributes_survive(cluster):
    with pytest.raises(CustomError) as info:
        ember.get(raises.remote("custom"))
    assert info.value.code == 42
    with pytest.raises(FileNotFoundError) as info2:
        ember.get(raises.remote("oserror"))
    assert info2.value.filename == "/nope"


def test_error_propagates_to_dependent_tasks(cluster):
    @ember.remote
    def consume(x):
        return ("never ran", x)

    with pytest.raises(KeyError, match="missing"):
        ember.get(consume.remote(raises.remote("missing")))


def test_nested_task_error_keeps_the_root_type(cluster):
    @ember.remote
    def outer():
        return ember.get(raises.remote("value"))

    with pytest.raises(ValueError, match="bad value"):
        ember.get(outer.remote())


def test_unpicklable_function_fails_at_remote(cluster):
    lock = threading.Lock()

    @ember.remote
    def holds_lock():
        return lock.locked()

    with pytest.raises(TypeError, match=r"Could not serialize the function .*holds_lock.*_thread.lock"):
        holds_lock.remote()


def test_unpicklable_argument_fails_at_remote(cluster):
    @ember.remote
    def take(x):
        return x

    with pytest.raises(TypeError, match=r"Could not serialize the arguments of .*take.*_thread.lock"):
        take.remote(threading.Lock())


def test_unpicklable_return_value_is_a_task_error(cluster):
    @ember.remote
    def give_lock():
        return threading.Lock()

    with pytest.raises(TaskError, match="could not serialize the return value"):
        ember.get(give_lock.remote())


def test_crashed_worker_is_retried(cluster, tmp_path):
    marker = tmp_path / "crashed-once"

    @ember.remote
    def crash_once(path):
        if not os.path.exists(path):
            open(path, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)
        return "survived"

    assert ember.get(crash_once.remote(str(marker)), timeout=60) == "survived"


def test_worker_crash_after_retries_is_reported_with_cause(cluster):
    @ember.remote(max_retries=1)
    def always_crash():
        os.kill(os.getpid(), signal.SIGKILL)

    with pytest.raises(WorkerCrashedError, match=r"killed by SIGKILL.*2 attempts, max_retries=1"):
        ember.get(always_crash.remote(), timeout=60)

    @ember.remote(max_retries=0)
    def exit_code_three():
        os._exit(3)

    with pytest.raises(WorkerCrashedError, match="exit code 3"):
        ember.get(exit_code_three.remote(), timeout=60)


def test_retry_exceptions(cluster, tmp_path):
    counter = tmp_path / "attempts"

    @ember.remote(retry_exceptions=True, max_retries=2)
    def flaky(path):
        with open(path, "a") as f:
            f.write("x")
        if len(open(path).read()) < 3:
            raise RuntimeError("transient")
        return "third time"

    assert ember.get(flaky.remote(str(counter))) == "third time"

    other = tmp_path / "other"

    @ember.remote(retry_exceptions=[KeyError], max_retries=5)
    def wrong_kind(path):
        with open(path, "a") as f:
            f.write("x")
        raise ValueError("not retried")

    with pytest.raises(ValueError):
        ember.get(wrong_kind.remote(str(other)))
    assert open(other).read() == "x"


def test_application_errors_are_not_retried_by_default(cluster, tmp_path):
    counter = tmp_path / "count"

    @ember.remote
    def fail(path):
        with open(path, "a") as f:
            f.write("x")
        raise RuntimeError("once")

    with pytest.raises(RuntimeError):
        ember.get(fail.remote(str(counter)))
    assert open(counter).read() == "x"


@ember.remote
def sleeper(seconds):
    time.sleep(seconds)
    return "finished"


def test_cancel_running_task(cluster):
    ref = sleeper.remote(60)
    time.sleep(0.5)
    ember.cancel(ref)
    with pytest.raises(TaskCancelledError):
        ember.get(ref, timeout=10)


def test_force_cancel_kills_the_worker(cluster):
    ref = sleeper.remote(60)
    time.sleep(0.5)
    ember.cancel(ref, force=True)
    with pytest.raises(TaskCancelledError):
        ember.get(ref, timeout=10)
    assert ember.get(sleeper.remote(0)) == "finished"


def test_cancel_queued_task_never_runs(cluster, tmp_path):
    blockers = [sleeper.options(num_cpus=4).remote(1.5)]
    marker = tmp_path / "ran"

    @ember.remote(num_cpus=4)
    def should_not_run(path):
        open(path, "w").close()

    queued = should_not_run.remote(str(marker))
    time.sleep(0.2)
    ember.cancel(queued)
    with pytest.raises(TaskCancelledError):
        ember.get(queued, timeout=10)
    ember.get(blockers)
    time.sleep(0.2)
    assert not marker.exists()


def test_cancel_finished_task_is_harmless(cluster):
    ref = sleeper.remote(0)
    assert ember.get(ref) == "finished"
    ember.cancel(ref)
    assert ember.get(ref) == "finished"
