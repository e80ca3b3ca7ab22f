"""The node agent's workers: started through the zygote, tracked until they exit."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

from ember.runtime import ids
from ember.runtime.protocol import ember_pb2 as pb

log = logging.getLogger("ember.runtime.worker_pool")

STARTING = "starting"
IDLE = "idle"
LEASED = "leased"
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
        "asked_to_exit",
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
        self.asked_to_exit = False

    def describe(self) -> str:
        return f"worker {ids.short(self.worker_id)} (pid {self.pid or '?'})"


def start_zygote(env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start the zygote first thing, so it imports while the agent does."""
    return subprocess.Popen(
        [sys.executable, "-m", "ember.runtime.zygote"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
    )


class WorkerPool:
    def __init__(
        self,
        zygote: subprocess.Popen[bytes],
        worker_env: dict[str, str],
        on_exit: Callable[[WorkerHandle], None],
    ) -> None:
        self.zygote = zygote
        self.worker_env = worker_env
        self.on_exit = on_exit
        self.workers: dict[bytes, WorkerHandle] = {}
        self.by_pid: dict[int, WorkerHandle] = {}
        self._events: asyncio.Task[None] | None = None
        self.closing = False

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        assert self.zygote.stdout is not None
        await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), self.zygote.stdout
        )
        self._events = asyncio.ensure_future(self._read_events(reader))

    def spawn(self) -> WorkerHandle:
        worker = WorkerHandle(ids.random_id())
        self.workers[worker.worker_id] = worker
        command = {"spawn": worker.worker_id.hex(), "env": self.worker_env | {
            "EMBER_WORKER_ID": worker.worker_id.hex()
        }}
        assert self.zygote.stdin is not None
        try:
            self.zygote.stdin.write((json.dumps(command) + "\n").encode())
            self.zygote.stdin.flush()
        except (BrokenPipeError, ValueError) as error:
            log.error("the zygote is gone; cannot start workers: %s", error)
            worker.state = DEAD
            worker.exited.set()
        return worker

    def starting(self) -> int:
        return sum(1 for w in self.workers.values() if w.state == STARTING)

    async def _read_events(self, reader: asyncio.StreamReader) -> None:
        while True:
            line = await reader.readline()
            if not line:
                if not self.closing:
                    log.error("the zygote exited (code %s); no new workers", self.zygote.poll())
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
