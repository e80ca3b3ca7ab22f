"""runtime_env on a real cluster: a head and two node agents on their own loopback addresses,
drivers in this process or (outside the cluster, through the head's port only) in processes of
their own. Offline throughout: the packages pip installs are wheels built by the test.

What is counted is what each node set up (``ember_runtime_env_setups_total`` on its metrics
endpoint), never how long anything took."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import ember
from ember.exceptions import ActorDiedError, RuntimeEnvSetupError
from ember.runtime import launcher, session
from ember.runtime.wire import auth
from tests.conftest import REPO, wait_until_gone
from tests.integration.test_drain import _wait_nodes
from tests.integration.test_metrics import scrape
from tests.wheel_builder import build_wheel

pytestmark = pytest.mark.slow

CACHE_KEPT = "1"  # seconds an unused environment stays on a node, here


class Cluster:
    def __init__(self) -> None:
        self.session_dir = session.new_session_dir()
        self.processes: list[launcher.LocalProcesses] = []
        self.previous = auth.token()
        auth.set_token(auth.generate())
        self.env = dict(os.environ, EMBER_TOKEN=auth.token())
        self.env.pop("EMBER_VIA_HEAD", None)
        head = launcher.start_head(self.session_dir)
        self.processes.append(head)
        self.address = f"ember://{head.head_address}"
        self.head_address = head.head_address
        saved = os.environ.get("EMBER_RUNTIME_ENV_CACHE_S")
        os.environ["EMBER_RUNTIME_ENV_CACHE_S"] = CACHE_KEPT
        try:
            for host in ("127.0.0.2", "127.0.0.3"):
                self.processes.append(launcher.start_agent(self.session_dir, self.head_address, host=host, num_cpus=2))
        finally:
            if saved is None:
                os.environ.pop("EMBER_RUNTIME_ENV_CACHE_S")
            else:
                os.environ["EMBER_RUNTIME_ENV_CACHE_S"] = saved
        _wait_nodes(self.head_address, 2)

    def setups(self) -> dict[str, Counter[tuple[str, str]]]:
        """What each node set up so far, by node host: (kind, outcome) -> count."""
        from ember import status_report

        result: dict[str, Counter[tuple[str, str]]] = {}
        for node in status_report.fetch(self.head_address).nodes:
            counts: Counter[tuple[str, str]] = Counter()
            samples = scrape(f"{node.info.host}:{node.info.metrics_port}")
            for (name, labels), value in samples.items():
                if name == "ember_runtime_env_setups_total":
                    tags = dict(labels)
                    counts[(tags["kind"], tags["outcome"])] += int(value)
            result[node.info.host] = counts
        return result

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        auth.set_token(self.previous)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    started = Cluster()
    try:
        yield started
    finally:
        ember.shutdown()
        started.stop()
    assert wait_until_gone(started.session_dir) == []
    # What the nodes set up went with them.
    assert not list(Path(started.session_dir, "runtime_envs").glob("*/*"))


@pytest.fixture
def driver(cluster: Cluster) -> Iterator[Cluster]:
    """This process as a driver of the cluster (each test gives its own job-wide runtime_env)."""
    yield cluster
    ember.shutdown()


def total(setups: dict[str, Counter[tuple[str, str]]], kind: str, outcome: str = "built") -> int:
    return sum(counts[(kind, outcome)] for counts in setups.values())


def wait_for(check: Any, what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            assert result, f"waited {timeout}s for {what}"
            return result
        time.sleep(0.1)


# ------------------------------------------------------------------ working_dir, outside driver

OUTSIDE = r"""
import json, os, sys, time
import ember

address, project = sys.argv[1], sys.argv[2]
env = {"working_dir": project, "excludes": ["secret/"]} if project != "-" else None
ember.init(address, via_head=True, runtime_env=env)

@ember.remote
def train(x):
    from mypkg.model import train
    return [train(x), open("config.txt").read(), os.path.exists("skip.tmp"), os.path.exists("secret"), os.getcwd()]

@ember.remote
class Trainer:
    def run(self, x):
        from mypkg.model import train
        return train(x)

@ember.remote
def importable():
    try:
        import mypkg
    except ModuleNotFoundError:
        return "missing"
    return "found"

if env is None:
    print(json.dumps({"plain": ember.get(importable.remote())}), flush=True)
else:
    trainer = Trainer.remote()
    print(json.dumps({"task": ember.get(train.remote(4)), "actor": ember.get(trainer.run.remote(5)),
                      "parallel": ember.get([train.remote(i) for i in range(6)])}), flush=True)
