"""Echo a session's log files to stdout, for ``ember start --block`` in a container.

Inside a pod, ``kubectl logs`` shows the container's stdout and nothing else, while ember's
processes each write their own file (so that ``ember logs`` and the dashboard can serve them
per worker). In the foreground, the CLI follows every file of the session, new ones included,
and prints each line once, prefixed with the file it came from.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import TextIO

POLL = 0.2


class LogEcho:
    def __init__(self, session_dir: str, out: TextIO = sys.stdout) -> None:
        self.directory = os.path.join(session_dir, "logs")
        self.out = out
        self._offsets: dict[str, int] = {}
        self._partial: dict[str, bytes] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ember-log-echo", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.poll()  # the last lines the processes wrote on their way out

    def _run(self) -> None:
        while not self._stop.wait(POLL):
            self.poll()

    def poll(self) -> None:
        try:
            names = sorted(os.listdir(self.directory))
        except FileNotFoundError:
            return
        for name in names:
            if name.startswith("."):
                continue
            path = os.path.join(self.directory, name)
            try:
                with open(path, "rb") as f:
                    f.seek(self._offsets.get(name, 0))
                    data = f.read()
            except OSError:
                continue
            if not data:
                continue
            self._offsets[name] = self._offsets.get(name, 0) + len(data)
            data = self._partial.pop(name, b"") + data
            lines = data.split(b"\n")
            if lines[-1]:
                self._partial[name] = lines[-1]  # wait for the rest of the line
            label = name.rsplit(".", 1)[0] if name.endswith(".log") else name
            for line in lines[:-1]:
                self.out.write(f"[{label}] {line.decode(errors='replace')}\n")
        self.out.flush()
