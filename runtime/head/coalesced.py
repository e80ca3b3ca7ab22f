"""An action the head owes after a change, run at most once per interval however many changes
came in between.

Some of the head's work is proportional to the whole cluster (rewriting the list of every
node's metrics endpoint, one message to every node): done once per event, a burst of N events
costs N times the cluster. Done through ``Coalesced`` it costs once per interval: the first
change after a quiet interval runs the action on the loop's next turn, later ones wait for the
interval to pass, and every change is covered by the run that follows it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

log = logging.getLogger("ember.runtime.head.coalesced")


class Coalesced:
    """Runs ``action`` after ``changed()``, at most once per ``interval`` seconds.

    One timer at most is pending at a time (no task piles up behind a burst), and ``close()``
    cancels it and runs the action one last time if a change is still owed, so the last
    change always takes effect and nothing is left scheduled once the head stops."""

    def __init__(self, action: Callable[[], None], interval: float, what: str) -> None:
        self.action = action
        self.interval = interval
        self.what = what  # for the log line if the action fails
        self.runs = 0
        self._owed = False
        self._timer: asyncio.TimerHandle | None = None
        self._last = float("-inf")

    def changed(self) -> None:
        """Something the action covers changed: run it soon, once for all changes until then."""
        self._owed = True
        if self._timer is None:
            delay = max(0.0, self._last + self.interval - time.monotonic())
            self._timer = asyncio.get_running_loop().call_later(delay, self._run)

    @property
    def pending(self) -> bool:
        return self._owed

    def _run(self) -> None:
        self._timer = None
        if not self._owed:
            return
        self._owed = False
        self._last = time.monotonic()
        self.runs += 1
        try:
            self.action()
        except Exception:  # a failed run must not stop later ones: the next change retries
            log.exception("head: %s failed", self.what)

    def close(self) -> None:
        """Run what is still owed now, and leave no timer behind."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._run()
