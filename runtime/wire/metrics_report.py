"""The metrics report: what drivers and workers count and their node agent adds up.

Its format is shared by both ends, so it lives on the wire: the report interval, the histogram
bounds, the names of the task states, and histogram buckets that are counted in one process and
added up in another. prometheus-client's Histogram keeps cumulative state for one process's
exposition; what travels from a worker to its node agent must instead be the counts since the
last report.
"""

from __future__ import annotations

import bisect

from ember.runtime.wire.protocol import ember_pb2 as pb

REPORT_INTERVAL = 2.0  # seconds
STALE_AFTER = 3 * REPORT_INTERVAL + 1  # a process silent this long has exited

# Submission to start, as the owner sees it (round trip minus the run): sub-millisecond when
# a warm lease is reused, seconds when the cluster is full.
LATENCY_BOUNDS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)
RUN_BOUNDS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)

# What an owner's waiting and running tasks are called in a report (Ray's names, lower case).
PENDING_ARGS, PENDING_RESOURCES, RUNNING = "pending_args", "pending_resources", "running"
TASK_STATES = (PENDING_ARGS, PENDING_RESOURCES, RUNNING)

# A user metric's tags, as a hashable key: sorted (name, value) pairs.
TagKey = tuple[tuple[str, str], ...]


class Buckets:
    """A histogram's bucket counts since it was last taken (Prometheus ``le`` buckets)."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value

    def take(self) -> pb.HistogramData | None:
        if not any(self.counts):
            return None
        data = pb.HistogramData(bounds=self.bounds, counts=self.counts, sum=self.sum)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0
        return data


class Totals:
    """A histogram since the process started: what a Prometheus endpoint shows.

    Fed by observations here, or by the counts other processes sent (``HistogramData``).
    """

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value

    def add(self, data: pb.HistogramData) -> bool:
        """Add counts sent by a process; False (and nothing added) if its buckets differ."""
        if tuple(data.bounds) != self.bounds or len(data.counts) != len(self.counts):
            return False
        for index, count in enumerate(data.counts):
            self.counts[index] += count
        self.sum += data.sum
        return True

    def exposition(self) -> list[tuple[str, float]]:
        """Cumulative ``le`` buckets, as prometheus-client's HistogramMetricFamily takes them."""
        result, running = [], 0
        for bound, count in zip(self.bounds, self.counts, strict=False):
            running += count
            result.append((_format(bound), float(running)))
        result.append(("+Inf", float(running + self.counts[-1])))
        return result


def _format(bound: float) -> str:
    return repr(float(bound))
