"""A runtime_env is checked the same way at every door (CLI, client, head, operator), and a
bad one is refused naming the field."""

from __future__ import annotations

import pytest

from ember.runtime.wire import runtime_env
from ember.runtime.wire.runtime_env import RuntimeEnvError


def test_rays_fields_pass_as_they_are() -> None:
    value = {
        "working_dir": "ember-pkg://" + "0" * 64 + ".zip",
        "py_modules": ["./lib"],
        "excludes": ["*.log"],
        "env_vars": {"A": "1"},
        "pip": {"packages": ["requests==2.32.0"], "pip_check": False},
        "config": {"setup_timeout_seconds": 600, "eager_install": True},
    }
    assert runtime_env.validate(value) == value
    assert runtime_env.parse_json(runtime_env.to_json(value)) == value
    assert runtime_env.validate(None) == {} and runtime_env.parse_json("") == {}


@pytest.mark.parametrize(("value", "says"), [
    ({"env_vars": {"A": 1}}, "runtime_env.env_vars.A must be a string"),
    ({"env_vars": ["A=1"]}, "runtime_env.env_vars must be an object"),
    ({"working_dir": 3}, "runtime_env.working_dir must be a non-empty string"),
    ({"py_modules": "lib"}, "runtime_env.py_modules must be a list"),
    ({"pip": ["a"], "uv": ["b"]}, "both pip and uv"),
    ({"pip": {"pakages": ["a"]}}, "needs 'packages'"),
    ({"conda": {"dependencies": []}}, "runtime_env.conda is not supported"),
    ({"workdir": "."}, "runtime_env.workdir is not a runtime_env field"),
    ({"config": {"setup_timeout_seconds": 0}}, "setup_timeout_seconds must be a positive"),
    ({"config": {"timeout": 1}}, "runtime_env.config.timeout is not a field"),
    ([1, 2], "must be a JSON object"),
])
def test_a_bad_runtime_env_is_refused_naming_the_field(value: object, says: str) -> None:
    with pytest.raises(RuntimeEnvError, match=says.replace(".", r"\.").replace("(", r"\(")):
        runtime_env.validate(value)


def test_bad_json_is_said_so() -> None:
    with pytest.raises(RuntimeEnvError, match="not valid JSON"):
        runtime_env.parse_json("{env_vars: 1}", "--runtime-env-json")
