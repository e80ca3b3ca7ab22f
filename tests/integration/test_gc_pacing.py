"""A driver with many tasks pending collects fewer times, and still collects its cyclic garbage.

The owner raises the young generation's threshold while more than ``gc_pacing.HIGH`` tasks are
pending (``gc_pacing``); cyclic garbage made meanwhile must still be found by the collector's
own schedule, without anyone calling ``gc.collect()``, and the program's threshold must be back
once the burst is over.
"""

from __future__ import annotations

import gc
import time
import weakref

import ember
from ember.runtime.core import gc_pacing


@ember.remote
def blocker(seconds: float) -> int:
    time.sleep(seconds)
    return 1


@ember.remote
def after(x: int) -> int:
    return x


class Cycle:
    def __init__(self) -> None:
        self.me = self


def _wait_for(condition, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_cyclic_garbage_is_collected_while_many_tasks_wait_and_thresholds_come_back(cluster) -> None:
    original = gc.get_threshold()
    assert original[0] < gc_pacing.THRESHOLD
    gate = blocker.remote(3.0)
    refs = [after.remote(gate) for _ in range(gc_pacing.HIGH + 2_000)]  # all wait for the gate
    assert _wait_for(lambda: gc.get_threshold()[0] == gc_pacing.THRESHOLD), gc.get_threshold()
    finalized = []
    garbage = Cycle()
    weakref.finalize(garbage, finalized.append, True)
    del garbage  # only the collector can free it now
    assert not finalized
    churn = []
    for i in range(4 * gc_pacing.THRESHOLD):  # allocations the collector counts
        churn.append([i])
        if finalized:
            break
    assert finalized, "cyclic garbage made while tasks were pending was never collected"
    del churn
    assert sum(ember.get(refs)) == len(refs)
    del refs
    assert _wait_for(lambda: gc.get_threshold() == original), (gc.get_threshold(), original)
