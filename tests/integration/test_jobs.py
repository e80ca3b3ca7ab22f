"""``ember job`` and ``JobSubmissionClient`` against a real head and node agent on loopback.

Jobs are submitted as a user types them (the CLI in a process of its own) and through the
Python client; their entrypoints are real programs that call ``ember.init()`` and run tasks.
Nothing here measures time: a test waits for what it expects (a line of output, a status) with
generous limits, and a job that must still be running waits on a file the test creates.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from ember.job_submission import JobStatus, JobSubmissionClient
from ember.runtime import launcher, session
from ember.runtime.wire import auth
from ember.runtime.wire.protocol import ember_pb2 as pb
from ember.runtime.wire.protocol import ember_pb2_grpc as rpc_pb
from tests.conftest import REPO, command_line, processes_of_session, wait_until_gone

pytestmark = pytest.mark.slow

WAIT = 60.0


def eventually(check: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class Cluster:
    """A head and a node agent with a token of their own; the CLI talks to them by address."""

    def __init__(self, state_dir: str | None = None, port: int = 0, cpus: float = 2) -> None:
        self.session_dir = session.new_session_dir()
        self.state_dir = state_dir
        self.token = auth.generate()
        self.processes = [launcher.start(
            self.session_dir, head_port=port, num_cpus=cpus, state_dir=state_dir, token=self.token,
            dashboard_port=-1,
        )]
        self.address = self.processes[0].head_address
        self.env = dict(os.environ, EMBER_TOKEN=self.token, EMBER_ADDRESS=f"ember://{self.address}")
        self.env.pop("EMBER_TOKEN_FILE", None)

    def client(self, **kwargs: Any) -> JobSubmissionClient:
        return JobSubmissionClient(f"ember://{self.address}", token=self.token, **kwargs)

    def ember(self, *args: str, env: dict[str, str] | None = None, timeout: float = 120.0,
              cwd: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "ember.cli", *args], capture_output=True, text=True,
            timeout=timeout, env={**self.env, **(env or {})}, cwd=cwd or str(REPO),
        )

    def wait_for(self, submission_id: str, status: JobStatus | None = None) -> Any:
        client = self.client()

        def ended() -> Any:
            info = client.get_job_info(submission_id)
            done = info.status == status if status else info.status.is_terminal()
            return info if done else None

        return eventually(ended, f"job {submission_id} {status or 'to end'}")

    def wait_for_output(self, submission_id: str, text: str) -> str:
        client = self.client()
        return eventually(lambda: text in (out := client.get_job_logs(submission_id)) and out,
                          f"{text!r} in the output of job {submission_id}")

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    started = Cluster()
    try:
        yield started
    finally:
        started.stop()
    assert wait_until_gone(started.session_dir, timeout=30) == []


DRIVER = textwrap.dedent(
    """
    import os
    import ember
    ember.init()
    context = ember.get_runtime_context()

    @ember.remote
    def square(x):
        return x * x

    print("sum", sum(ember.get([square.remote(i) for i in range(10)])))
    print("submission", context.get_submission_id())
    print("greeting", os.environ.get("GREETING"))
    print("runtime_env", context.runtime_env)
    """
)


def test_submit_waits_streams_the_output_and_succeeds(cluster: Cluster) -> None:
    result = cluster.ember(
        "job", "submit", "--submission-id", "first", "--runtime-env-json",
        '{"env_vars": {"GREETING": "hello"}}', "--", "python", "-c", DRIVER,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    out = result.stdout
    assert "Job 'first' submitted" in out
    assert "sum 285" in out and "submission first" in out and "greeting hello" in out
    assert "runtime_env {'env_vars': {'GREETING': 'hello'}}" in out
    assert "Job 'first' SUCCEEDED" in out
    info = cluster.client().get_job_info("first")
    assert info.status == JobStatus.SUCCEEDED and info.driver_exit_code == 0
    assert info.start_time and info.end_time and info.submit_time
    assert info.submit_time <= info.start_time <= info.end_time
    assert info.runtime_env == {"env_vars": {"GREETING": "hello"}}
    assert "head's node" in (info.driver_node_id or "")


def test_a_failing_entrypoint_fails_the_job_and_the_command(cluster: Cluster) -> None:
    result = cluster.ember("job", "submit", "--submission-id", "fails", "--",
                           "echo 'about to fail' >&2; exit 3")
    assert result.returncode == 1
    assert "about to fail" in result.stdout  # stderr too, in order, in the job's output
    assert "Job 'fails' FAILED: the entrypoint exited with code 3" in result.stdout
    info = cluster.client().get_job_info("fails")
    assert (info.status, info.error_type, info.driver_exit_code) == (JobStatus.FAILED, "ENTRYPOINT_FAILED", 3)
    status = cluster.ember("job", "status", "fails")
    assert "FAILED" in status.stdout and "exit code: 3" in status.stdout


def test_logs_follow_streams_while_the_job_runs(cluster: Cluster, tmp_path: Path) -> None:
    gate = tmp_path / "go"
    script = (f"import os, time; print('step 1', flush=True)\n"
              f"while not os.path.exists({str(gate)!r}): time.sleep(0.05)\nprint('step 2')")
    submitted = cluster.ember("job", "submit", "--no-wait", "--submission-id", "follow", "--",
                              "python", "-c", script)
    assert submitted.returncode == 0, submitted.stderr
    follower = subprocess.Popen(
        [sys.executable, "-m", "ember.cli", "job", "logs", "-f", "follow"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cluster.env, cwd=str(REPO),
    )
    try:
        assert follower.stdout is not None
        assert follower.stdout.readline().strip() == "step 1"
        assert follower.poll() is None  # the job waits on the gate: so does the follower
        gate.touch()
        rest, _ = follower.communicate(timeout=WAIT)
    finally:
        follower.kill()
    assert rest.strip() == "step 2" and follower.returncode == 0
    assert cluster.wait_for("follow").status == JobStatus.SUCCEEDED
    assert cluster.ember("job", "logs", "follow").stdout == "step 1\nstep 2\n"


def test_stop_sends_sigterm_first(cluster: Cluster) -> None:
    script = ("import signal, sys, time\n"
              "def bye(*_):\n    print('got SIGTERM', flush=True); sys.exit(0)\n"
              "signal.signal(signal.SIGTERM, bye)\nprint('ready', flush=True)\ntime.sleep(600)")
    client = cluster.client()
    client.submit_job(entrypoint=f"python -c {shlex.quote(script)}", submission_id="polite")
    cluster.wait_for_output("polite", "ready")
    stopped = cluster.ember("job", "stop", "polite")
    assert stopped.returncode == 0 and "Job 'polite' STOPPED" in stopped.stdout
    info = client.get_job_info("polite")
    assert info.status == JobStatus.STOPPED and info.driver_exit_code == 0
    assert client.get_job_logs("polite") == "ready\ngot SIGTERM\n"
    assert client.stop_job("polite") is False  # it ended already


def test_stop_kills_an_entrypoint_that_ignores_sigterm_after_the_grace_period(cluster: Cluster) -> None:
    script = ("import os, signal, subprocess, time; signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
              "child = subprocess.Popen(['sleep', '600'])\n"
              "print('ready', os.getpid(), child.pid, flush=True); time.sleep(600)")
    client = cluster.client()
    client.submit_job(entrypoint=f"python -c {shlex.quote(script)}", submission_id="stubborn")
    line = cluster.wait_for_output("stubborn", "ready").split()
    pids = [int(line[1]), int(line[2])]
    assert all(alive(pid) for pid in pids)
    assert client.stop_job("stubborn", grace_period_s=1.0) is True
    info = cluster.wait_for("stubborn")
    assert info.status == JobStatus.STOPPED and info.driver_exit_code == -signal.SIGKILL
    assert f"killed by signal {int(signal.SIGKILL)}" in info.message
    eventually(lambda: not any(alive(pid) for pid in pids), "the entrypoint and its child gone")


def test_status_list_and_delete(cluster: Cluster, tmp_path: Path) -> None:
    gate = tmp_path / "go"
    client = cluster.client()
    client.submit_job(entrypoint=f"while [ ! -e {gate} ]; do sleep 0.05; done; echo done",
                      submission_id="listed", metadata={"owner": "tests"})
    cluster.wait_for("listed", JobStatus.RUNNING)
    with pytest.raises(RuntimeError, match="only a job that ended can be deleted"):
        client.delete_job("listed")
    deleted = cluster.ember("job", "delete", "listed")
    assert deleted.returncode == 1 and "stop it first" in deleted.stderr
    listing = cluster.ember("job", "list").stdout
    assert "listed" in listing and "RUNNING" in listing
    with pytest.raises(RuntimeError, match="exists already"):
        client.submit_job(entrypoint="true", submission_id="listed")
    gate.touch()
    assert cluster.wait_for("listed").status == JobStatus.SUCCEEDED
    assert [j.metadata for j in client.list_jobs() if j.submission_id == "listed"] == [{"owner": "tests"}]
    assert client.delete_job("listed") is True
    assert "listed" not in [j.submission_id for j in client.list_jobs()]
    with pytest.raises(RuntimeError, match="no job with submission id 'listed'"):
        client.get_job_info("listed")
    missing = cluster.ember("job", "logs", "listed")
    assert missing.returncode == 1 and "no job with submission id 'listed'" in missing.stderr


@pytest.mark.parametrize(("args", "says"), [
    (["--submission-id", "../etc", "--", "true"], "submission id '../etc'"),
    (["--runtime-env-json", '{"env_vars": {"A": 1}}', "--", "true"], "runtime_env.env_vars.A must be a string"),
    (["--runtime-env-json", '{"conda": "env"}', "--", "true"], "runtime_env.conda is not supported"),
    (["--entrypoint-resources", '{"CPU": -1}', "--", "true"], "'CPU': -1"),
    (["--working-dir", "/no/such/dir", "--", "true"], "does not exist on this machine"),
    ([], "give the command to run"),
])
def test_bad_submissions_are_refused_naming_what_is_wrong(cluster: Cluster, args: list[str], says: str) -> None:
    before = len(cluster.client().list_jobs())
    result = cluster.ember("job", "submit", *args)
    assert result.returncode in (1, 2)
    assert says in result.stderr, result.stderr
    assert len(cluster.client().list_jobs()) == before


def _project(root: Path) -> Path:
    files = {
        "myproject/__init__.py": "",
        "myproject/helper.py": "def value():\n    return 7\n",
        "myproject/train.py": textwrap.dedent(
            """
            import os
            import ember
            from myproject import helper
            ember.init()
            print("files", sorted(os.listdir(".")))
            print("helper", helper.value())
            print("working_dir", ember.get_runtime_context().runtime_env["working_dir"])
            """
        ),
        ".gitignore": "data/\n",
        "data/big.bin": "x" * 5000,
        "notes/todo.txt": "later",
        "README.txt": "a project",
    }
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_a_working_dir_is_uploaded_once_and_the_entrypoint_runs_in_it(cluster: Cluster, tmp_path: Path) -> None:
    project = _project(tmp_path / "project")
    client = cluster.client()
    env = {"working_dir": str(project), "excludes": ["notes/"]}
    first = client.submit_job(entrypoint="python -m myproject.train", runtime_env=env)
    second = client.submit_job(entrypoint="python -m myproject.train", runtime_env=env)
    for submission_id in (first, second):
        assert cluster.wait_for(submission_id).status == JobStatus.SUCCEEDED, client.get_job_logs(submission_id)
    out = client.get_job_logs(first)
    assert "files ['.gitignore', 'README.txt', 'myproject']" in out and "helper 7" in out
    uri = client.get_job_info(first).runtime_env["working_dir"]
    assert uri.startswith("ember-pkg://") and f"working_dir {uri}" in out
    assert client.get_job_info(second).runtime_env["working_dir"] == uri
    stored = os.listdir(os.path.join(cluster.session_dir, "packages"))
    assert stored == [uri.removeprefix("ember-pkg://")]  # one package, uploaded once
    # The supervisor cleaned up what it unpacked.
    eventually(lambda: not os.path.exists(os.path.join(cluster.session_dir, "job_runs", first)),
               "the job's run directory removed")


def test_a_working_dir_too_big_is_refused_before_anything_is_sent(cluster: Cluster, tmp_path: Path) -> None:
    project = _project(tmp_path / "project")
    (project / "model.bin").write_bytes(b"\0" * 4000)
    before = len(cluster.client().list_jobs())
    result = cluster.ember("job", "submit", "--working-dir", str(project), "--", "true",
                           env={"EMBER_PACKAGE_MAX_BYTES": "2000"})
    assert result.returncode == 2
    assert "more than a package may hold (2.0 KiB, EMBER_PACKAGE_MAX_BYTES)" in result.stderr
    assert "model.bin (3.9 KiB)" in result.stderr
    assert len(cluster.client().list_jobs()) == before


def test_a_working_dir_from_a_url(cluster: Cluster, tmp_path: Path) -> None:
    import http.server
    import threading

    from ember.runtime.wire import package_format

    served = tmp_path / "served"
    served.mkdir()
    (served / "repo.zip").write_bytes(package_format.pack_mapping({
        "repo-main/app.py": "print('from the url')\n",
    }))

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(served), **kwargs)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/repo.zip"
        client = cluster.client()
        job = client.submit_job(entrypoint="python app.py", runtime_env={"working_dir": url})
        assert cluster.wait_for(job).status == JobStatus.SUCCEEDED, client.get_job_logs(job)
        assert client.get_job_logs(job) == "from the url\n"
        missing = client.submit_job(entrypoint="true", runtime_env={"working_dir": url + ".nope"})
        info = cluster.wait_for(missing)
        assert info.status == JobStatus.FAILED and info.error_type == "SETUP_FAILED"
        assert "cannot download" in info.message and "404" in info.message
    finally:
        server.shutdown()
        server.server_close()


def test_without_the_token_nothing_is_submitted(cluster: Cluster) -> None:
    before = len(cluster.client().list_jobs())
    with pytest.raises(ConnectionError, match="refused the token"):
        JobSubmissionClient(f"ember://{cluster.address}", token="not-the-token-of-this-cluster")
    refused = cluster.ember("job", "submit", "--", "true", env={"EMBER_TOKEN": "a-wrong-token-of-sixteen-or-more"})
    assert refused.returncode == 1 and "missing or wrong cluster token" in refused.stderr

    async def bare() -> grpc.StatusCode:
        channel = grpc.aio.insecure_channel(cluster.address)
        try:
            await rpc_pb.JobsStub(channel).SubmitJob(pb.JobSubmission(entrypoint="touch /tmp/pwned"), timeout=10)
        except grpc.aio.AioRpcError as error:
            return error.code()
        finally:
            await channel.close()
        return grpc.StatusCode.OK

    assert asyncio.run(bare()) == grpc.StatusCode.UNAUTHENTICATED
    assert len(cluster.client().list_jobs()) == before


def test_an_entrypoint_with_resources_runs_on_a_node_that_has_them(cluster: Cluster, tmp_path: Path) -> None:
    extra = launcher.start_agent(
        cluster.session_dir, cluster.address, num_cpus=1, resources={"special": 1}, token=cluster.token,
    )
    cluster.processes.append(extra)

    def joined() -> bool:
        view = _ask_head(cluster, "GetClusterView", pb.Empty(), rpc_pb.HeadStub)
        return any(n.alive and n.info.address == extra.agent_address for n in view.nodes)

    eventually(joined, "the node with the special resource to join")  # else no node has it: infeasible
    gate = tmp_path / "go"
    script = textwrap.dedent(
        f"""
        import os, time, ember
        ember.init()
        print("special free while it runs:", ember.available_resources().get("special", 0), flush=True)
        while not os.path.exists({str(gate)!r}):
            time.sleep(0.05)
        """
    )
    client = cluster.client()
    job = client.submit_job(entrypoint=f"python -c {shlex.quote(script)}",
                            entrypoint_resources={"special": 1})
    out = cluster.wait_for_output(job, "special free")
    assert "special free while it runs: 0" in out
    info = client.get_job_info(job)
    assert info.status == JobStatus.RUNNING and info.entrypoint_resources == {"special": 1.0}
    assert extra.agent_address in (info.driver_node_id or "")
    gate.touch()
    assert cluster.wait_for(job).status == JobStatus.SUCCEEDED

    def special_free() -> bool:
        view = _ask_head(cluster, "GetClusterView", pb.Empty(), rpc_pb.HeadStub)
        return any(n.available.quantities.get("special") == 1.0 for n in view.nodes if n.alive)

    eventually(special_free, "the entrypoint's resources given back")
    nowhere = client.submit_job(entrypoint="true", entrypoint_num_cpus=64)
    info = cluster.wait_for(nowhere)
    assert info.status == JobStatus.FAILED and info.error_type == "SUPERVISOR_FAILED"
    assert "could not be placed" in info.message and "{CPU: 64}" in info.message


def test_a_client_outside_reaches_jobs_through_the_client_port_alone(cluster: Cluster, tmp_path: Path) -> None:
    """A laptop behind ``kubectl port-forward``: one forwarded port, the head's; submit with a
    working dir, follow the output, stop a job."""
    forward = PortForward(cluster.address)
    try:
        env = {"EMBER_ADDRESS": f"ember://127.0.0.1:{forward.port}"}
        project = _project(tmp_path / "project")
        done = cluster.ember("job", "submit", "--working-dir", ".", "--", "python", "-m", "myproject.train",
                             env=env, cwd=str(project))
        assert done.returncode == 0, done.stderr
        assert "helper 7" in done.stdout
        long = cluster.ember("job", "submit", "--no-wait", "--submission-id", "outside-long", "--",
                             "echo started; sleep 600", env=env)
        assert long.returncode == 0
        cluster.wait_for_output("outside-long", "started")
        stop = cluster.ember("job", "stop", "outside-long", env=env)
        assert "STOPPED" in stop.stdout
        logs = cluster.ember("job", "logs", "-f", "outside-long", env=env)
        assert logs.stdout.startswith("started\n")  # then the shell says its sleep was terminated
        assert forward.connections >= 4
    finally:
        forward.close()


class PortForward:
    """What ``kubectl port-forward`` does for a test: a local port whose connections go to one
    address, byte for byte."""

    def __init__(self, target: str) -> None:
        import socket
        import threading

        self.host, _, port = target.rpartition(":")
        self.target_port = int(port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket
        import threading

        while True:
            try:
                inside, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            outside = socket.create_connection((self.host, self.target_port))
            for a, b in ((inside, outside), (outside, inside)):
                threading.Thread(target=self._copy, args=(a, b), daemon=True).start()

    @staticmethod
    def _copy(source: Any, sink: Any) -> None:
        import socket

        try:
            while data := source.recv(1 << 16):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.listener.close()


# ---------------------------------------------------------------------- head restarts


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


GATED = "echo before; while [ ! -e {gate} ]; do sleep 0.05; done; echo after"


def test_a_head_restart_with_a_state_dir_keeps_records_and_takes_the_running_job_back(tmp_path: Path) -> None:
    port = _free_port()
    cluster = Cluster(state_dir=str(tmp_path / "state"), port=port)
    gate = tmp_path / "go"
    try:
        client = cluster.client()
        client.submit_job(entrypoint="echo finished before", submission_id="earlier")
        cluster.wait_for("earlier", JobStatus.SUCCEEDED)
        client.submit_job(entrypoint=GATED.format(gate=gate), submission_id="across")
        cluster.wait_for_output("across", "before")
        started = client.get_job_info("across")
        entrypoint = _entrypoint_pid(cluster, "across")
        head = cluster.processes[0].processes[0]
        head.kill()
        head.wait()
        assert alive(entrypoint)  # the head is gone; the job goes on
        restarted = launcher.start_head(
            cluster.session_dir, port=port, state_dir=cluster.state_dir, token=cluster.token,
        )
        cluster.processes.append(restarted)
        client = cluster.client()
        earlier = client.get_job_info("earlier")
        assert earlier.status == JobStatus.SUCCEEDED and client.get_job_logs("earlier") == "finished before\n"
        assert client.get_job_info("across").status == JobStatus.RUNNING
        gate.touch()
        after = cluster.wait_for("across")
        assert after.status == JobStatus.SUCCEEDED, after.message
        assert client.get_job_logs("across") == "before\nafter\n"  # nothing lost, nothing twice
        assert after.start_time == started.start_time
        assert not alive(entrypoint)
    finally:
        cluster.stop()
    assert wait_until_gone(cluster.session_dir, timeout=30) == []


def _ask_head(cluster: Cluster, method: str, request: Any, service: Any = rpc_pb.JobsStub) -> Any:
    async def ask() -> Any:
        channel = auth.TokenChannel(grpc.aio.insecure_channel(cluster.address), cluster.token)
        try:
            return await getattr(service(channel), method)(request, timeout=10)
        finally:
            await channel.close()

    return asyncio.run(ask())


def _entrypoint_pid(cluster: Cluster, submission_id: str) -> int:
    return int(_ask_head(cluster, "GetJob", pb.JobRef(submission_id=submission_id)).entrypoint_pid)


@pytest.mark.parametrize("state", [False, True], ids=["no-state-dir", "state-dir-head-never-back"])
def test_a_dead_head_leaves_no_entrypoint_running_unsupervised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, state: bool
) -> None:
    # With a state directory a supervisor waits for the head as long as it was told (here 1 s),
    # then stops the entrypoint; without one, at once.
    monkeypatch.setenv("EMBER_HEAD_RESTART_GRACE_S", "1")
    cluster = Cluster(state_dir=str(tmp_path / "state") if state else None)
    try:
        cluster.client().submit_job(entrypoint=GATED.format(gate=tmp_path / "never"), submission_id="orphan")
        cluster.wait_for_output("orphan", "before")
        entrypoint = _entrypoint_pid(cluster, "orphan")
        supervisors = [pid for pid in processes_of_session(cluster.session_dir)
                       if b"entrypoint_main" in command_line(pid)]
        assert len(supervisors) == 1 and alive(entrypoint)
        head = cluster.processes[0].processes[0]
        head.kill()
        head.wait()
        eventually(lambda: not alive(entrypoint) and not alive(supervisors[0]),
                   "the entrypoint and its supervisor gone with the head")
    finally:
        cluster.stop()
    assert wait_until_gone(cluster.session_dir, timeout=30) == []


def test_a_supervisor_killed_fails_its_job_and_takes_its_entrypoint(cluster: Cluster, tmp_path: Path) -> None:
    client = cluster.client()
    client.submit_job(entrypoint=GATED.format(gate=tmp_path / "never"), submission_id="unsupervised")
    cluster.wait_for_output("unsupervised", "before")
    entrypoint = _entrypoint_pid(cluster, "unsupervised")
    supervisor = next(
        pid for pid in processes_of_session(cluster.session_dir)
        if b"unsupervised" in command_line(pid) and b"entrypoint_main" in command_line(pid)
    )
    os.kill(supervisor, signal.SIGKILL)
    info = cluster.wait_for("unsupervised")
    assert info.status == JobStatus.FAILED and info.error_type == "SUPERVISOR_FAILED"
    assert "exited with code -9 before it reported" in info.message
    eventually(lambda: not alive(entrypoint), "the entrypoint gone with its supervisor")


def test_the_emberjob_examples_run(cluster: Cluster, tmp_path: Path) -> None:
    """What manifests/examples/ asks an EmberJob to run runs: its entrypoint, its env vars, its
    ConfigMap's files as the working directory."""
    import yaml

    client = cluster.client()
    for path in sorted((REPO / "manifests" / "examples").glob("job*.yaml")):
        documents = [d for d in yaml.safe_load_all(path.read_text()) if d]
        spec = next(d for d in documents if d["kind"] == "EmberJob")["spec"]
        env: dict[str, Any] = {}
        if spec.get("runtimeEnv", {}).get("envVars"):
            env["env_vars"] = spec["runtimeEnv"]["envVars"]
        config_map = spec.get("runtimeEnv", {}).get("workingDir", {}).get("configMap")
        if config_map:
            files = next(d for d in documents if d["kind"] == "ConfigMap" and d["metadata"]["name"] == config_map)
            directory = tmp_path / path.stem
            directory.mkdir()
            for name, text in files["data"].items():
                (directory / name).write_text(text)
            env["working_dir"] = str(directory)
        job = client.submit_job(entrypoint=spec["entrypoint"], runtime_env=env)
        info = cluster.wait_for(job)
        assert info.status == JobStatus.SUCCEEDED, f"{path.name}: {client.get_job_logs(job)}"
        expected = {"job.yaml": "pi is about 3.1", "job-on-small.yaml": "words: 900"}[path.name]
        assert expected in client.get_job_logs(job), path.name


