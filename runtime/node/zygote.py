"""The zygote: a pre-imported process that forks workers in milliseconds.

Starting a Python worker from scratch costs ~150 ms of CPU (interpreter, gRPC, cloudpickle);
forking one from a process that already imported them costs a few, and the forked workers share
the imported code's memory pages. The zygote never starts gRPC itself (forking after gRPC has
started threads is unsafe), so it stays single-threaded.

Its one argument names the worker's module (whose ``main()`` a forked worker runs).
Protocol, one JSON object per line: the node agent writes ``{"spawn": WORKER_ID, "env": {...}}``
to stdin; the zygote writes ``{"spawned": WORKER_ID, "pid": PID}`` and
``{"exited": PID, "returncode": CODE}`` to stdout. When stdin closes (the agent is gone) the
zygote kills its workers and exits; each worker also dies with the zygote (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import ctypes
import importlib
import json
import os
import selectors
import signal
import sys
from types import ModuleType
from typing import Any

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the worker's agent session still ends it
        pass


def _preload(worker_main: str) -> ModuleType:
    """Import what every worker needs once, so that its pages are shared by every worker and no
    task pays for the import: numpy (most tasks use it) and the worker's own module (gRPC,
    protobuf, cloudpickle, the executor), named by the node agent."""
    import numpy  # noqa: F401

    return importlib.import_module(worker_main)


class Zygote:
    def __init__(self, worker: ModuleType) -> None:
        self.worker = worker
        self.children: set[int] = set()
        self.out = os.fdopen(os.dup(1), "w", buffering=1)
        self.commands = os.dup(0)
        self.pending = b""
        # Nothing else may write to the event stream.
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)
        os.dup2(devnull, 1)
        os.close(devnull)
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)
        os.set_blocking(self.wake_r, False)
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, self._terminate)

    def emit(self, event: dict[str, Any]) -> None:
        self.out.write(json.dumps(event) + "\n")

    def run(self) -> None:
        selector = self.selector = selectors.DefaultSelector()
        selector.register(self.commands, selectors.EVENT_READ, "command")
        selector.register(self.wake_r, selectors.EVENT_READ, "signal")
        while True:
            for key, _ in selector.select():
                if key.data == "signal":
                    try:
                        os.read(self.wake_r, 512)
                    except BlockingIOError:
                        pass
                    self._reap()
                else:
                    chunk = os.read(self.commands, 65536)
                    if not chunk:
                        self._terminate()
                    self.pending += chunk
                    *lines, self.pending = self.pending.split(b"\n")
                    for line in lines:
                        if line.strip():
                            self._spawn(json.loads(line))

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.children.discard(pid)
            self.emit({"exited": pid, "returncode": os.waitstatus_to_exitcode(status)})

    def _spawn(self, command: dict[str, Any]) -> None:
        worker_id = command["spawn"]
        pid = os.fork()
        if pid == 0:
            self._become_worker(command)
        self.children.add(pid)
        self.emit({"spawned": worker_id, "pid": pid})

    def _become_worker(self, command: dict[str, Any]) -> None:
        code = 1
        try:
            _die_with_parent()
            signal.set_wakeup_fd(-1)
            for sig in (signal.SIGCHLD, signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, signal.SIG_DFL)
            self.selector.close()
            self.out.close()
            os.close(self.commands)
            os.close(self.wake_r)
            os.close(self.wake_w)
            os.environ.update(command.get("env", {}))
            if "numpy" in sys.modules:
                # Forked children would otherwise all draw the same random numbers.
                sys.modules["numpy"].random.seed()
            code = self.worker.main()
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            os._exit(code)

    def _terminate(self, *_: Any) -> None:
        for pid in list(self.children):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in list(self.children):
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        os._exit(0)


def main() -> None:
    _die_with_parent()
    Zygote(_preload(sys.argv[1])).run()


if __name__ == "__main__":
    main()
