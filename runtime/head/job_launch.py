"""Where a job's supervisor runs, and how it is started there.

A job that asks for no entrypoint resources runs on the head's node, as in Ray: the head starts
its supervisor (``python -m ember.runtime.entrypoint_main``) as a process of its own session
and watches it exit. A job that asks for resources (``--entrypoint-num-cpus``, ...) runs where
they are free, which only the nodes know: the head creates a detached actor of that shape
(``EntrypointHost``, named ``job-<submission id>`` in the namespace ``_ember_jobs``) through its
own actor directory, so it is placed, waited for (an autoscaler sees it as demand), held and
released like any actor, and taken back by a restarted head with the other detached actors.
Its constructor starts the supervisor on its node with a lifeline: when the actor's worker
ends, so does the entrypoint. When the job ends the head kills the actor, and the resources
are free again.

The supervisor's session with the head is the same either way; this module only starts
supervisors, tells the job manager when one ended without saying goodbye, and releases what a
finished job held.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import pickle
import signal
import subprocess
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ember.runtime.objects import ids, serialization
from ember.runtime.wire import auth, resources
from ember.runtime.wire.protocol import ember_pb2 as pb

if TYPE_CHECKING:
    from ember.runtime.head.head import Head

log = logging.getLogger("ember.runtime.head.jobs")

SUPERVISOR_MODULE = "ember.runtime.entrypoint_main"
HOST_CLASS = "EntrypointHost"
HOST_NAMESPACE = "_ember_jobs"
PLACEMENT_WAIT = 5.0  # seconds between looks at an entrypoint host that waits for a node


class Launcher:
    def __init__(self, head: Head, session_dir: str) -> None:
        self.head = head
        self.session_dir = session_dir
        # Set by the job manager: (submission id, why) a supervisor ended without reporting the
        # entrypoint's end; a job's supervisor waits for a node.
        self.on_ended: Callable[[str, str], None] = lambda submission_id, why: None
        self.on_waiting: Callable[[str, str], None] = lambda submission_id, why: None
        self.entrypoint_of: Callable[[str], int] = lambda submission_id: 0
        self._watchers: dict[str, asyncio.Task[None]] = {}
        self._ended: set[str] = set()

    async def start(self, info: pb.JobInfo, head_address: str) -> str:
        """Start the job's supervisor; returns where it runs (for people)."""
        shape = resources.to_fixed(info.entrypoint_shape.quantities)
        if not shape:
            return await self._start_here(info.submission_id, head_address)
        return await self._start_on_a_node(info.submission_id, shape, head_address)

    # ------------------------------------------------------------------ on the head's node

    async def _start_here(self, submission_id: str, head_address: str) -> str:
        logs = os.path.join(self.session_dir, "logs")
        os.makedirs(logs, exist_ok=True)
        log_path = os.path.join(logs, f"job-supervisor-{submission_id}.log")
        with open(log_path, "ab") as output:
            process = await asyncio.create_subprocess_exec(
                *supervisor_command(submission_id, head_address, run_dir(self.session_dir, submission_id)),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: a signal to the head's is not its
                env=supervisor_environment(),
            )
        log.info("job %s: supervisor pid %d started on the head's node (log %s)", submission_id, process.pid, log_path)

        async def watch() -> None:
            code = await process.wait()
            if submission_id not in self._ended:
                # Its entrypoint's process group is on this machine: it goes with its supervisor
                # (the entrypoint's first process is told by the kernel; this takes the rest).
                group = self.entrypoint_of(submission_id)
                if group:
                    try:
                        os.killpg(group, signal.SIGKILL)
                    except (ProcessLookupError, PermissionError):
                        pass
                self.on_ended(
                    submission_id,
                    f"its supervisor (pid {process.pid}) exited with code {code} before it reported "
                    f"the entrypoint's end; see {log_path}",
                )

        self._watchers[submission_id] = asyncio.ensure_future(watch())
        return f"the head's node ({self.head.actors.address or 'the head'})"

    # ------------------------------------------------------------------ on a node with room

    async def _start_on_a_node(self, submission_id: str, shape: resources.Shape, head_address: str) -> str:
        actor_id = ids.random_id()
        name = host_name(submission_id)
        args, _, _ = serialization.serialize_args(name, (submission_id, head_address), {})
        function = pickle.dumps(_Attribute(SUPERVISOR_MODULE, HOST_CLASS))
        spec = pb.ActorSpec(
            actor_id=actor_id,
            class_name=HOST_CLASS,
            name=name,
            namespace=HOST_NAMESPACE,
            creation=pb.TaskSpec(
                task_id=ids.random_id(),
                function=function,
                function_id=ids.random_id(),
                name=f"{HOST_CLASS}.__init__",
                args=args,
                num_returns=1,
                actor_id=actor_id,
                actor_creation=True,
                max_concurrency=1,
            ),
            shape=pb.ResourceSet(quantities=resources.to_float(shape)),
            hold=pb.ResourceSet(quantities=resources.to_float(shape)),
            max_restarts=0,  # a second entrypoint would run the job twice
            detached=True,  # outlives no driver but the head: a restarted head takes it back
            job=pb.JobConfig(namespace=HOST_NAMESPACE),
            owner_address=self.head.actors.address,
        )
        reply = await self.head.actors.create(spec)
        if reply.error:
            raise RuntimeError(reply.error)
        info = await self._wait_alive(submission_id, actor_id, shape)
        self.watch_host(submission_id)
        node = self.head.node_by_id(info.node_id)
        where = node.describe() if node is not None else f"node {ids.short(info.node_id)}"
        log.info("job %s: its entrypoint host (worker pid %d) runs on %s", submission_id, info.pid, where)
        return where

    async def _wait_alive(self, submission_id: str, actor_id: bytes, shape: resources.Shape) -> pb.ActorInfo:
        actors = self.head.actors
        record = actors.actors[actor_id]
        version = 0
        while True:
            info = await actors.get(record, version or 1, PLACEMENT_WAIT)
            if info.state == pb.ALIVE:
                return info
            if info.state == pb.DEAD:
                raise RuntimeError(
                    f"its entrypoint, which holds {resources.describe(shape)}, could not be placed: "
                    f"{info.death_cause}"
                )
            version = info.version
            self.on_waiting(submission_id, f"waiting for a node with {resources.describe(shape)} free for its entrypoint")

    def watch_host(self, submission_id: str) -> None:
        """Watch the job's entrypoint host (after a restart, the one the head took back): its
        death ends the job unless the job ended first."""
        record = self._host(submission_id)
        if record is None or submission_id in self._watchers:
            return

        async def watch() -> None:
            info = record.info
            while info.state != pb.DEAD:
                info = await self.head.actors.get(record, info.version, 60.0)
            if submission_id not in self._ended:
                self.on_ended(submission_id, f"its entrypoint's host died: {info.death_cause}")

        self._watchers[submission_id] = asyncio.ensure_future(watch())

    def _host(self, submission_id: str) -> Any:
        return self.head.actors.find(pb.GetActorRequest(name=host_name(submission_id), namespace=HOST_NAMESPACE))

    # ------------------------------------------------------------------ endings

    def finished(self, submission_id: str) -> None:
        """The job ended (or will never start): release what it held."""
        self._ended.add(submission_id)
        watcher = self._watchers.pop(submission_id, None)
        if watcher is not None:
            watcher.cancel()
        record = self._host(submission_id)
        if record is not None and record.info.state != pb.DEAD:
            self.head.actors.kill(pb.KillActorRequest(
                actor_id=record.spec.actor_id, no_restart=True, reason=f"job {submission_id} ended",
            ))

    def abandon(self, submission_id: str) -> None:
        self.finished(submission_id)

    async def close(self) -> None:
        for watcher in self._watchers.values():
            watcher.cancel()
        self._watchers.clear()


