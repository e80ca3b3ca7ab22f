"""The times of tasks the node's processes owned, kept for the timeline (``ember timeline``).

Owners send them with their metrics reports, column by column (``pb.TaskTimes``); the agent
keeps each report's columns as they came, without a message per task, and forgets the oldest
reports once it holds more than ``KEPT`` tasks: the timeline shows the last minutes of a busy
node, or the last hours of a quiet one, in bounded memory.
"""

from __future__ import annotations

import collections

from ember.runtime.wire.protocol import ember_pb2 as pb

KEPT = 100_000  # tasks' times a node agent keeps at most


class TaskTimesKept:
    def __init__(self, kept: int = KEPT) -> None:
        self.kept = kept
        # Each report's columns with its latest end, oldest first.
        self._chunks: collections.deque[tuple[float, pb.TaskTimes]] = collections.deque()
        self.count = 0
        self.dropped = 0  # tasks forgotten, or never timed by their owner

    def add(self, times: pb.TaskTimes) -> None:
        self.dropped += times.dropped
        if not times.task_id:
            return
        self._chunks.append((max(times.ended), times))
        self.count += len(times.task_id)
        while self.count > self.kept and len(self._chunks) > 1:
            _, old = self._chunks.popleft()
            self.count -= len(old.task_id)
            self.dropped += len(old.task_id)

    def select(self, request: pb.TaskTimesRequest) -> list[pb.TaskTimes]:
        """The reports with a task of ``request.job_id`` that ended at or after
        ``request.since`` (a report holds one process's tasks of one job; tasks within a report
        are filtered by whoever reads it)."""
        return [
            times for latest, times in self._chunks
            if latest >= request.since and (not request.job_id or times.job_id == request.job_id)
        ]
