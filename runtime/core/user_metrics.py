"""Metrics users define in their tasks and actors: ``ember.util.metrics`` (Ray's API).

A metric object lives in the process that made it and keeps a value per tag set. Values travel
to the node agent with the process's task metrics (``process_metrics``), where Prometheus sees
them under the names the user gave. Counters and histograms send what they gained since the
last report, so the agent can add up many processes; gauges send their current value.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence

from ember.runtime.wire.metrics_report import Buckets, TagKey
from ember.runtime.wire.protocol import ember_pb2 as pb

NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


class Metric:
    kind = ""

    def __init__(self, name: str, description: str = "", tag_keys: Sequence[str] | None = None) -> None:
        if not name or not NAME.match(name):
            raise ValueError(f"metric name {name!r} is not a valid Prometheus name ([a-zA-Z_:][a-zA-Z0-9_:]*)")
        if tag_keys is not None and (
            not isinstance(tag_keys, tuple | list) or not all(isinstance(k, str) for k in tag_keys)
        ):
            raise TypeError(f"metric {name}: tag_keys must be a tuple of strings, got {tag_keys!r}")
        self._name = name
        self._description = description
        self._tag_keys = tuple(tag_keys or ())
        self._default_tags: dict[str, str] = {}
        self._lock = threading.Lock()
        REGISTRY.add(self)  # may share the storage of an earlier metric of the same name

    @property
    def info(self) -> dict[str, object]:
        return {
            "name": self._name,
            "description": self._description,
            "tag_keys": self._tag_keys,
            "default_tags": dict(self._default_tags),
        }

    def set_default_tags(self, default_tags: dict[str, str]) -> Metric:
        unknown = set(default_tags) - set(self._tag_keys)
        if unknown:
            raise ValueError(f"metric {self._name}: unknown tag keys {sorted(unknown)} (tag_keys={self._tag_keys})")
        self._default_tags = dict(default_tags)
        return self

    def _key(self, tags: dict[str, str] | None) -> TagKey:
        merged = dict(self._default_tags)
        if tags:
            merged.update(tags)
        if set(merged) != set(self._tag_keys):
            missing = set(self._tag_keys) - set(merged)
            extra = set(merged) - set(self._tag_keys)
            raise ValueError(
                f"metric {self._name}: tags must match tag_keys={self._tag_keys}"
                + (f"; missing {sorted(missing)}" if missing else "")
                + (f"; unknown {sorted(extra)}" if extra else "")
            )
        return tuple(sorted((k, str(v)) for k, v in merged.items()))

    def _take(self) -> list[pb.MetricSample]:
        raise NotImplementedError

    def _share(self, first: Metric) -> None:
        """Keep values where ``first``, made earlier with the same name, keeps them."""
        raise NotImplementedError


class Counter(Metric):
    """Only goes up; Prometheus shows it as ``NAME_total``."""

    kind = "counter"

    def __init__(self, name: str, description: str = "", tag_keys: Sequence[str] | None = None) -> None:
        self._gained: dict[TagKey, float] = {}
        super().__init__(name, description, tag_keys)

    def _share(self, first: Metric) -> None:
        assert isinstance(first, Counter)
        self._gained, self._lock = first._gained, first._lock

    def inc(self, value: float = 1.0, tags: dict[str, str] | None = None) -> None:
        if value <= 0:
            raise ValueError(f"counter {self._name}: inc() needs a value > 0, got {value}")
        key = self._key(tags)
        with self._lock:
            self._gained[key] = self._gained.get(key, 0.0) + value

    def _take(self) -> list[pb.MetricSample]:
        with self._lock:
            gained = dict(self._gained)
            self._gained.clear()  # in place: other objects of this name share it
        return [
            pb.MetricSample(name=self._name, kind=self.kind, description=self._description, tags=dict(key), value=value)
            for key, value in gained.items()
        ]


class Gauge(Metric):
    kind = "gauge"

    def __init__(self, name: str, description: str = "", tag_keys: Sequence[str] | None = None) -> None:
        self._values: dict[TagKey, float] = {}
        self._changed: set[TagKey] = set()
        super().__init__(name, description, tag_keys)

    def _share(self, first: Metric) -> None:
        assert isinstance(first, Gauge)
        self._values, self._changed, self._lock = first._values, first._changed, first._lock

    def set(self, value: float, tags: dict[str, str] | None = None) -> None:
        key = self._key(tags)
        with self._lock:
            self._values[key] = float(value)
            self._changed.add(key)

    def _take(self) -> list[pb.MetricSample]:
        with self._lock:
            values = {key: self._values[key] for key in self._changed}
            self._changed.clear()
        return [
            pb.MetricSample(name=self._name, kind=self.kind, description=self._description, tags=dict(key), value=value)
            for key, value in values.items()
        ]


class Histogram(Metric):
    kind = "histogram"

    def __init__(
        self,
        name: str,
        description: str = "",
        boundaries: Sequence[float] | None = None,
        tag_keys: Sequence[str] | None = None,
    ) -> None:
        if not boundaries:
            raise ValueError(f"histogram {name}: boundaries must be a non-empty list of numbers")
        bounds = tuple(float(b) for b in boundaries)
        if any(b <= 0 for b in bounds) or list(bounds) != sorted(set(bounds)):
            raise ValueError(f"histogram {name}: boundaries must be positive and increasing, got {list(boundaries)}")
        self._bounds = bounds
        self._buckets: dict[TagKey, Buckets] = {}
        super().__init__(name, description, tag_keys)

    def _share(self, first: Metric) -> None:
        assert isinstance(first, Histogram)
        if first._bounds != self._bounds:
            raise ValueError(
                f"histogram {self._name} already exists in this process with boundaries "
                f"{list(first._bounds)}, not {list(self._bounds)}"
            )
        self._buckets, self._lock = first._buckets, first._lock

    def observe(self, value: float, tags: dict[str, str] | None = None) -> None:
        key = self._key(tags)
        with self._lock:
            buckets = self._buckets.get(key)
            if buckets is None:
                buckets = self._buckets[key] = Buckets(self._bounds)
            buckets.observe(value)

    def _take(self) -> list[pb.MetricSample]:
        samples = []
        with self._lock:
            for key, buckets in self._buckets.items():
                data = buckets.take()
                if data is not None:
                    samples.append(pb.MetricSample(
                        name=self._name, kind=self.kind, description=self._description,
                        tags=dict(key), histogram=data,
                    ))
        return samples


class Registry:
    """Every user metric made in this process, one per name, to report them.

    Making a metric again under a name already used (a task that makes its counter each time it
    runs, as tasks in Ray often do) gives an object that shares the first one's values: nothing
    grows, and nothing counted is lost. A different kind or tag keys under that name is an error.
    """

    def __init__(self) -> None:
        self._metrics: dict[str, Metric] = {}
        self._lock = threading.Lock()

    def add(self, metric: Metric) -> None:
        with self._lock:
            first = self._metrics.get(metric._name)
            if first is None:
                self._metrics[metric._name] = metric
                return
        if type(first) is not type(metric) or first._tag_keys != metric._tag_keys:
            raise ValueError(
                f"metric {metric._name} already exists in this process as a "
                f"{type(first).__name__} with tag_keys={first._tag_keys}"
            )
        metric._share(first)

    def take(self) -> list[pb.MetricSample]:
        with self._lock:
            metrics = list(self._metrics.values())
        samples: list[pb.MetricSample] = []
        for metric in metrics:
            samples += metric._take()
        return samples


REGISTRY = Registry()
