"""The node agent's workers: started through the zygote, tracked until they exit.

A worker of a runtime_env (``runtime_envs``) is started for that environment and runs nothing
else: the zygote forks one whose environment is only code, which moves into it before it
runs anything; one whose environment has a virtualenv or variables is a process of its own,
started here with the environment's interpreter and variables (see ``WorkerSetup``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ember.runtime.objects import ids
from ember.runtime.objects.exceptions import describe_exit
from ember.runtime.wire.protocol import ember_pb2 as pb

log = logging.getLogger("ember.runtime.node.worker_pool")

STARTING = "starting"
IDLE = "idle"
LEASED = "leased"
RETIRING = "retiring"  # asked to exit if idle; never leased meanwhile
DEAD = "dead"


class WorkerHandle:
    __slots__ = (
        "worker_id",
        "pid",
        "address",
        "channel_address",
        "state",
        "job_id",
        "lease",
        "outbox",
        "idle_since",
        "started_at",
        "returncode",
        "exited",
        "detached",
        "setup",
    )

    def __init__(self, worker_id: bytes) -> None:
        self.worker_id = worker_id
        self.pid = 0
        self.address = ""
        self.channel_address = ""
        self.state = STARTING
        self.job_id: bytes | None = None
        self.lease: object | None = None
        self.outbox: asyncio.Queue[pb.AgentToWorker] | None = None
        self.idle_since = time.monotonic()
        self.started_at = time.monotonic()
        self.returncode: int | None = None
        self.exited = asyncio.Event()
        self.detached = False  # hosts a detached actor: outlives its job
        self.setup: WorkerSetup | None = None  # its runtime_env (None: the node's own)

    def describe(self) -> str:
        return f"worker {ids.short(self.worker_id)} (pid {self.pid or '?'})"


@dataclass(frozen=True, eq=False)
class WorkerSetup:
    """How a worker of one runtime_env starts: made once per environment and node
    (``runtime_envs``), compared by identity when a lease looks for a worker of it.

    ``python`` is the interpreter of a worker that is a process of its own ("" : forked by the
    zygote). ``cwd`` and ``paths`` reach the worker as ``EMBER_RUNTIME_ENV_CWD`` and
    ``EMBER_RUNTIME_ENV_PATH`` (``worker_main`` moves into them first thing) and ``paths`` as
    ``PYTHONPATH`` too, for the processes a task starts."""

    key: str
    runtime_env: str  # its canonical JSON: the worker's parent runtime_env for nested work
    env_vars: Mapping[str, str]
    cwd: str
    paths: tuple[str, ...]
    python: str
    log_path: str  # where its own processes' start-up output goes
    description: str

    def variables(self, inherited: Mapping[str, str]) -> dict[str, str]:
        """The variables a worker of it gets over ``inherited``: the user's, then ember's."""
        result = dict(self.env_vars)
        path = list(self.paths)
        existing = result.get("PYTHONPATH", inherited.get("PYTHONPATH", ""))
        if existing:
            path.append(existing)
        if path:
            result["PYTHONPATH"] = os.pathsep.join(path)
        if "OMP_NUM_THREADS" in self.env_vars:
            result["EMBER_THREADS_BY_LEASE"] = ""  # the user's value holds for every task
        result["EMBER_RUNTIME_ENV"] = self.runtime_env
        result["EMBER_RUNTIME_ENV_CWD"] = self.cwd
        result["EMBER_RUNTIME_ENV_PATH"] = os.pathsep.join(self.paths)
        return result


# What a forked worker runs: named, not imported, since the worker's code is the core's and a node
# agent never loads it (it would double the agent's memory for nothing).
WORKER_MAIN = "ember.runtime.worker_main"


def with_thread_default(env: dict[str, str]) -> dict[str, str]:
    """The workers' environment: unless the node's sets ``OMP_NUM_THREADS``, numerical
    libraries start with one thread each and workers size them to each task's CPUs
    (``core/cpu_threads.py``), instead of a thread per core in every worker."""
    if "OMP_NUM_THREADS" in env:
        return env
    return env | {"OMP_NUM_THREADS": "1", "EMBER_THREADS_BY_LEASE": "1"}


def start_zygote(env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start the zygote first thing, so it imports while the agent does."""
    return subprocess.Popen(
        [sys.executable, "-m", "ember.runtime.node.zygote", WORKER_MAIN],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
    )


ZYGOTE_FAILURES = 3  # deaths within ZYGOTE_WINDOW seconds before the pool gives up
ZYGOTE_WINDOW = 60.0


