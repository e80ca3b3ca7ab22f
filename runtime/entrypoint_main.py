"""``python -m ember.runtime.entrypoint_main``: the supervisor of one job's entrypoint.

The head starts one per submitted job (``ember.runtime.head.job_launch``): on the head's node,
or through an ``EntrypointHost`` actor on a node with the entrypoint's resources. It asks the
head for the job (``SuperviseJob``: the entrypoint, the runtime_env), unpacks the job's
working_dir, runs the entrypoint with ``/bin/sh -c`` in a process group of its own, and for as
long as it runs:

- writes what it prints (stdout and stderr, in order) to a local file and streams it to the
  head, from the offset the head says it holds: after a head restart nothing is lost or sent
  twice;
- on the head's order, sends SIGTERM to the entrypoint's process group, then SIGKILL after the
  grace period;
- reports the exit status, after the last of the output.

If the head goes away, the supervisor keeps the entrypoint running as long as the head said it
would come back within (its state directory lets a new head take the job back), trying to reach
it again; past that, or at once for a head without a state directory, it stops the entrypoint
and exits. When the entrypoint ends, what is left of its process group is killed: nothing the
job started outlives it.

The entrypoint's environment makes its ``ember.init()`` join this cluster (``EMBER_ADDRESS``,
``EMBER_TOKEN``), finds the cluster's Python first on ``PATH``, and carries the job's runtime_env (``EMBER_JOB_RUNTIME_ENV``) and submission id
(``EMBER_JOB_SUBMISSION_ID``); runtime_env's ``env_vars`` are set, and with a working_dir it runs
in the unpacked directory, which is also first on ``PYTHONPATH``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

import grpc

from ember.runtime import session
from ember.runtime.wire import auth, event_loop, package_format, package_transfer, rpc
from ember.runtime.wire.package_format import PackageError
from ember.runtime.wire.protocol import ember_pb2 as pb
from ember.runtime.wire.protocol import ember_pb2_grpc as rpc_pb

log = logging.getLogger("ember.runtime.entrypoint")

READ_SIZE = 1 << 16
RECONNECT_INTERVAL = 0.5
LEFTOVER_WAIT = 2.0  # seconds the pipe may stay open after the entrypoint exits
OUTPUT_LINGER = 0.05  # seconds output waits for more before it is sent
ENV_SUBMISSION_ID = "EMBER_JOB_SUBMISSION_ID"
ENV_RUNTIME_ENV = "EMBER_JOB_RUNTIME_ENV"


# The entrypoint's first process: asks the kernel to SIGKILL it should the supervisor die (even by
# SIGKILL, when nothing of the supervisor's runs any more), then becomes ``/bin/sh -c ENTRYPOINT``.
# A preexec_fn could do the same without the extra exec, but is unsafe in a process with threads
# (gRPC's), so it is done here, in a process of its own, before the exec.
#
# The shell catches SIGTERM (``trap : TERM``) so that a stop's SIGTERM, sent to the whole process
# group, ends the programs it runs, not the shell waiting for them: a program that cleans up on
# SIGTERM gets to finish, and the shell exits with its status. Its children get the default
# disposition back (a caught signal is reset by exec), unlike with an ignored one.
_EXEC_SHIM = """
import ctypes, os, signal, sys
ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
if os.getppid() != int(sys.argv[2]):
    os._exit(137)  # the supervisor is gone already
