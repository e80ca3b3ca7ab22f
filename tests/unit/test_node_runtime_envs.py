"""A node's runtime_envs (``ember.runtime.node.runtime_envs``), with packages handed in by the
test: each part is made once and shared, a failure is said and remembered (not tried again and
again), a wheel among py_modules is installed, and the cache goes once no job uses it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ember.runtime.node import runtime_envs
from ember.runtime.node.runtime_envs import Environment, RuntimeEnvs
from ember.runtime.node.worker_pool import WorkerSetup
from ember.runtime.wire import package_format
from ember.runtime.wire import runtime_env as env_spec
from tests.wheel_builder import build_wheel

JOB = b"j" * 4
OTHER_JOB = b"k" * 4


class Packages:
    """The head's packages, as the node fetches them; counts the fetches."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.fetched: list[str] = []
        self.broken = ""

    def add(self, files: dict[str, str | bytes]) -> str:
        data = package_format.pack_mapping(files)
        uri = package_format.uri_of(data)
        self.data[uri] = data
        return uri

    async def fetch(self, uri: str) -> bytes:
        self.fetched.append(uri)
        await asyncio.sleep(0.01)  # others ask meanwhile
        if self.broken:
            raise package_format.PackageError(self.broken)
        return self.data[uri]


class Node:
    def __init__(self, root: Path) -> None:
        self.packages = Packages()
        self.settled: list[Environment] = []
        self.envs = RuntimeEnvs(str(root), "node test", self.packages.fetch, self.settled.append)

    async def ready(self, env: dict[str, object], job: bytes = JOB) -> Environment:
        found = self.envs.environment(env_spec.to_json(env), job)
        while found.task is not None:
            await asyncio.sleep(0.01)
        return found


def test_a_part_is_made_once_for_every_environment_that_names_it(tmp_path: Path) -> None:
    async def scenario() -> None:
        node = Node(tmp_path)
        code = node.packages.add({"mypkg/__init__.py": "VALUE = 1\n", "data.txt": "hi"})
        plain = {"working_dir": code}
        with_vars = {"working_dir": code, "env_vars": {"A": "1"}}
        first = node.envs.environment(env_spec.to_json(plain), JOB)
        second = node.envs.environment(env_spec.to_json(with_vars), JOB)
        again = node.envs.environment(env_spec.to_json(plain), OTHER_JOB)
        assert again is first and first is not second
        first, second = await node.ready(plain), await node.ready(with_vars)
        assert node.packages.fetched == [code]  # one download for both
        assert node.envs.setups == {("working_dir", "built"): 1}
        assert first.setup is not None and second.setup is not None
        assert first.setup.cwd == second.setup.cwd and first.setup.paths == (first.setup.cwd,)
        assert Path(first.setup.cwd, "data.txt").read_text() == "hi"
        # Code only: forked by the zygote. Variables: a process of its own, the node's Python.
        assert first.setup.python == "" and second.setup.python == sys.executable
        assert second.setup.variables({})["A"] == "1"
        assert first.jobs == {JOB, OTHER_JOB}
        assert {env.key for env in node.settled} == {first.key, second.key}

    asyncio.run(scenario())


def test_a_failed_setup_is_said_remembered_and_tried_again_later(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario() -> None:
        node = Node(tmp_path)
        code = node.packages.add({"a.py": ""})
        node.packages.broken = "the head has no such package"
        env = await node.ready({"working_dir": code})
        assert not env.ready
        assert env.failure.startswith(f"node test: cannot set up runtime_env {env.key} (working_dir {code})")
        assert "the head has no such package" in env.failure
        node.packages.broken = ""
        # Asked again at once: the same answer, and no second attempt.
        assert node.envs.environment(env_spec.to_json({"working_dir": code}), JOB).failure == env.failure
        assert node.packages.fetched == [code]
        assert node.envs.setups == {("working_dir", "failed"): 1}
        # Later it is tried again, and works.
        monkeypatch.setattr(runtime_envs, "FAILURE_KEPT", 0.0)
        again = await node.ready({"working_dir": code})
        assert again is env and env.ready and not env.failure
        assert node.packages.fetched == [code, code]

    asyncio.run(scenario())


def test_a_bad_runtime_env_from_the_wire_fails_naming_the_field(tmp_path: Path) -> None:
    node = Node(tmp_path)
    env = node.envs.environment('{"env_vars": {"A": 1}}', JOB)
    assert env.failure == "node test: runtime_env.env_vars.A must be a string, not int (1)"
    local = asyncio.run(node.ready({"working_dir": "/home/me/project"}))
    assert "working_dir '/home/me/project' is neither a package URI nor an http(s) URL" in local.failure


def test_a_wheel_among_py_modules_is_installed_and_importable(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path / "dist", "embertestwheel", "1.0", "VALUE = 'installed'\n")

    async def scenario() -> WorkerSetup:
        node = Node(tmp_path / "cache")
        uri = node.packages.add({wheel.name: wheel.read_bytes()})
        plain = node.packages.add({"plainmod.py": "X = 2\n"})
        env = await node.ready({"py_modules": [uri, plain]})
        assert env.ready, env.failure
        assert node.envs.setups == {("py_module", "built"): 2, ("wheel", "built"): 1}
        assert env.setup is not None
        return env.setup

    setup = asyncio.run(scenario())
    probe = subprocess.run(
        [sys.executable, "-c", "import embertestwheel, plainmod; print(embertestwheel.VALUE, plainmod.X)"],
        env=dict(os.environ, PYTHONPATH=os.pathsep.join(setup.paths)), capture_output=True, text=True,
    )
    assert probe.stdout.split() == ["installed", "2"], probe.stderr


def test_the_cache_goes_once_no_job_asks_and_no_worker_runs(tmp_path: Path) -> None:
    async def scenario() -> None:
        node = Node(tmp_path)
        code = node.packages.add({"a.py": ""})
        shared = node.packages.add({"b.py": ""})
        first = await node.ready({"working_dir": code, "py_modules": [shared]})
        second = await node.ready({"working_dir": shared}, OTHER_JOB)
        assert first.setup is not None and second.setup is not None
        directory = Path(first.setup.cwd)
        assert await node.envs.collect([], keep=0) == []  # both jobs live
        node.envs.job_finished(JOB)
        # A worker of the environment still runs (a detached actor's, say): kept.
        assert await node.envs.collect([first.setup], keep=0) == []
        # Unused, it is kept a while: the next run of the same program finds it.
        assert await node.envs.collect([], keep=60) == []
        assert first.key in node.envs.envs
        removed = await node.envs.collect([], keep=0)
        assert removed == [str(directory)]  # the other package is still the other job's
        assert not directory.exists() and Path(second.setup.cwd).is_dir()
        assert first.key not in node.envs.envs and second.key in node.envs.envs
        node.envs.job_finished(OTHER_JOB)
        assert await node.envs.collect([], keep=0) == [second.setup.cwd]
        # Asked for again, it is set up again.
        again = await node.ready({"working_dir": code})
        assert again.ready and node.packages.fetched.count(code) == 2

    asyncio.run(scenario())


def test_uv_where_the_node_has_none_is_said(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime_envs.shutil, "which", lambda *args, **kwargs: None)
    node = Node(tmp_path)
    env = asyncio.run(node.ready({"uv": ["requests"]}))
    assert not env.ready
    assert "uv is not installed on this node (give pip instead, or put uv on the node's PATH)" in env.failure
    assert node.envs.setups == {("uv", "failed"): 1}