class WorkerPool:
    """Workers started through the zygote; a zygote that dies is started again, unless it keeps
    dying, in which case the node says so to everyone who asks for a worker."""

    def __init__(
        self,
        zygote: subprocess.Popen[bytes],
        zygote_env: dict[str, str],
        on_exit: Callable[[WorkerHandle], None],
        on_restarted: Callable[[], None] = lambda: None,
        on_broken: Callable[[str], None] = lambda reason: None,
    ) -> None:
        self.zygote = zygote
        self.zygote_env = zygote_env
        self.worker_env: dict[str, str] = {}
        self.on_exit = on_exit
        self.on_restarted = on_restarted
        self.on_broken = on_broken
        self.workers: dict[bytes, WorkerHandle] = {}
        self.by_pid: dict[int, WorkerHandle] = {}
        self._events: asyncio.Task[None] | None = None
        self._deaths: list[float] = []
        self.broken = ""
        self.closing = False
        # Workers started as processes of their own (runtime_envs with an interpreter), by pid.
        self.processes: dict[int, subprocess.Popen[bytes]] = {}

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        assert self.zygote.stdout is not None
        await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), self.zygote.stdout
        )
        self._events = asyncio.ensure_future(self._read_events(reader))

    def spawn(self, setup: WorkerSetup | None = None) -> WorkerHandle | None:
        """Start a worker (of the runtime_env ``setup``, or of the node's own environment)."""
        if self.broken:
            return None
        worker = WorkerHandle(ids.random_id())
        self.workers[worker.worker_id] = worker
        env = self.worker_env
        if setup is not None:
            worker.setup = setup
            env = env | setup.variables(self.zygote_env)
            if setup.python:
                return self._start_process(worker, setup, env)
        command = {"spawn": worker.worker_id.hex(), "env": env | {
            "EMBER_WORKER_ID": worker.worker_id.hex()
        }}
        assert self.zygote.stdin is not None
        try:
            self.zygote.stdin.write((json.dumps(command) + "\n").encode())
            self.zygote.stdin.flush()
        except (BrokenPipeError, ValueError, OSError):
            # The zygote is gone; its exit is being handled and the worker will be asked again.
            self.workers.pop(worker.worker_id, None)
            return None
        return worker

    def _start_process(
        self, worker: WorkerHandle, setup: WorkerSetup, env: dict[str, str]
    ) -> WorkerHandle | None:
        """A worker that is a process of its own, with the environment's interpreter. It dies
        with the agent (``EMBER_DIE_WITH_PARENT``, and its session with the agent ends)."""
        env = self.zygote_env | env | {
            "EMBER_WORKER_ID": worker.worker_id.hex(),
            "EMBER_DIE_WITH_PARENT": str(os.getpid()),
        }
        try:
            with open(setup.log_path, "ab") as log_file:
                process = subprocess.Popen(
                    [setup.python, "-m", WORKER_MAIN],
                    env=env,
                    cwd=setup.cwd or None,
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=log_file,
                )
        except OSError as error:
            log.error("cannot start a worker of %s: %s", setup.description, error)
            self.workers.pop(worker.worker_id, None)
            return None
        worker.pid = process.pid
        self.by_pid[process.pid] = worker
        self.processes[process.pid] = process
        loop = asyncio.get_running_loop()
        pidfd = os.pidfd_open(process.pid)
        loop.add_reader(pidfd, self._process_exited, process, pidfd)
        return worker

    def _process_exited(self, process: subprocess.Popen[bytes], pidfd: int) -> None:
        asyncio.get_running_loop().remove_reader(pidfd)
        os.close(pidfd)
        code = process.wait()
        self.processes.pop(process.pid, None)
        worker = self.by_pid.pop(process.pid, None)
        if worker is not None:
            worker.returncode = code
            worker.exited.set()
            self.on_exit(worker)

    def starting(self, setup: WorkerSetup | None = None) -> int:
        """Workers of ``setup``'s environment (None: the node's own) not ready yet."""
        return sum(1 for w in self.workers.values() if w.state == STARTING and w.setup is setup)

    async def _read_events(self, reader: asyncio.StreamReader) -> None:
        while True:
            line = await reader.readline()
            if not line:
                if not self.closing:
                    await self._zygote_died()
                return
            event = json.loads(line)
            log.debug("zygote: %s", event)
            if "spawned" in event:
                worker = self.workers.get(bytes.fromhex(event["spawned"]))
                if worker is not None:
                    worker.pid = event["pid"]
                    self.by_pid[worker.pid] = worker
            elif "exited" in event:
                worker = self.by_pid.pop(event["exited"], None)
                if worker is not None:
                    worker.returncode = event["returncode"]
                    worker.exited.set()
                    self.on_exit(worker)

    async def _zygote_died(self) -> None:
        code = await asyncio.get_running_loop().run_in_executor(None, self.zygote.wait)
        # Workers it had not finished starting never will; the started ones die with it.
        for worker in [w for w in self.workers.values() if w.state == STARTING]:
            self.workers.pop(worker.worker_id, None)
        now = time.monotonic()
        self._deaths = [t for t in self._deaths if now - t < ZYGOTE_WINDOW] + [now]
        if len(self._deaths) >= ZYGOTE_FAILURES:
            self.broken = (
                f"the node cannot start worker processes: its zygote exited with "
                f"{describe_exit(code)} {len(self._deaths)} times in {ZYGOTE_WINDOW:.0f}s "
                f"(see node-agent.log in the session's logs)"
            )
            log.error("%s", self.broken)
            self.on_broken(self.broken)
            return
        log.error("the zygote exited with %s; starting a new one", describe_exit(code))
        self.zygote = start_zygote(self.zygote_env)
        await self.start()
        self.on_restarted()

    def kill(self, worker: WorkerHandle) -> None:
        if worker.pid and worker.state != DEAD:
            try:
                os.kill(worker.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def forget(self, worker: WorkerHandle) -> None:
        self.workers.pop(worker.worker_id, None)

    def stop(self) -> None:
        """Close the zygote's command pipe: it kills every worker and exits."""
        self.closing = True
        if self._events is not None:
            self._events.cancel()
        for process in list(self.processes.values()):
            process.kill()
            process.wait()
        self.processes.clear()
        try:
            if self.zygote.stdin is not None:
                self.zygote.stdin.close()
        except OSError:
            pass
        try:
            self.zygote.wait(timeout=3)
        except subprocess.TimeoutExpired:
            self.zygote.kill()
            self.zygote.wait()