os.execv("/bin/sh", ["/bin/sh", "-c", "trap : TERM\\n" + sys.argv[1]])
"""


class Refused(Exception):
    """The head knows no such job (any more)."""


class Supervisor:
    def __init__(self, submission_id: str, head_address: str, job_dir: str) -> None:
        self.submission_id = submission_id
        self.head_address = head_address
        self.job_dir = job_dir
        self.output_path = os.path.join(job_dir, "output.log")
        self.output_size = 0
        self.output_done = asyncio.Event()  # the pipe reached its end
        self.changed = asyncio.Event()  # set (and replaced) on new output or the exit
        self.process: asyncio.subprocess.Process | None = None
        self.start_time = 0.0
        self.exited: pb.EntrypointExited | None = None
        self.stop_grace: float | None = None  # a stop was ordered, with this grace
        self.aborting = ""  # why the supervisor stops the entrypoint on its own
        self.head_grace = 0.0
        self.channel: Any = None

    def describe(self) -> str:
        return f"job {self.submission_id}"

    def _touch(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()

    # ------------------------------------------------------------------ the whole life

    async def run(self) -> int:
        os.makedirs(self.job_dir, exist_ok=True)
        try:
            call, welcome = await self._connect()
        except Refused as refusal:
            log.error("%s: the head refused its supervisor: %s", self.describe(), refusal)
            return 1
        except grpc.aio.AioRpcError as error:
            log.error("%s: cannot reach the head at %s: %s", self.describe(), self.head_address, error.details())
            return 1
        self.head_grace = welcome.head_grace_seconds
        session_task = asyncio.ensure_future(self._session(call, welcome))
        try:
            await self._start(welcome)
        except (PackageError, OSError, ValueError) as error:
            log.error("%s: cannot start the entrypoint: %s", self.describe(), error)
            self.exited = pb.EntrypointExited(failure=f"its entrypoint could not be started: {error}",
                                              error_type="SETUP_FAILED", end_time=time.time())
            self.output_done.set()
            self._touch()
        else:
            event_loop.detach(self._wait_exit(), "waiting for the entrypoint's exit")
        outcome = await session_task
        while outcome == "lost":
            outcome = await self._reconnect()
        if self.exited is None:
            await self._stop_entrypoint(3.0)
            await self._wait_for_exit()
        log.info("%s: supervisor done (%s)", self.describe(), outcome)
        return 0

    async def _connect(self) -> tuple[Any, pb.SupervisorWelcome]:
        if self.channel is not None:
            await self.channel.close()
        self.channel = rpc.open_channel(self.head_address)
        call = rpc_pb.JobsStub(self.channel).SuperviseJob()
        await call.write(pb.SupervisorMessage(hello=pb.SupervisorHello(
            submission_id=self.submission_id,
            pid=os.getpid(),
            host=socket.gethostname(),
            entrypoint_pid=self.process.pid if self.process is not None else 0,
            output_bytes=self.output_size,
            start_time=self.start_time,
        )))
        first = await call.read()
        if first is grpc.aio.EOF or first.WhichOneof("kind") == "refused":
            call.cancel()
            raise Refused(first.refused if first is not grpc.aio.EOF else "the head closed the session")
        return call, first.welcome

    async def _reconnect(self) -> str:
        """The head went away: wait for it as long as it said it would come back within."""
        deadline = time.monotonic() + self.head_grace
        if self.head_grace > 0:
            log.warning("%s: lost the head at %s; trying again for %gs", self.describe(), self.head_address, self.head_grace)
        while time.monotonic() < deadline and not self.aborting:
            await asyncio.sleep(RECONNECT_INTERVAL)
            try:
                call, welcome = await asyncio.wait_for(self._connect(), 10.0)
            except (grpc.aio.AioRpcError, TimeoutError, OSError):
                continue
            except Refused as refusal:
                log.warning("%s: the restarted head does not take the job back: %s", self.describe(), refusal)
                await self._abort(f"the restarted head refused it: {refusal}")
                return "refused"
            log.info("%s: back in session with the head", self.describe())
            self.head_grace = welcome.head_grace_seconds
            return await self._session(call, welcome)
        why = "the head went away" if self.head_grace <= 0 else f"the head did not come back within {self.head_grace:g}s"
        await self._abort(why)
        return "head gone"

    # ------------------------------------------------------------------ the session

    async def _session(self, call: Any, welcome: pb.SupervisorWelcome) -> str:
        """Send output and the exit; obey orders. Returns how it ended: done, refused, lost."""
        sender = asyncio.ensure_future(self._send(call, min(welcome.output_offset, self.output_size)))
        try:
            while True:
                reader = asyncio.ensure_future(call.read())
                await asyncio.wait((reader, sender), return_when=asyncio.FIRST_COMPLETED)
                if not reader.done():
                    reader.cancel()
                    sender.result()  # raises what broke it
                    return "lost"
                order = reader.result()
                if order is grpc.aio.EOF:
                    return "lost"
                kind = order.WhichOneof("kind")
                if kind == "stop":
                    await self._stop_entrypoint(order.stop)
                elif kind == "done":
                    return "done"
                elif kind == "refused":
                    log.warning("%s: the head ended the session: %s", self.describe(), order.refused)
                    await self._abort(f"the head refused it: {order.refused}")
                    return "refused"
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError, ConnectionError) as error:
            log.info("%s: the session with the head broke: %s", self.describe(), error)
            return "lost"
        finally:
            sender.cancel()
            call.cancel()

    async def _send(self, call: Any, sent: int) -> None:
        started_said = exited_said = False
        with open(self.output_path, "ab+") as output:
            while True:
                changed = self.changed
                if self.process is not None and not started_said:
                    await call.write(pb.SupervisorMessage(started=self.process.pid))
                    started_said = True
                if sent < self.output_size:
                    if self.output_size - sent < package_format.CHUNK and not self.output_done.is_set():
                        # A program printing line by line makes many tiny writes: what comes
                        # within a moment travels as one message (and reaches followers as one).
                        await asyncio.sleep(OUTPUT_LINGER)
                    output.seek(sent)
                    data = output.read(package_format.CHUNK)
                    await call.write(pb.SupervisorMessage(output=pb.JobOutput(offset=sent, data=data)))
                    sent += len(data)
                    continue
                if self.exited is not None and self.output_done.is_set() and not exited_said:
                    # The last word, after the last of the output: the head answers done.
                    await call.write(pb.SupervisorMessage(exited=self.exited))
                    exited_said = True
                await changed.wait()

    # ------------------------------------------------------------------ the entrypoint

    async def _start(self, welcome: pb.SupervisorWelcome) -> None:
        runtime_env = json.loads(welcome.runtime_env_json) if welcome.runtime_env_json else {}
        cwd = os.path.join(self.job_dir, "scratch")
        working_dir = runtime_env.get("working_dir", "")
        if working_dir:
            cwd = os.path.join(self.job_dir, "working_dir")
            if not os.path.isdir(cwd):
                await self._unpack(working_dir, cwd)
        os.makedirs(cwd, exist_ok=True)
        env = dict(os.environ)
        env["EMBER_ADDRESS"] = f"ember://{welcome.head_address or self.head_address}"
        if auth.token():
            env[auth.ENV] = auth.token()
        env[ENV_SUBMISSION_ID] = self.submission_id
        if welcome.runtime_env_json:
            env[ENV_RUNTIME_ENV] = welcome.runtime_env_json
        env.update(runtime_env.get("env_vars") or {})
        env.setdefault("PYTHONUNBUFFERED", "1")
        # `python` in the entrypoint is the cluster's: the one its workers run, with ember.
        env["PATH"] = os.pathsep.join(p for p in (os.path.dirname(sys.executable), env.get("PATH", "")) if p)
        if working_dir:
            env["PYTHONPATH"] = os.pathsep.join(p for p in (cwd, env.get("PYTHONPATH", "")) if p)
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-S", "-E", "-c", _EXEC_SHIM, welcome.entrypoint, str(os.getpid()),
            cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
        self.start_time = time.time()
        log.info("%s: entrypoint pid %d: %s", self.describe(), self.process.pid, welcome.entrypoint)
        self._touch()
        event_loop.detach(self._pump(), "pumping the entrypoint's output")

    async def _unpack(self, working_dir: str, target: str) -> None:
        limit = package_format.max_bytes()
        if package_format.is_package_uri(working_dir):
            data = await package_transfer.download(rpc_pb.PackagesStub(self.channel), working_dir, limit)
            strip = False
        else:
            data = await package_transfer.fetch_url(working_dir, limit)
            strip = True
        await asyncio.to_thread(package_format.extract, data, target, strip)
        log.info("%s: working_dir %s unpacked into %s", self.describe(), working_dir, target)

    async def _pump(self) -> None:
        """The entrypoint's output into the local file, as it comes."""
        assert self.process is not None and self.process.stdout is not None
        with open(self.output_path, "ab") as output:
            while True:
                data = await self.process.stdout.read(READ_SIZE)
                if not data:
                    break
                output.write(data)
                output.flush()
                self.output_size += len(data)
                self._touch()
        self.output_done.set()
        self._touch()

    async def _wait_exit(self) -> None:
        assert self.process is not None
        code = await self.process.wait()
        _kill_group(self.process.pid, signal.SIGKILL)  # what it left behind goes with it
        try:
            await asyncio.wait_for(self.output_done.wait(), LEFTOVER_WAIT)
        except TimeoutError:
            log.warning("%s: its output stayed open after it exited; closing it", self.describe())
            self.output_done.set()
        failure = ""
        if self.aborting:
            failure = f"its entrypoint was stopped: {self.aborting}"
        self.exited = pb.EntrypointExited(
            exit_code=code, stopped=self.stop_grace is not None and not self.aborting,
            failure=failure, error_type="SUPERVISOR_FAILED" if failure else "", end_time=time.time(),
        )
        log.info("%s: entrypoint exited with %s", self.describe(), code)
        self._touch()

    async def _wait_for_exit(self) -> None:
        while self.exited is None:
            await self.changed.wait()

    async def _stop_entrypoint(self, grace: float) -> None:
        if self.stop_grace is not None or self.process is None or self.exited is not None:
            return
        self.stop_grace = grace
        pid = self.process.pid
        log.info("%s: stopping the entrypoint (pid %d): SIGTERM, SIGKILL after %gs", self.describe(), pid, grace)
        _kill_group(pid, signal.SIGTERM)

        async def escalate() -> None:
            await asyncio.sleep(grace)
            if self.exited is None:
                log.warning("%s: the entrypoint outlived its %gs grace: SIGKILL", self.describe(), grace)
                _kill_group(pid, signal.SIGKILL)

        event_loop.detach(escalate(), "stopping the entrypoint")

    async def _abort(self, why: str) -> None:
        """Stop the entrypoint on the supervisor's own account, and wait for it to end."""
        if not self.aborting:
            self.aborting = why
            log.warning("%s: stopping its entrypoint: %s", self.describe(), why)
        await self._stop_entrypoint(3.0)
        await self._wait_for_exit()

    def cleanup(self) -> None:
        shutil.rmtree(self.job_dir, ignore_errors=True)


