"""Recent failures, kept by the head for ``ember status``.

Logs say everything, on each node, in files; this says the few things an operator asks first
("what died lately?") in one place, without a log search. Bounded, so a crash loop costs
nothing but the oldest entries.
"""

from __future__ import annotations

import collections
import logging
import time

from ember.runtime.wire.protocol import ember_pb2 as pb

log = logging.getLogger("ember.runtime.head.head")

KEEP = 100


class EventLog:
    def __init__(self, keep: int = KEEP) -> None:
        self._events: collections.deque[pb.ClusterEvent] = collections.deque(maxlen=keep)

    def add(self, message: str) -> None:
        self._events.append(pb.ClusterEvent(time=time.time(), message=message))

    def recent(self) -> list[pb.ClusterEvent]:
        return list(self._events)
