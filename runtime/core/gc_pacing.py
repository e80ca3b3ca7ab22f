"""Fewer cyclic-garbage collections while an owner holds many pending tasks.

Every pending task is a ``TaskRecord``, its ``ObjectRef``s and protobuf messages, all tracked
by Python's cyclic collector. A collection of the older generations traverses every one of
them, and with the default thresholds (700 allocations per young collection) a burst of a
million tasks set off thousands of collections, a dozen of them full: about a fifth of the
owner's time per task (measured: 6.7 of 27 µs per task at 500,000 no-op tasks).

While more than ``HIGH`` tasks are pending the young generation's threshold is raised to
``THRESHOLD`` allocations (2.7 µs of gc per task at 20,000; 1.5 at 50,000; no better beyond), and
put back once fewer than ``LOW`` are. Nothing is exempted from collection (``gc.freeze`` was
measured too and added nothing on top): cyclic garbage is still found, a few tens of thousands
of allocations later. A threshold the program set itself to something higher is left alone,
and one it changed while the burst ran is not overwritten.
"""

from __future__ import annotations

import gc
import logging

log = logging.getLogger("ember.runtime.core.gc_pacing")

HIGH = 10_000  # pending tasks above which young collections are spaced out
LOW = 1_000  # and below which the program's own threshold is back
THRESHOLD = 50_000


class GcPacing:
    """Call ``pending(n)`` with the owner's pending task count when it may have changed much
    (after a batch of submissions, and periodically); it costs a comparison."""

    def __init__(self, high: int = HIGH, low: int = LOW, threshold: int = THRESHOLD) -> None:
        self.high = high
        self.low = low
        self.threshold = threshold
        self._saved: tuple[int, int, int] | None = None  # the program's, while raised

    @property
    def raised(self) -> bool:
        return self._saved is not None

    def pending(self, count: int) -> None:
        if self._saved is None:
            if count > self.high:
                self._raise()
        elif count < self.low:
            self.restore()

    def _raise(self) -> None:
        current = gc.get_threshold()
        if current[0] == 0 or current[0] >= self.threshold:
            return  # the program disabled collection by threshold, or spaced it out further
        self._saved = current
        gc.set_threshold(self.threshold, current[1], current[2])
        log.debug("over %d tasks pending: young collections every %d allocations", self.high, self.threshold)

    def restore(self) -> None:
        """Put the program's thresholds back (also when the owner shuts down)."""
        saved, self._saved = self._saved, None
        if saved is None:
            return
        if gc.get_threshold()[0] == self.threshold:  # not changed by the program meanwhile
            gc.set_threshold(*saved)