def host_name(submission_id: str) -> str:
    return f"job-{submission_id}"


def run_dir(session_dir: str, submission_id: str) -> str:
    """Where a supervisor unpacks the job's working_dir and buffers its output."""
    return os.path.join(session_dir, "job_runs", submission_id)


def supervisor_command(submission_id: str, head_address: str, directory: str) -> list[str]:
    return [
        sys.executable, "-m", SUPERVISOR_MODULE,
        "--submission-id", submission_id, "--head-address", head_address, "--job-dir", directory,
    ]


def supervisor_environment() -> dict[str, str]:
    """The head's environment (TLS settings, the session), with its token: a head may have
    read it from its state directory rather than from the environment."""
    env = dict(os.environ)
    if auth.token():
        env[auth.ENV] = auth.token()
    return env


class _Module:
    """Pickles as ``importlib.import_module(name)``: the head names the supervisor's module
    for a worker to import without importing it itself."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __reduce__(self) -> tuple[Any, ...]:
        return (importlib.import_module, (self.name,))


class _Attribute:
    """Pickles as ``getattr(import_module(module), name)``: the entrypoint host's class."""

    def __init__(self, module: str, name: str) -> None:
        self.module = module
        self.name = name

    def __reduce__(self) -> tuple[Any, ...]:
        return (getattr, (_Module(self.module), self.name))