def test_a_flood_of_output_at_the_end_arrives_whole_and_in_order(cluster: Cluster) -> None:
    """The exit is reported after the last byte of output, whatever the amounts (chunks of 1 MiB
    on the wire): the output is exactly what was printed, to `logs` and to a follower alike."""
    lines = 200_000  # ~1.5 MB, printed as fast as Python can, then an immediate exit
    client = cluster.client()
    job = client.submit_job(entrypoint=f"python -c \"import sys; sys.stdout.writelines(f'{{i}}\\n' for i in range({lines}))\"")

    async def follow() -> bytes:
        parts = []
        async for data in client.follow_bytes(job):
            parts.append(data)
            await asyncio.sleep(0.01)  # a slow reader: the head must not drop what it waits to send
        return b"".join(parts)

    followed = asyncio.run(follow())
    expected = "".join(f"{i}\n" for i in range(lines))
    assert cluster.wait_for(job).status == JobStatus.SUCCEEDED
    assert followed.decode() == expected
    assert client.get_job_logs(job) == expected


def test_tail_job_logs_yields_text_whole_characters_and_all(cluster: Cluster) -> None:
    """Ray's async iterator of strings: a character whose bytes fall in two chunks of the stream
    (the head sends a finished job's output in chunks of LOG_CHUNK bytes) is not mangled."""
    from ember.runtime.head.job_manager import LOG_CHUNK

    client = cluster.client()
    job = client.submit_job(
        entrypoint=f"python -c \"import sys; sys.stdout.write('x' * {LOG_CHUNK - 1} + 'ü✓' * 3)\"")
    assert cluster.wait_for(job).status == JobStatus.SUCCEEDED

    async def tail() -> list[str]:
        return [part async for part in client.tail_job_logs(job)]

    parts = asyncio.run(tail())
    assert len(parts) >= 2  # the stream did split it
    assert "".join(parts) == "x" * (LOG_CHUNK - 1) + "ü✓" * 3
