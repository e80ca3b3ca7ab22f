"""Starting and stopping a head and a node agent as local processes.

``init()`` starts them with a lifeline: their stdin is a pipe from the driver, and when it closes
(the driver exited, however it exited) they stop, and the agent's workers with them. ``ember
start`` starts them detached instead, and ``ember stop`` stops them by their recorded pids.
Both are started at once; the agent learns the head's address on its stdin.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

from ember.runtime.wire import auth

READY_TIMEOUT = 60.0


class LaunchError(RuntimeError):
    pass


DEFAULT_DASHBOARD_PORT = 8265  # Ray's

@dataclass
class LocalProcesses:
    session_dir: str
    head_address: str = ""
    agent_address: str = ""
    token: str = ""
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the agent (which stops its workers), then the head."""
        for process in reversed(self.processes):
            if process.poll() is None:
                try:
                    process.send_signal(signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + timeout
        for process in reversed(self.processes):
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            for stream in (process.stdin, process.stdout):
                if stream is not None:
                    try:
                        stream.close()
                    except OSError:
                        pass


def token_file(session_dir: str) -> str:
    return os.path.join(session_dir, "token")


def _spawn(
    module: str,
    args: list[str],
    session_dir: str,
    component: str,
    lifeline: bool,
    token: str = "",
) -> subprocess.Popen[bytes]:
    """Start a daemon; the cluster token goes in its environment (a command line is public)."""
    logs = os.path.join(session_dir, "logs")
    env = dict(os.environ, EMBER_SESSION_DIR=session_dir)
    if token:
        env[auth.ENV] = token
    os.makedirs(logs, mode=0o700, exist_ok=True)
    fd = os.open(os.path.join(logs, f"{component}.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with open(fd, "ab") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", module, *args, "--session-dir", session_dir]
            + (["--lifeline"] if lifeline else []),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            start_new_session=True,
            env=env,
        )


def _read_ready(process: subprocess.Popen[bytes], component: str, session_dir: str) -> str:
    assert process.stdout is not None
    deadline = time.monotonic() + READY_TIMEOUT
    fd = process.stdout.fileno()
    buffer = b""
    while b"\n" not in buffer:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise LaunchError(f"the {component} did not start within {READY_TIMEOUT:.0f}s" + _tail(session_dir, component))
        readable, _, _ = select.select([fd], [], [], min(remaining, 0.5))
        if readable:
            chunk = os.read(fd, 4096)
            if not chunk:
                process.wait()
                raise LaunchError(
                    f"the {component} exited during start-up (code {process.returncode})"
                    + _tail(session_dir, component)
                )
            buffer += chunk
    line = buffer.split(b"\n", 1)[0].decode()
    if not line.startswith("EMBER_READY "):
        raise LaunchError(f"the {component} said {line!r} instead of its address")
    return line.split(" ", 1)[1].strip()


def _tail(session_dir: str, component: str, lines: int = 20) -> str:
    path = os.path.join(session_dir, "logs", f"{component}.log")
    try:
        with open(path, errors="replace") as f:
            text = "".join(f.readlines()[-lines:])
    except OSError:
        return ""
    return f"; the end of {path}:\n{text}" if text else ""


def start(
    session_dir: str,
    host: str = "127.0.0.1",
    head_port: int = 0,
    num_cpus: float | None = None,
    num_gpus: float | None = None,
    memory: int | None = None,
    object_store_memory: int | None = None,
    resources: dict[str, float] | None = None,
    labels: dict[str, str] | None = None,
    lifeline: bool = True,
    state_dir: str | None = None,
    metrics_port: int = 0,
    head_metrics_port: int = 0,
    dashboard_host: str = "127.0.0.1",
    dashboard_port: int = DEFAULT_DASHBOARD_PORT,
    token: str | None = None,
    autoscaler: bool = False,
    accelerator_type: str | None = None,
) -> LocalProcesses:
    """Start a head and a node agent on this machine; returns once both listen.

    ``dashboard_port``: the head's dashboard (-1: none; taken: any free port). ``token``: the
    cluster's (by default this process's, else a new one); it is also written, readable only by
    this user, to the session's ``token`` file, where drivers and the CLI on this machine find it.
    """
    token = token if token is not None else auth.token()
    token = token or auth.generate()
    auth.write_file(token_file(session_dir), token)
    result = LocalProcesses(session_dir, token=token)
    agent_args = _agent_args(
        "-", host, num_cpus, num_gpus, memory, object_store_memory, resources, labels, metrics_port,
        accelerator_type,
    )
    try:
        head = _spawn(
            "ember.runtime.head_main",
            _head_args(host, head_port, state_dir, head_metrics_port, autoscaler)
            + ["--dashboard-host", dashboard_host, "--dashboard-port", str(dashboard_port)],
            session_dir,
            "head",
            lifeline,
            token,
        )
        result.processes.append(head)
        agent = _spawn(
            "ember.runtime.agent_main", agent_args, session_dir, "node-agent", lifeline, token
        )
        result.processes.append(agent)
        result.head_address = _read_ready(head, "head", session_dir)
        assert agent.stdin is not None
        agent.stdin.write((result.head_address + "\n").encode())
        agent.stdin.flush()
        result.agent_address = _read_ready(agent, "node-agent", session_dir)
        if not lifeline:
            for process in result.processes:
                if process.stdin is not None:
                    process.stdin.close()
    except BaseException:
        result.stop(timeout=2.0)
        raise
    return result


def start_agent(
    session_dir: str,
    head_address: str,
    host: str = "127.0.0.1",
    num_cpus: float | None = None,
    resources: dict[str, float] | None = None,
    lifeline: bool = True,
    num_gpus: float | None = None,
    memory: int | None = None,
    object_store_memory: int | None = None,
    labels: dict[str, str] | None = None,
    metrics_port: int = 0,
    token: str | None = None,
    accelerator_type: str | None = None,
) -> LocalProcesses:
    """Start one more node agent, joining the head at ``head_address`` (with ``token``, by
    default this process's)."""
    result = LocalProcesses(session_dir, head_address=head_address)
    args = _agent_args(
        head_address, host, num_cpus, num_gpus, memory, object_store_memory, resources, labels,
        metrics_port, accelerator_type,
    )
    component = f"node-agent-{os.urandom(2).hex()}"
    try:
        agent = _spawn(
            "ember.runtime.agent_main", args, session_dir, component, lifeline,
            auth.token() if token is None else token,
        )
        result.processes.append(agent)
        result.agent_address = _read_ready(agent, component, session_dir)
        if not lifeline and agent.stdin is not None:
            agent.stdin.close()
    except BaseException:
        result.stop(timeout=2.0)
        raise
    return result


def start_head(
    session_dir: str,
    host: str = "127.0.0.1",
    port: int = 0,
    state_dir: str | None = None,
    lifeline: bool = True,
    metrics_port: int = 0,
    dashboard_port: int = -1,
    token: str | None = None,
) -> LocalProcesses:
    """Start a head alone: a head restarted where its node agents can find it again."""
    result = LocalProcesses(session_dir)
    try:
        head = _spawn(
            "ember.runtime.head_main",
            _head_args(host, port, state_dir, metrics_port) + ["--dashboard-port", str(dashboard_port)],
            session_dir,
            "head",
            lifeline,
            auth.token() if token is None else token,
        )
        result.processes.append(head)
        result.head_address = _read_ready(head, "head", session_dir)
        if not lifeline and head.stdin is not None:
            head.stdin.close()
    except BaseException:
        result.stop(timeout=2.0)
        raise
    return result


def _head_args(
    host: str, port: int, state_dir: str | None, metrics_port: int, autoscaler: bool = False
) -> list[str]:
    args = ["--host", host, "--port", str(port), "--metrics-port", str(metrics_port)]
    if autoscaler:
        args.append("--autoscaler")
    if state_dir:
        args += ["--state-dir", state_dir]
    return args


def _agent_args(
    head_address: str,
    host: str,
    num_cpus: float | None,
    num_gpus: float | None,
    memory: int | None,
    object_store_memory: int | None,
    resources: dict[str, float] | None,
    labels: dict[str, str] | None,
    metrics_port: int = 0,
    accelerator_type: str | None = None,
) -> list[str]:
    args = ["--head-address", head_address, "--host", host, "--metrics-port", str(metrics_port)]
    if num_cpus is not None:
        args += ["--num-cpus", str(num_cpus)]
    if num_gpus is not None:
        args += ["--num-gpus", str(num_gpus)]
    if accelerator_type:
        args += ["--accelerator-type", accelerator_type]
    if memory is not None:
        args += ["--memory", str(int(memory))]
    if object_store_memory is not None:
        args += ["--object-store-memory", str(int(object_store_memory))]
    if resources:
        args += ["--resources", json.dumps(resources)]
    if labels:
        args += ["--labels", json.dumps(labels)]
    return args


def running(pids: list[int]) -> list[int]:
    """Those of ``pids`` that still run ember (a recorded pid may since belong to another
    program)."""
    return [pid for pid in pids if _is_ember(pid) and _exists(pid)]


def stop_pids(pids: list[int], timeout: float = 5.0) -> list[int]:
    """Stop processes ``ember start`` recorded; only those that still run ember, as this user
    (a pid of the record may have been reused since, by anyone)."""
    alive = [pid for pid in pids if _is_ember(pid) and _is_mine(pid)]
    for pid in alive:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_exists(pid) for pid in alive):
        time.sleep(0.05)
    for pid in alive:
        if _exists(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    return alive


def _exists(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _is_mine(pid: int) -> bool:
    try:
        return os.stat(f"/proc/{pid}").st_uid == os.getuid()
    except OSError:
        return False


def _is_ember(pid: int) -> bool:
    """A process ember started: a daemon (``-m ember.runtime...``) or ``ember up`` itself."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return False
    return any(b"ember.runtime" in arg or arg == b"ember.cli" or arg.endswith(b"/ember") for arg in argv)
