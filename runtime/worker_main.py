"""A worker process: runs tasks on its main thread, serves CoreWorker on its I/O thread.

The main thread owns the task channel (``task_channel.ChannelServer``): it reads tasks from
owners, runs them and writes their results. The I/O thread serves the CoreWorker gRPC service
(cancel, objects this worker owns) and the owner logic of nested tasks. Workers are forked by the
node's zygote (``zygote.py``) with their settings in the environment, and live as long as their
session with the node agent: when the agent goes away, or tells an idle worker to leave, the
worker exits. A worker of a runtime_env (``node/runtime_envs.py``) moves into the environment
before anything else: its working_dir is its current directory, its code first on its path.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

import grpc

from ember.runtime.core import context, cpu_threads, visible_gpus
from ember.runtime.core.core_service import CoreWorkerService
from ember.runtime.core.executor import Executor, _exit_now
from ember.runtime.core.task_log_index import TaskLogIndex
from ember.runtime.core.task_output import TaskLogHandler, TaskOutput
from ember.runtime.wire import auth, log_lines, rpc
from ember.runtime.wire.event_loop import IoThread
from ember.runtime.wire.listen_address import bind_host
from ember.runtime.wire.protocol import ember_pb2 as pb
from ember.runtime.wire.protocol import ember_pb2_grpc as rpc_pb
from ember.runtime.wire.task_channel import ChannelServer

log = logging.getLogger("ember.runtime.worker_main")


class AgentSession:
    """The worker's lifeline to its node agent; also carries 'blocked in get' notices."""

    def __init__(
        self, executor: Executor, channel: ChannelServer, agent_address: str, address: str
    ) -> None:
        self.executor = executor
        self.channel = channel
        self.agent_address = agent_address
        self.address = address
        self.outbox: asyncio.Queue[pb.WorkerMessage] = asyncio.Queue()

    def send_blocked(self, blocked: bool) -> None:
        self.executor.io.call_soon(self.outbox.put_nowait, pb.WorkerMessage(blocked=blocked))

    async def run(self) -> None:
        channel = rpc.open_channel(self.agent_address)
        call = rpc_pb.NodeAgentStub(channel).WorkerSession()
        worker_id = self.executor.worker_id
        hello = pb.WorkerHello(
            worker_id=worker_id,
            address=self.address,
            pid=os.getpid(),
            channel_address=self.channel.address,
        )
        try:
            await call.write(pb.WorkerMessage(hello=hello))
            writer = asyncio.ensure_future(self._write(call))
            try:
                while True:
                    message = await call.read()
                    if message is grpc.aio.EOF:
                        break
                    if message.WhichOneof("kind") == "exit_if_idle":
                        if self._idle():
                            log.info("idle and not needed: exiting")
                            if self.executor.owner is not None:
                                await self.executor.owner.flush_metrics(timeout=1.0)
                            _exit_now(0)
                        await self.outbox.put(pb.WorkerMessage(busy=pb.Empty()))
            finally:
                writer.cancel()
        except grpc.aio.AioRpcError as error:
            log.info("session with node agent %s ended: %s", self.agent_address, error.code())
        log.info("node agent %s is gone: exiting", self.agent_address)
        _exit_now(0)

    async def _write(self, call: grpc.aio.StreamStreamCall) -> None:
        while True:
            message = await self.outbox.get()
            await call.write(message)

    def _idle(self) -> bool:
        executor = self.executor
        if executor.current is not None or not self.channel.idle():
            return False
        owner = executor.owner
        return owner is None or not owner.owns_objects()


def _log_stem(session_dir: str, worker_id: str) -> str:
    return os.path.join(session_dir, "logs", f"worker-{worker_id[:12]}-{os.getpid()}")


def _redirect_output(session_dir: str, worker_id: str) -> tuple[int, int]:
    """Point fd 1 and 2 at the worker's log files, so even C extensions' output lands there."""
    logs = os.path.join(session_dir, "logs")
    os.makedirs(logs, mode=0o700, exist_ok=True)
    stem = _log_stem(session_dir, worker_id)
    out = os.open(stem + ".out", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    err = os.open(stem + ".err", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(out, 1)
    os.dup2(err, 2)
    os.close(out)
    os.close(err)
    return 1, 2


def _enter_runtime_env(env: os._Environ[str]) -> None:
    """A worker of a runtime_env: into its working_dir, its code first on the import path.
    One started as a process of its own also dies with its node agent, as forked ones do."""
    parent = env.get("EMBER_DIE_WITH_PARENT")
    if parent:
        import ctypes

        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
        if str(os.getppid()) != parent:
            os._exit(1)  # the agent died before the line above took effect
    cwd = env.get("EMBER_RUNTIME_ENV_CWD")
    if cwd:
        os.chdir(cwd)
    paths = [path for path in env.get("EMBER_RUNTIME_ENV_PATH", "").split(os.pathsep) if path]
    if paths:
        sys.path[:] = paths + [entry for entry in sys.path if entry not in paths]


def main() -> int:
    env = os.environ
    _enter_runtime_env(env)
    worker_id_hex = env["EMBER_WORKER_ID"]
    host = env.get("EMBER_NODE_HOST", "127.0.0.1")
    session_dir = env["EMBER_SESSION_DIR"]
    out_fd, err_fd = _redirect_output(session_dir, worker_id_hex)
    sys.stdout = os.fdopen(out_fd, "w", buffering=1, closefd=False)
    sys.stderr = os.fdopen(err_fd, "w", buffering=1, closefd=False)
    logging.basicConfig(
        level=env.get("EMBER_LOG_LEVEL", "INFO"),
        format=f"%(asctime)s %(levelname)s worker pid={os.getpid()} %(name)s: %(message)s",
        stream=sys.stderr,
    )
    log_lines.install()
    context.node_id = env.get("EMBER_NODE_ID", "")
    visible_gpus.remember_start_environment()
    cpu_threads.start()
    context.worker_id = worker_id_hex
    auth.set_token(auth.from_environment())
    io = IoThread("ember-io")
    executor = Executor(io, bytes.fromhex(worker_id_hex), host)
    stem = _log_stem(session_dir, worker_id_hex)
    executor.task_logs = TaskLogIndex(stem + ".out", stem + ".err", out_fd, err_fd)

    async def start() -> str:
        server = rpc.server(f"worker pid {os.getpid()}")
        rpc_pb.add_CoreWorkerServicer_to_server(
            CoreWorkerService(lambda: executor.owner, executor), server
        )
        port = rpc.bind(server, bind_host(host), 0)
        await server.start()
        executor._server = server  # type: ignore[attr-defined]  # kept alive with the executor
        return f"{host}:{port}"

    address = io.run(start())
    env["EMBER_WORKER_ADDRESS"] = address
    channel = ChannelServer(host, executor, executor.check_hello, executor.worker_id)
    session = AgentSession(executor, channel, env["EMBER_AGENT_ADDRESS"], address)
    executor.on_blocked_change = session.send_blocked
    io.submit(session.run())
    # What tasks print goes to the log files and to the driver.
    sys.stdout = TaskOutput(out_fd, executor.forwarder, is_stderr=False)
    sys.stderr = TaskOutput(err_fd, executor.forwarder, is_stderr=True)
    # And what they log (the handler basicConfig made above still writes it to the file).
    logging.getLogger().addHandler(TaskLogHandler(executor.forwarder, io.thread.ident))
    executor.install_signal_handler()
    channel.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
