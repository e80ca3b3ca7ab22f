"""What a user is told when an address is wrong, a port is taken, or a head must be found:
the words that say what happened, checked on real processes (issue 19, items 5 to 8)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest

from tests.conftest import REPO, run_driver
from tests.unit.test_reachability import closed_port, silent_port  # noqa: F401 (fixtures)


def _ember(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ember.cli", *args],
        capture_output=True, text=True, timeout=120, env=env, cwd=str(REPO),
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def env(tmp_path) -> Iterator[dict[str, str]]:
    """A session root of the test's own, and no token from the environment: what a user who
    has started nothing yet has."""
    environ = {k: v for k, v in os.environ.items() if k not in ("EMBER_TOKEN", "EMBER_TOKEN_FILE", "EMBER_ADDRESS")}
    environ["EMBER_TEMP_DIR"] = str(tmp_path / "ember")
    yield environ
    _ember("stop", env=environ)


DRIVER = textwrap.dedent(
    """
    import sys
    import ember
    from ember.runtime.core import driver
    driver.CONNECT_TIMEOUT = float(sys.argv[2])
    try:
        ember.init(address=sys.argv[1])
    except ConnectionError as error:
        print(f"{type(error).__name__}: {error}")
    """
)


def test_a_driver_told_a_wrong_port_says_nothing_listens_there_at_once(closed_port):  # noqa: F811
    # With an hour to wait, only a refusal said at once ends the driver within run_driver's limit.
    result = run_driver(DRIVER, f"ember://127.0.0.1:{closed_port}", "3600")
    assert result.stdout.strip() == (
        f"RuntimeConnectionError: cannot reach the ember head at 127.0.0.1:{closed_port}: "
        f"nothing is listening at 127.0.0.1:{closed_port} (connection refused)"
    ), result.stdout + result.stderr
    assert "DEADLINE_EXCEEDED" not in result.stdout + result.stderr


def test_a_driver_waits_for_a_silent_host_and_says_it_did_not_answer(silent_port):  # noqa: F811
    result = run_driver(DRIVER, f"127.0.0.1:{silent_port}", "2")
    out = result.stdout.strip()
    assert out.startswith(
        f"RuntimeConnectionError: cannot reach the ember head at 127.0.0.1:{silent_port}: "
        "the host 127.0.0.1 did not answer within 2s"
    ), out + result.stderr
    assert "DEADLINE_EXCEEDED" not in out


def test_cli_commands_name_a_wrong_address_and_do_not_blame_the_token(env, closed_port):  # noqa: F811
    wrong = f"127.0.0.1:{closed_port}"
    status = _ember("status", "--address", wrong, env=env)
    assert status.returncode == 1
    assert f"nothing is listening at {wrong} (connection refused)" in status.stderr, status.stderr

    port = _free_port()
    head = _ember("start", "--head", "--port", str(port), "--num-cpus", "1", env=env)
    assert head.returncode == 0, head.stderr
    # No token in the environment, a port where no head is: the address is the problem.
    joined = _ember("start", "--address", wrong, "--num-cpus", "1", env=env)
    assert joined.returncode == 1
    assert f"cannot join the head at {wrong}: nothing is listening at {wrong} (connection refused)" in joined.stderr
    assert f"The cluster started on this machine is at ember://127.0.0.1:{port}" in joined.stderr
    assert "token" not in joined.stderr, joined.stderr
    assert "Started" not in joined.stdout
    logs = _ember("logs", "--address", f"ember://{wrong}", env=env)
    assert logs.returncode == 1 and "connection refused" in logs.stderr, logs.stderr


def test_a_second_head_on_a_taken_port_gets_a_paragraph_not_a_traceback(env):
    port = _free_port()
    first = _ember("start", "--head", "--port", str(port), "--num-cpus", "1", env=env)
    assert first.returncode == 0, first.stderr
    second = _ember("start", "--head", "--port", str(port), "--num-cpus", "1", env=env)
    assert second.returncode == 1
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 2 and "Traceback" not in second.stderr, second.stderr
    assert lines[0] == (
        f"ember start: port {port} of 127.0.0.1 is taken: the ember cluster started here last "
        f"listens there (ember://127.0.0.1:{port}), so no head can start on it."
    )
    assert "'ember status' shows it" in lines[1] and "--port PORT" in lines[1]

    # From another session root the port is just taken: by something, perhaps a cluster.
    elsewhere = dict(env, EMBER_TEMP_DIR=env["EMBER_TEMP_DIR"] + "-other")
    other = _ember("start", "--head", "--port", str(port), env=elsewhere)
    assert other.returncode == 1 and "Traceback" not in other.stderr
    assert "something already listens there (another cluster, or another program)" in other.stderr
    assert f"'ember status --address 127.0.0.1:{port}'" in other.stderr

    with socket.socket() as busy:  # not a cluster at all
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        up = _ember("up", "--port", str(taken), str(REPO / "manifests/examples/cluster.yaml"), env=env)
    assert up.returncode == 1 and "Traceback" not in up.stderr, up.stderr
    assert f"port {taken} of 127.0.0.1 is taken" in up.stderr and "ember up FILE --port PORT" in up.stderr


def test_start_head_and_status_print_the_dashboard_address(env):
    port = _free_port()
    started = _ember("start", "--head", "--port", str(port), "--num-cpus", "1", env=env)
    assert started.returncode == 0, started.stderr
    shown = [line.split()[1] for line in started.stdout.splitlines() if line.strip().startswith("dashboard:")]
    assert len(shown) == 1 and shown[0].startswith("http://127.0.0.1:"), started.stdout
    status = _ember("status", env=env)
    assert status.returncode == 0, status.stderr
    assert f"Dashboard: {shown[0]}  (open it with #token=TOKEN" in status.stdout, status.stdout
    dashboard_port = int(shown[0].rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", dashboard_port), timeout=10):
        pass  # it listens where it says