sys.stdin.readline()   # the test looks at the nodes while this job lives
ember.shutdown()
"""


def _project(root: Path) -> Path:
    files = {
        "mypkg/__init__.py": "",
        "mypkg/model.py": "def train(x):\n    return x * 10\n",
        "config.txt": "epochs=3",
        ".gitignore": "*.tmp\n",
        "skip.tmp": "left out by .gitignore",
        "secret/key.txt": "left out by excludes",
    }
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def _start_outside(cluster: Cluster, project: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", OUTSIDE, cluster.address, project],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, cwd=str(REPO), env=cluster.env,
    )


def _result(driver: subprocess.Popen[str]) -> dict[str, Any]:
    assert driver.stdout is not None
    line = driver.stdout.readline()
    if not line:
        driver.kill()
        _, err = driver.communicate(timeout=30)
        raise AssertionError(f"the driver said nothing; its stderr:\n{err}")
    return dict(json.loads(line))


def _finish(driver: subprocess.Popen[str]) -> None:
    assert driver.stdin is not None
    driver.stdin.write("bye\n")
    driver.stdin.flush()
    _, err = driver.communicate(timeout=60)
    assert driver.returncode == 0, err


def test_a_working_dir_reaches_tasks_and_actors_of_an_outside_driver_once_per_node(
    cluster: Cluster, tmp_path: Path
) -> None:
    project = _project(tmp_path / "project")
    # Without a runtime_env, the cluster has no way to the driver's modules.
    plain = _start_outside(cluster, "-")
    try:
        assert _result(plain) == {"plain": "missing"}
    finally:
        _finish(plain)

    first = _start_outside(cluster, str(project))
    second = None
    try:
        seen = _result(first)
        value, config, skipped, secret, cwd = seen["task"]
        assert (value, config, skipped, secret) == (40, "epochs=3", False, False)
        assert seen["actor"] == 50
        assert [row[0] for row in seen["parallel"]] == [i * 10 for i in range(6)]
        # The task ran in the node's unpacked copy, not in the driver's directory.
        assert cwd != str(project) and cwd.startswith(os.path.join(cluster.session_dir, "runtime_envs"))
        # A second job with the same code while the first lives: nothing is unpacked again.
        second = _start_outside(cluster, str(project))
        assert _result(second)["task"][0] == 40
        setups = cluster.setups()
        assert 1 <= total(setups, "working_dir") <= len(setups)
        assert all(counts[("working_dir", "built")] <= 1 for counts in setups.values()), setups
    finally:
        _finish(first)
        if second is not None:
            _finish(second)
    # No job uses the code any more: it leaves the node's disk.
    wait_for(lambda: not os.path.exists(cwd), f"{cwd} to be collected")


# ------------------------------------------------------------------ env_vars


@ember.remote
def variables() -> dict[str, Any]:
    return {
        "LEVEL": os.environ.get("LEVEL"),
        "JOB_ONLY": os.environ.get("JOB_ONLY"),
        "runtime_env": ember.get_runtime_context().runtime_env,
    }


@ember.remote
def parent() -> dict[str, Any]:
    return ember.get(variables.remote())  # no runtime_env of its own: it inherits its parent's


@ember.remote
class Reader:
    def read(self) -> dict[str, Any]:
        return {"LEVEL": os.environ.get("LEVEL"), "JOB_ONLY": os.environ.get("JOB_ONLY")}

    def child(self) -> dict[str, Any]:
        return ember.get(variables.remote())


def test_env_vars_reach_tasks_and_actors_merged_over_the_jobs(driver: Cluster) -> None:
    ember.init(driver.address, token=auth.token(), runtime_env={"env_vars": {"LEVEL": "job", "JOB_ONLY": "1"}})
    job = ember.get(variables.remote())
    assert (job["LEVEL"], job["JOB_ONLY"]) == ("job", "1")
    assert job["runtime_env"] == {"env_vars": {"LEVEL": "job", "JOB_ONLY": "1"}}
    assert ember.get_runtime_context().runtime_env == {"env_vars": {"LEVEL": "job", "JOB_ONLY": "1"}}

    task = ember.get(variables.options(runtime_env={"env_vars": {"LEVEL": "task"}}).remote())
    assert (task["LEVEL"], task["JOB_ONLY"]) == ("task", "1")
    nested = ember.get(parent.options(runtime_env={"env_vars": {"LEVEL": "task"}}).remote())
    assert (nested["LEVEL"], nested["JOB_ONLY"]) == ("task", "1")

    actor = Reader.options(runtime_env={"env_vars": {"LEVEL": "actor"}}).remote()
    assert ember.get(actor.read.remote()) == {"LEVEL": "actor", "JOB_ONLY": "1"}
    from_actor = ember.get(actor.child.remote())
    assert (from_actor["LEVEL"], from_actor["JOB_ONLY"]) == ("actor", "1")
    plain = Reader.remote()
    assert ember.get(plain.read.remote()) == {"LEVEL": "job", "JOB_ONLY": "1"}


# ------------------------------------------------------------------ pooling


@ember.remote
def who(label: str) -> tuple[str, int, str | None, str]:
    time.sleep(0.01)
    return label, os.getpid(), os.environ.get("POOL"), os.path.basename(os.getcwd())


def test_a_worker_of_one_environment_never_runs_anothers_task(driver: Cluster, tmp_path: Path) -> None:
    ember.init(driver.address, token=auth.token())
    code = tmp_path / "code"
    code.mkdir()
    (code / "marker.py").write_text("")
    kinds = {
        "default": who,
        "a": who.options(runtime_env={"env_vars": {"POOL": "a"}}),
        "b": who.options(runtime_env={"env_vars": {"POOL": "b"}}),
        "code": who.options(runtime_env={"working_dir": str(code)}),  # forked by the zygote
    }
    rows = []
    for _ in range(4):
        refs = [function.remote(label) for _ in range(3) for label, function in kinds.items()]
        rows += ember.get(refs)
    labels_of: dict[int, set[str]] = {}
    for label, pid, pool, cwd in rows:
        labels_of.setdefault(pid, set()).add(label)
        assert pool == {"a": "a", "b": "b"}.get(label), (label, pool)
        # A worker of the code's environment runs in the node's copy, named by its hash.
        assert (len(cwd) == 64) == (label == "code"), (label, cwd)
    assert all(len(labels) == 1 for labels in labels_of.values()), labels_of
    # Workers were reused within their environment (else the test would show nothing).
    counts = Counter(pid for _, pid, _, _ in rows)
    assert max(counts.values()) > 1
    assert {label for labels in labels_of.values() for label in labels} == set(kinds)


# ------------------------------------------------------------------ pip


@ember.remote
def installed() -> tuple[str, str, bool]:
    import embertestpkg
    import numpy

    return embertestpkg.VALUE, sys.prefix, bool(numpy.__version__)


@ember.remote
class Installed:
    def value(self) -> str:
        import embertestpkg

        return str(embertestpkg.VALUE)


def test_pip_installs_a_wheel_built_here_once_per_node_with_the_clusters_packages(
    driver: Cluster, tmp_path: Path
) -> None:
    wheels = tmp_path / "wheels"
    build_wheel(wheels, "embertestpkg", "1.0", "VALUE = 'from the wheel'\n")
    pip = ["--no-index", f"--find-links {wheels}", "embertestpkg==1.0"]
    before = driver.setups()
    ember.init(driver.address, token=auth.token(), runtime_env={"pip": pip})
    results = ember.get([installed.remote() for _ in range(6)])
    assert {value for value, _, _ in results} == {"from the wheel"}
    prefixes = {prefix for _, prefix, _ in results}
    assert all(numpy_ok for _, _, numpy_ok in results)  # the cluster's numpy, seen from the venv
    assert all(os.path.join("runtime_envs") in prefix and "venvs" in prefix for prefix in prefixes)
    actor = Installed.remote()
    assert ember.get(actor.value.remote()) == "from the wheel"
    # Another environment with the same requirements shares the virtualenv.
    other = installed.options(runtime_env={"env_vars": {"OTHER": "1"}})
    assert ember.get(other.remote())[1] in prefixes
    after = driver.setups()
    built = total(after, "pip") - total(before, "pip")
    assert 1 <= built <= len(after)
    assert all(after[host][("pip", "built")] - before[host][("pip", "built")] <= 1 for host in after)


def test_a_wheel_in_py_modules_is_installed_on_the_nodes(driver: Cluster, tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path / "dist", "embermodwheel", "2.0", "VALUE = 'py_modules wheel'\n")
    ember.init(driver.address, token=auth.token(), runtime_env={"py_modules": [str(wheel)]})

    @ember.remote
    def value() -> str:
        import embermodwheel

        return str(embermodwheel.VALUE)

    assert ember.get(value.remote()) == "py_modules wheel"


def test_a_failing_pip_spec_fails_the_task_and_the_actor_with_the_installers_tail(driver: Cluster) -> None:
    ember.init(driver.address, token=auth.token())
    broken = {"pip": ["--no-index", "ember-no-such-package==9.9"]}
    before = driver.setups()
    with pytest.raises(RuntimeEnvSetupError) as failed:
        ember.get(variables.options(runtime_env=broken).remote(), timeout=120)
    message = str(failed.value)
    assert "cannot set up runtime_env" in message and "pip [--no-index ember-no-such-package==9.9]" in message
    assert "pip install failed (exit code 1)" in message
    assert "No matching distribution found for ember-no-such-package==9.9" in message  # the tail
    # Asked again, it fails the same way without installing again.
    with pytest.raises(RuntimeEnvSetupError, match="No matching distribution"):
        ember.get(variables.options(runtime_env=broken).remote(), timeout=60)
    actor = Reader.options(runtime_env=broken).remote()
    with pytest.raises(RuntimeEnvSetupError, match="No matching distribution") as dead:
        ember.get(actor.read.remote(), timeout=60)
    assert isinstance(dead.value, ActorDiedError)
    after = driver.setups()
    failures = total(after, "pip", "failed") - total(before, "pip", "failed")
    assert 1 <= failures <= len(after)


def test_a_setup_past_its_timeout_is_stopped_and_said(driver: Cluster, tmp_path: Path) -> None:
    silent = socket.socket()  # an index that accepts and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    port = silent.getsockname()[1]
    try:
        ember.init(driver.address, token=auth.token())
        env = {
            "pip": {"packages": [f"--index-url http://127.0.0.1:{port}/simple", "ember-slow-package"],
                    "pip_install_options": ["--timeout", "120", "--retries", "0"]},
            "config": {"setup_timeout_seconds": 2},
        }
        with pytest.raises(RuntimeEnvSetupError, match=r"took longer than 2s \(config.setup_timeout_seconds\); it was stopped"):
            ember.get(variables.options(runtime_env=env).remote(), timeout=120)
    finally:
        silent.close()
    # The installer went with the deadline.
    assert wait_for(lambda: not _installers_of(driver.session_dir), "the installer to be stopped", 10)


def _installers_of(session_dir: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                command = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "pip" in command and "install" in command and os.path.join(session_dir, "runtime_envs") in command:
            found.append(int(entry))
    return found


def test_a_job_submitted_with_a_working_dir_gives_it_to_its_tasks(cluster: Cluster, tmp_path: Path) -> None:
    """``ember job submit --working-dir``: the entrypoint's init() takes the job's runtime_env,
    so its tasks import the project's modules too."""
    from ember.job_submission import JobStatus, JobSubmissionClient

    project = _project(tmp_path / "project")
    (project / "main.py").write_text(textwrap.dedent("""
        import ember
        ember.init()

        @ember.remote
        def train(x):
            from mypkg.model import train
            return train(x)

        print("result", ember.get(train.remote(7)), flush=True)
    """))
    client = JobSubmissionClient(cluster.address, token=auth.token())
    job = client.submit_job(entrypoint="python main.py", runtime_env={"working_dir": str(project), "env_vars": {"A": "1"}})
    wait_for(lambda: client.get_job_status(job) in (JobStatus.SUCCEEDED, JobStatus.FAILED), "the job to end", 120)
    logs = client.get_job_logs(job)
    assert client.get_job_status(job) == JobStatus.SUCCEEDED, logs
    assert "result 70" in logs


