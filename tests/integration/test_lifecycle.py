"""No orphans: every process ember starts, ember stops — however the driver ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, processes_of_session, run_driver, wait_until_gone

# A driver that starts a cluster, makes sure workers exist, prints its session, then runs a
# task that outlives whatever happens to the driver next.
DRIVER = textwrap.dedent(
    """
    import sys, time
    import ember
    ctx = ember.init(num_cpus=2)

    @ember.remote
    def warm(i):
        return i

    ember.get([warm.remote(i) for i in range(4)])
    print(ctx.session_dir, flush=True)
    sys.stdin.readline()             # the test looks at the process table, then says go
    mode = sys.argv[1]

    @ember.remote
    def long_task():
        time.sleep(600)

    ref = long_task.remote()
    if mode == "exit":
        sys.exit(0)                  # atexit shuts the cluster down
    if mode == "os_exit":
        import os; os._exit(0)       # no atexit: the lifeline pipe closes
    if mode == "shutdown":
        ember.shutdown(); print("done", flush=True)
    else:
        ember.get(ref)               # wait to be killed or interrupted
    """
)


def _start_driver(mode: str) -> tuple[subprocess.Popen[str], str]:
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER, mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=str(REPO),
    )
    assert driver.stdout is not None
    session_dir = driver.stdout.readline().strip()
    assert session_dir.startswith("/"), driver.stderr.read() if driver.stderr else ""
    assert len(processes_of_session(session_dir)) >= 4  # head, agent, zygote, workers
    assert driver.stdin is not None
    driver.stdin.write("go\n")
    driver.stdin.flush()
    return driver, session_dir


@pytest.mark.parametrize("mode", ["shutdown", "exit", "os_exit"])
def test_driver_ending_leaves_no_process(mode):
    driver, session_dir = _start_driver(mode)
    driver.wait(timeout=30)
    assert wait_until_gone(session_dir) == []


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT, signal.SIGTERM])
def test_killed_driver_leaves_no_process(sig):
    driver, session_dir = _start_driver("block")
    time.sleep(0.3)
    driver.send_signal(sig)
    driver.wait(timeout=30)
    assert wait_until_gone(session_dir) == []


def test_ctrl_c_prints_keyboard_interrupt():
    driver, session_dir = _start_driver("block")
    time.sleep(0.3)
    driver.send_signal(signal.SIGINT)
    _, err = driver.communicate(timeout=30)
    assert "KeyboardInterrupt" in err
    assert wait_until_gone(session_dir) == []


def _ember(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ember.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=str(REPO),
    )


@pytest.fixture
def temp_root(tmp_path):
    env = dict(os.environ, EMBER_TEMP_DIR=str(tmp_path / "ember"))
    yield env
    _ember("stop", env=env)


def test_ember_start_connect_and_stop(temp_root):
    env = temp_root
    port = _free_port()
    started = _ember("start", "--head", "--port", str(port), "--num-cpus", "3", env=env)
    assert started.returncode == 0, started.stderr
    assert f"ember://127.0.0.1:{port}" in started.stdout
    session_dir = next(
        line.split()[-1].rsplit("/logs", 1)[0]
        for line in started.stdout.splitlines()
        if "logs:" in line
    )
    assert len(processes_of_session(session_dir)) >= 3

    script = textwrap.dedent(
        """
        import sys, ember
        ember.init(address=sys.argv[1])
        @ember.remote
        def square(x):
            return x * x
        print(sum(ember.get([square.remote(i) for i in range(10)])), ember.cluster_resources()["CPU"])
        """
    )
    for address in ("auto", f"ember://127.0.0.1:{port}", f"127.0.0.1:{port}"):
        result = run_driver(script, address, env=env)
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == ["285", "3.0"]

    via_env = run_driver(script.replace("address=sys.argv[1]", ""), env=dict(env, EMBER_ADDRESS=f"ember://127.0.0.1:{port}"))
    assert via_env.stdout.split() == ["285", "3.0"], via_env.stderr

    status = _ember("status", env=env)
    assert "Healthy:" in status.stdout and " 0/3 CPU" in status.stdout, status.stdout + status.stderr

    stopped = _ember("stop", env=env)
    assert stopped.returncode == 0
    assert wait_until_gone(session_dir) == []


def test_killed_driver_of_a_started_cluster_loses_its_workers(temp_root):
    """The cluster outlives the driver, but the driver's running tasks do not."""
    env = temp_root
    port = _free_port()
    started = _ember("start", "--head", "--port", str(port), "--num-cpus", "2", env=env)
    assert started.returncode == 0, started.stderr
    script = textwrap.dedent(
        """
        import os, time, ember
        ember.init(address="auto")
        @ember.remote
        def stuck():
            time.sleep(600)
        @ember.remote
        def where():
            return os.getpid()
        print(ember.get(where.remote()), flush=True)
        ref = stuck.remote()
        time.sleep(60)
        """
    )
    driver = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env, cwd=str(REPO)
    )
    assert driver.stdout is not None
    worker_pid = int(driver.stdout.readline())
    time.sleep(0.5)
    driver.kill()
    driver.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(worker_pid):
        time.sleep(0.05)
    assert not _alive(worker_pid)

    again = run_driver(
        "import ember; ember.init(address='auto'); print(ember.available_resources().get('CPU'))",
        env=env,
    )
    assert again.returncode == 0, again.stderr


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_actors_die_with_their_driver_unless_detached(temp_root):
    env = temp_root
    port = _free_port()
    started = _ember("start", "--head", "--port", str(port), "--num-cpus", "2", env=env)
    assert started.returncode == 0, started.stderr
    first = textwrap.dedent(
        """
        import os, ember
        ember.init(address="auto", namespace="jobs")

        @ember.remote
        class Box:
            def __init__(self):
                self.items = []
            def put(self, item):
                self.items.append(item)
                return len(self.items)
            def items_(self):
                return self.items
            def pid(self):
                return os.getpid()

        kept = Box.options(name="kept", lifetime="detached").remote()
        owned = Box.options(name="owned").remote()
        ember.get(kept.put.remote("from the first driver"))
        print(ember.get(kept.pid.remote()), ember.get(owned.pid.remote()), flush=True)
        """
    )
    result = run_driver(first, env=env)
    assert result.returncode == 0, result.stderr
    kept_pid, owned_pid = map(int, result.stdout.split())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(owned_pid):
        time.sleep(0.05)
    assert not _alive(owned_pid), "a non-detached actor dies with its driver"
    assert _alive(kept_pid), "a detached actor outlives its driver"

    # A driver that did not say its namespace has an anonymous one: told where the name is.
    stranger = textwrap.dedent(
        """
        import ember
        ember.init(address="auto")
        try:
            ember.get_actor("kept")
        except ValueError as error:
            print(error)
        """
    )
    result = run_driver(stranger, env=env)
    assert result.returncode == 0, result.stderr
    assert "Failed to look up actor with name 'kept' in namespace 'anonymous-" in result.stdout
    assert (
        "but an actor named 'kept' lives in namespace 'jobs': look it up there, "
        "ember.get_actor('kept', namespace='jobs')"
    ) in result.stdout, result.stdout

    second = textwrap.dedent(
        """
        import ember
        ember.init(address="auto", namespace="jobs")
        box = ember.get_actor("kept")
        print(ember.get(box.put.remote("from the second driver")), ember.get(box.items_.remote()))
        try:
            ember.get_actor("owned")
        except ValueError as error:
            print("owned is gone:", error)
        ember.kill(box)
        """
    )
    result = run_driver(second, env=env)
    assert result.returncode == 0, result.stderr
    assert "2 ['from the first driver', 'from the second driver']" in result.stdout
    assert "owned is gone: Failed to look up actor with name 'owned'" in result.stdout
    assert "no actor of that name is alive in any namespace" in result.stdout
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(kept_pid):
        time.sleep(0.05)
    assert not _alive(kept_pid)


