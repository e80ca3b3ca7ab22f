"""Histogram buckets that are counted in one process and added up in another.

prometheus-client's Histogram keeps cumulative state for one process's exposition; what
travels from a worker to its node agent must instead be the counts since the last report.
"""

from __future__ import annotations

import bisect

from ember.runtime.protocol import ember_pb2 as pb


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