def test_requirements_that_break_embers_worker_fail_the_setup_saying_so(driver: Cluster, tmp_path: Path) -> None:
    """A pin that shadows one of ember's own dependencies is found while setting up, not by
    workers that die one after the other."""
    wheels = tmp_path / "wheels"
    build_wheel(wheels, "cloudpickle", "99.0", "raise ImportError('this cloudpickle is broken on purpose')\n")
    ember.init(driver.address, token=auth.token())
    env = {"pip": ["--no-index", f"--find-links {wheels}", "cloudpickle==99.0"]}
    with pytest.raises(RuntimeEnvSetupError) as failed:
        ember.get(variables.options(runtime_env=env).remote(), timeout=120)
    message = str(failed.value)
    assert "ember's worker with the environment's packages" in message
    assert "this cloudpickle is broken on purpose" in message


def test_a_worker_that_cannot_start_in_its_environment_fails_it_once(driver: Cluster) -> None:
    """An environment whose workers die before they are ready (here the interpreter cannot find
    its standard library) fails its tasks with what the worker printed, and is not started
    again and again."""
    ember.init(driver.address, token=auth.token())
    env = {"env_vars": {"PYTHONHOME": "/nonexistent/ember-test"}}
    with pytest.raises(RuntimeEnvSetupError) as failed:
        ember.get(variables.options(runtime_env=env).remote(), timeout=60)
    message = str(failed.value)
    assert "before it was ready" in message and "env_vars PYTHONHOME" in message
    assert "/nonexistent/ember-test" in message  # from the dying interpreter's own words
    with pytest.raises(RuntimeEnvSetupError, match="before it was ready"):
        ember.get(variables.options(runtime_env=env).remote(), timeout=60)
