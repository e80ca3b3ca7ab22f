"""Which runtime_env a task runs in: Ray's inheritance (env_vars merged, the rest replaced), the
job's and init()'s merged with conflicts named, and an environment's identity."""

from __future__ import annotations

import pytest

from ember.runtime.wire import runtime_env
from ember.runtime.wire.runtime_env import RuntimeEnvError

URI = "ember-pkg://" + "1" * 64 + ".zip"
OTHER = "ember-pkg://" + "2" * 64 + ".zip"


def test_a_child_merges_env_vars_and_replaces_every_other_field() -> None:
    parent = {"working_dir": URI, "env_vars": {"A": "parent", "B": "parent"}, "pip": ["x"]}
    child = {"env_vars": {"B": "child", "C": "child"}, "py_modules": [OTHER], "uv": ["y"]}
    assert runtime_env.inherit(parent, child) == {
        "working_dir": URI,
        "env_vars": {"A": "parent", "B": "child", "C": "child"},
        "py_modules": [OTHER],
        "uv": ["y"],  # an environment has pip or uv: the child's replaces the parent's
    }
    assert runtime_env.inherit(parent, {"working_dir": OTHER})["working_dir"] == OTHER
    assert runtime_env.inherit(parent, {}) == parent
    assert runtime_env.inherit({}, child) == child


def test_the_jobs_and_inits_runtime_envs_merge_and_a_conflict_is_named() -> None:
    job = {"working_dir": URI, "env_vars": {"A": "1"}}
    assert runtime_env.merge_job(job, {"env_vars": {"B": "2"}, "pip": ["x"]}) == {
        "working_dir": URI, "env_vars": {"A": "1", "B": "2"}, "pip": ["x"],
    }
    assert runtime_env.merge_job(job, {"working_dir": URI}) == job  # the same value is no conflict
    with pytest.raises(RuntimeEnvError, match=r"runtime_env.working_dir is given both by the job"):
        runtime_env.merge_job(job, {"working_dir": OTHER})
    with pytest.raises(RuntimeEnvError, match=r"runtime_env.env_vars.A is '1' in the job's runtime_env and '9'"):
        runtime_env.merge_job(job, {"env_vars": {"A": "9"}})
    overridden = runtime_env.merge_job(job, {"working_dir": OTHER, "env_vars": {"A": "9"}}, override=True)
    assert overridden == {"working_dir": OTHER, "env_vars": {"A": "9"}}


def test_identity_names_what_makes_a_worker() -> None:
    env = {"working_dir": URI, "env_vars": {"A": "1"}}
    assert runtime_env.identity({}) == ""
    assert runtime_env.identity({"config": {"setup_timeout_seconds": 5}}) == ""
    # How it is set up is not what it is: the same workers serve both.
    assert runtime_env.identity({**env, "config": {"setup_timeout_seconds": 5}}) == runtime_env.identity(env)
    assert runtime_env.identity({**env, "excludes": ["*.log"]}) == runtime_env.identity(env)
    assert runtime_env.identity({**env, "env_vars": {"A": "2"}}) != runtime_env.identity(env)
    assert runtime_env.identity({"pip": ["x"]}) != runtime_env.identity({"uv": ["x"]})
    assert len(runtime_env.identity(env)) == 16


def test_describe_says_the_gist() -> None:
    text = runtime_env.describe({"working_dir": URI, "env_vars": {"B": "1", "A": "2"}, "pip": ["requests", "six"]})
    assert text == f"working_dir {URI}; env_vars A, B; pip [requests six]"
    assert runtime_env.describe({"pip": {"packages": ["x" * 200]}}).endswith("...]")
