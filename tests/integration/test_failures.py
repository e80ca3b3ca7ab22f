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


class Holder:
    """A value with an unpicklable member, a level down."""

    def __init__(self):
        self.name = "holder"
        self.lock = threading.Lock()


def test_unpicklable_function_fails_at_remote(cluster):
    lock = threading.Lock()

    @ember.remote
    def holds_lock():
        return lock.locked()

    with pytest.raises(TypeError) as caught:
        holds_lock.remote()
    message = str(caught.value)
    assert message.startswith("Could not serialize the function ") and "holds_lock" in message
    assert "(the variable 'lock' it uses), in a function, is a _thread.lock, which cannot be pickled" in message


def test_unpicklable_argument_fails_at_remote_naming_its_path(cluster):
    @ember.remote
    def take(x, y=None):
        return x

    with pytest.raises(TypeError) as caught:
        take.remote(threading.Lock())
    assert str(caught.value).startswith(
        "Could not serialize the arguments of "
    ) and str(caught.value).endswith(
        "take: args[0] is a _thread.lock, which cannot be pickled (cannot pickle '_thread.lock' object)"
    )
    with pytest.raises(TypeError) as caught:
        take.remote(1, y={"jobs": [0, Holder()]})
    assert str(caught.value).endswith(
        "kwargs['y']['jobs'][1].lock, in a dict, is a _thread.lock, which cannot be pickled "
        "(cannot pickle '_thread.lock' object)"
    )


def test_put_of_an_unpicklable_value_names_the_put_the_type_and_the_path(cluster):
    with pytest.raises(TypeError) as caught:
        ember.put(threading.Lock())
    assert str(caught.value) == (
        "ember.put() could not store its value: value is a _thread.lock, which cannot be pickled "
        "(cannot pickle '_thread.lock' object)"
    )
    with pytest.raises(TypeError) as caught:
        ember.put({"config": {"holders": [Holder()]}})
    assert str(caught.value) == (
        "ember.put() could not store its value: value['config']['holders'][0].lock, in a dict, "
        "is a _thread.lock, which cannot be pickled (cannot pickle '_thread.lock' object)"
    )
    assert ember.get(ember.put({"still": "works"})) == {"still": "works"}


def test_unpicklable_return_value_is_a_short_task_error(cluster):
    @ember.remote
    def give_holder():
        return Holder()

    with pytest.raises(TaskError) as caught:
        ember.get(give_holder.remote())
    assert isinstance(caught.value, TypeError)
    lines = str(caught.value).splitlines()
    # The task, then the reason: where the function is, the path, the type; no ember frames.
    assert len(lines) == 2, str(caught.value)
    assert lines[0].startswith("task ") and "give_holder" in lines[0] and lines[0].endswith("failed:")
    assert lines[1].startswith("TypeError: could not serialize the return value of ")
    assert f"(defined at {__file__}, line " in lines[1]
    assert lines[1].endswith(
        ": value.lock, in a tests.integration.test_failures.Holder, is a _thread.lock, which "
        "cannot be pickled (cannot pickle '_thread.lock' object)"
    )

    @ember.remote
    class Keeper:
        def lock(self):
            return threading.Lock()

    keeper = Keeper.remote()
    with pytest.raises(TaskError) as caught:
        ember.get(keeper.lock.remote())
    assert "could not serialize the return value of Keeper.lock (defined at " in str(caught.value)
    assert str(caught.value).endswith(": value is a _thread.lock, which cannot be pickled "
                                      "(cannot pickle '_thread.lock' object)")


def test_type_names_in_messages_take_the_right_article(cluster):
    with pytest.raises(ValueError, match="it holds an int$"):
        ember.get([ember.put(1), 5])
    with pytest.raises(TypeError, match="it holds a str$"):
        ember.wait([ember.put(1), "x"])


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