def test_driver_on_no_node_moves_objects_over_the_network(temp_root):
    """Nodes listen on 127.0.0.2, the driver runs at 127.0.0.1: it has no object store of its
    own, so its large values are pushed to a node and the ones it reads are pulled from one."""
    env = temp_root
    port = _free_port()
    started = _ember("start", "--head", "--host", "127.0.0.2", "--port", str(port), "--num-cpus", "2", env=env)
    assert started.returncode == 0, started.stderr
    script = textwrap.dedent(
        f"""
        import numpy as np, ember
        from ember.runtime.core import context
        ember.init(address="ember://127.0.0.2:{port}")
        assert not context.require_core().objects.on_a_node
        @ember.remote
        def total(array):
            return float(array.sum())
        @ember.remote
        def make():
            return np.full(1 << 20, 2.0)
        ref = ember.put(np.ones(1 << 20))
        made = ember.get(make.remote())
        print(ember.get(total.remote(ref)), ember.get(ref).sum(), made.sum(), made.flags.writeable)
        """
    )
    result = run_driver(script, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1048576.0", "1048576.0", "2097152.0", "False"]


def test_nodes_join_with_ember_start_address_and_status_shows_them(temp_root):
    env = dict(temp_root, EMBER_NODE_TIMEOUT_S="3")
    port = _free_port()
    head = _ember("start", "--head", "--port", str(port), "--num-cpus", "1", env=env)
    assert head.returncode == 0, head.stderr
    joined = _ember(
        "start", "--address", f"127.0.0.1:{port}", "--num-cpus", "2",
        "--resources", '{"gadget": 3}', "--labels", '{"zone": "b"}', env=env,
    )
    assert joined.returncode == 0, joined.stderr
    assert f"joining the head at ember://127.0.0.1:{port}" in joined.stdout
    # In the foreground, as a container runs it; SIGTERM stops it cleanly.
    blocking = subprocess.Popen(
        [sys.executable, "-m", "ember.cli", "start", "--address", f"ember://127.0.0.1:{port}",
         "--num-cpus", "1", "--block"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=str(REPO),
    )
    try:
        assert blocking.stdout is not None
        first = blocking.stdout.readline()
        assert "Started a node agent" in first, first + blocking.stderr.read()
        deadline = time.monotonic() + 15
        status = _ember("status", env=env)
        while "0/4 CPU" not in status.stdout and time.monotonic() < deadline:
            time.sleep(0.2)
            status = _ember("status", env=env)
        assert status.returncode == 0, status.stderr
        # Head's agent (1 CPU) + the joined one (2) + the blocking one (1).
        assert " 0/4 CPU" in status.stdout and " 0/3 gadget" in status.stdout, status.stdout
        assert status.stdout.count(" workers  CPU") == 3, status.stdout
        assert "(no dead nodes)" in status.stdout

        script = textwrap.dedent(
            """
            import ember
            ember.init(address="auto")
            @ember.remote(resources={"gadget": 1})
            def where():
                return ember.get_runtime_context().get_node_id()
            labels = {n["NodeID"]: n["Labels"] for n in ember.nodes()}
            print(labels[ember.get(where.remote())]["zone"])
            """
        )
        result = run_driver(script, env=env)
        assert result.stdout.strip() == "b", result.stderr

        blocking.send_signal(signal.SIGTERM)
        assert blocking.wait(15) == 0
        # In the foreground the session's log files go to stdout too, as in a container.
        echoed = blocking.stdout.read()
        assert "[node-agent" in echoed and "serving with" in echoed, echoed
        deadline = time.monotonic() + 15
        while "Dead:\n (no dead nodes)" in status.stdout and time.monotonic() < deadline:
            time.sleep(0.2)
            status = _ember("status", env=env)
        assert " 0/3 CPU" in status.stdout, status.stdout
        # A stop on purpose is no failure.
        assert "it stopped (SIGTERM received)" in status.stdout, status.stdout
        assert "Recent failures:\n (none)" in status.stdout, status.stdout
    finally:
        if blocking.poll() is None:
            blocking.kill()
    stopped = _ember("stop", env=env)
    # Named: the cluster (its head and node), the node that joined; the one in the foreground
    # stopped itself and left nothing to name.
    *named, total = stopped.stdout.splitlines()
    assert sorted(line.split(" (127.0.0.1:")[0] for line in named) == [
        f"Stopped a node that had joined ember://127.0.0.1:{port} (ember start --address): 1 node",
        f"Stopped the cluster at ember://127.0.0.1:{port} (ember start --head): its head and 1 node",
    ], stopped.stdout
    assert total == "In all: 1 head and 2 nodes.", stopped.stdout
    assert _ember("stop", env=env).stdout == (
        "Nothing to stop: ember start and ember up left nothing running here.\n"
    )
    assert _ember("status", env=env).returncode == 1


def test_ember_start_needs_head_or_address(temp_root):
    result = _ember("start", env=temp_root)
    assert result.returncode == 2
    assert "--head" in result.stderr and "--address" in result.stderr
    bad = _ember("start", "--address", "127.0.0.1:1", "--resources", "{oops", env=temp_root)
    assert bad.returncode == 2 and "JSON" in bad.stderr


def test_driver_gets_a_connection_error_naming_the_head_when_it_dies(temp_root):
    env = temp_root
    port = _free_port()
    started = _ember("start", "--head", "--port", str(port), "--num-cpus", "2", env=env)
    assert started.returncode == 0, started.stderr
    record = next((Path(env["EMBER_TEMP_DIR"]) / "started").glob("*.json"))
    head_pid = json.loads(record.read_text())["pids"][0]
    script = textwrap.dedent(
        """
        import os, signal, sys, time
        import ember
        ember.init(address="auto")
        @ember.remote
        def slow():
            time.sleep(600)  # outlasts the test: only the head's loss can end the get
        ref = slow.remote()
        assert ember.get(ember.put(1)) == 1
        os.kill(int(sys.argv[1]), signal.SIGKILL)
        try:
            ember.get(ref)
        except ConnectionError as error:
            print(f"{type(error).__name__}: {error}")
        try:
            slow.remote()
        except ConnectionError as error:
            print(f"then: {error}")
        """
    )
    result = run_driver(script, str(head_pid), env=env, timeout=60)
    lines = result.stdout.splitlines()
    assert len(lines) == 2, result.stdout + result.stderr
    assert lines[0].startswith("RuntimeConnectionError: "), lines[0]
    assert f"lost the head at 127.0.0.1:{port}" in lines[0], lines[0]
    assert lines[1].startswith(f"then: lost the head at 127.0.0.1:{port} ("), lines[1]


def test_ember_logs_lists_prints_and_follows(temp_root):
    env = temp_root
    port = _free_port()
    started = _ember("start", "--head", "--port", str(port), "--num-cpus", "1", env=env)
    assert started.returncode == 0, started.stderr
    script = textwrap.dedent(
        """
        import ember
        ember.init(address="auto")
        @ember.remote
        def shout(i):
            import os, sys
            print("line", i, "from", os.getpid())
            print("oops", i, file=sys.stderr)
            return os.getpid()
        print(ember.get([shout.remote(i) for i in range(3)])[0])
        """
    )
    ran = run_driver(script, env=env)
    assert ran.returncode == 0, ran.stderr
    pid = ran.stdout.split()[-1]

    listed = _ember("logs", env=env)
    assert listed.returncode == 0, listed.stderr
    assert "head.log" in listed.stdout and "node-agent.log" in listed.stdout
    out_name = next(w for w in listed.stdout.split() if w.startswith("worker-") and w.endswith(f"-{pid}.out"))
    err_name = out_name[:-4] + ".err"
    assert err_name in listed.stdout

    printed = _ember("logs", out_name, env=env)
    assert printed.returncode == 0, printed.stderr
    assert [line.split()[:2] for line in printed.stdout.splitlines()] == [["line", "0"], ["line", "1"], ["line", "2"]]
    last = _ember("logs", err_name, "--tail", "1", env=env)
    assert last.stdout.strip() == "oops 2", last.stdout

    follow = subprocess.Popen(
        [sys.executable, "-m", "ember.cli", "logs", "head.log", "--tail", "1", "--follow"],
        stdout=subprocess.PIPE, text=True, env=env, cwd=str(REPO),
    )
    try:
        assert follow.stdout is not None
        follow.stdout.readline()  # the last line so far
        again = run_driver(script, env=env)  # a new job: the head logs it
        assert again.returncode == 0
        deadline = time.monotonic() + 15
        seen = ""
        while "started by driver" not in seen and time.monotonic() < deadline:
            seen += follow.stdout.readline()
        assert "started by driver" in seen
    finally:
        follow.terminate()
        follow.wait(10)

    missing = _ember("logs", "no-such.log", env=env)
    assert missing.returncode == 1 and "no node has a log file named 'no-such.log'" in missing.stderr
    node = listed.stdout.split()[0].removeprefix("node_")
    sneaky = _ember("logs", "../../etc/passwd", "--node", node, env=env)
    assert sneaky.returncode == 1 and "not a log file name" in sneaky.stderr, sneaky.stderr