def _kill_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


# ---------------------------------------------------------------------- the entrypoint host


class EntrypointHost:
    """The actor that holds a job's entrypoint resources on a node (created by the head, see
    ``ember.runtime.head.job_launch``): its constructor starts the job's supervisor there, tied
    to this worker by a lifeline, so that the resources are held while the entrypoint runs and
    the entrypoint ends if the worker does."""

    def __init__(self, submission_id: str, head_address: str) -> None:
        session_dir = os.environ.get("EMBER_SESSION_DIR") or tempfile.gettempdir()
        logs = os.path.join(session_dir, "logs")
        os.makedirs(logs, exist_ok=True)
        env = dict(os.environ)
        if auth.token():
            env[auth.ENV] = auth.token()
        job_dir = os.path.join(session_dir, "job_runs", submission_id)
        with open(os.path.join(logs, f"job-supervisor-{submission_id}.log"), "ab") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", __name__, "--submission-id", submission_id,
                 "--head-address", head_address, "--job-dir", job_dir, "--lifeline"],
                stdin=subprocess.PIPE, stdout=output, stderr=subprocess.STDOUT,
                start_new_session=True, env=env,
            )

    def pid(self) -> int:
        return self.process.pid


# ---------------------------------------------------------------------- the process


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ember-job-supervisor")
    parser.add_argument("--submission-id", required=True)
    parser.add_argument("--head-address", required=True)
    parser.add_argument("--job-dir", required=True)
    parser.add_argument("--lifeline", action="store_true", help="stop the entrypoint when stdin closes")
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> int:
    supervisor = Supervisor(args.submission_id, args.head_address, args.job_dir)
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()

    def stop(why: str) -> None:
        if supervisor.process is None or supervisor.exited is not None:
            if main is not None:
                main.cancel()  # nothing runs: just go
            return
        event_loop.detach(supervisor._abort(why), "aborting the job")

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop, f"its supervisor received {signal.Signals(sig).name}")
    if args.lifeline:
        def host_ended() -> None:
            loop.call_soon_threadsafe(stop, "its host (the worker holding its resources) ended")

        session.watch_lifeline(host_ended)
    try:
        return await supervisor.run()
    except asyncio.CancelledError:
        return 1
    finally:
        if supervisor.channel is not None:
            await supervisor.channel.close()
        supervisor.cleanup()


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    logging.basicConfig(
        level=os.environ.get("EMBER_LOG_LEVEL", "INFO"),
        format=f"%(asctime)s %(levelname)s job-supervisor pid={os.getpid()} %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    auth.set_token(auth.from_environment())
    code = asyncio.run(serve(args))
    sys.stdout.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
