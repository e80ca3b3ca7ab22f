import pickle

import pytest

from ember.runtime.objects.exceptions import GetTimeoutError, TaskError, describe_exit


class Weird(Exception):
    def __init__(self, a, b):
        super().__init__(a)
        self.b = b


def _error(cause):
    return TaskError("f", "Traceback ...\nValueError: x", cause, 123, "host")


def test_task_error_is_an_instance_of_its_cause():
    error = _error(ValueError("x")).as_instanceof_cause()
    assert isinstance(error, ValueError) and isinstance(error, TaskError)
    assert type(error).__name__ == "TaskError(ValueError)"
    assert "pid=123" in str(error) and "Traceback" in str(error)
    with pytest.raises(ValueError):
        raise error


def test_fields_of_the_cause_survive():
    error = _error(Weird("a", "b")).as_instanceof_cause()
    assert isinstance(error, Weird) and error.b == "b"
    os_error = _error(FileNotFoundError(2, "missing", "/x")).as_instanceof_cause()
    assert os_error.filename == "/x" and os_error.errno == 2


def test_nested_task_errors_take_the_root_type():
    inner = _error(KeyError("k"))
    outer = TaskError("g", "outer traceback", inner, 1, "h").as_instanceof_cause()
    assert isinstance(outer, KeyError)


def test_task_errors_pickle_as_plain_task_errors():
    dual = _error(ValueError("x")).as_instanceof_cause()
    again = pickle.loads(pickle.dumps(dual))
    assert type(again) is TaskError and isinstance(again.cause, ValueError)


def test_timeout_is_a_timeout():
    assert issubclass(GetTimeoutError, TimeoutError)


def test_describe_exit():
    assert describe_exit(-9) == "killed by SIGKILL"
    assert describe_exit(3) == "exit code 3"
