"""An owner's metrics report counts and lists its unfinished tasks from a tally kept as each
task changes state, not by walking every pending task: the counts must stay exact through
every path a task takes (straight through, retried, rebuilt, cancelled while waiting)."""

from __future__ import annotations

from ember.runtime.core import process_metrics
from ember.runtime.core.process_metrics import ProcessMetrics
from ember.runtime.core.task_record import (
    FINISHED,
    QUEUED,
    RESOLVING,
    RUNNING,
    TERMINATE,
    FunctionDescriptor,
    TaskOptions,
    TaskRecord,
)


def _task(metrics: ProcessMetrics, n: int, name: str = "f", actor: bool = False) -> TaskRecord:
    options = TaskOptions(name=name, shape={}, key=())
    task = TaskRecord(n.to_bytes(16, "big"), FunctionDescriptor(name, b"", b""), options, b"", [], [], [], metrics.live)
    if actor:
        task.actor_id = b"a" * 16
    return task


def _walk_counts(tasks: list[TaskRecord]) -> tuple[dict[str, int], dict[tuple[str, str, str], int]]:
    """What the report said when it walked every task: the reference the tally must match."""
    counts: dict[str, int] = {}
    live: dict[tuple[str, str, str], int] = {}
    for task in tasks:
        name = process_metrics.STATE_NAMES.get(task.state)
        if name is None:
            continue
        counts[name] = counts.get(name, 0) + 1
        if task.method != TERMINATE:
            kind = process_metrics.ACTOR_TASK if task.actor_id else process_metrics.NORMAL_TASK
            key = (task.options.name, kind, process_metrics.RAY_STATES[task.state])
            live[key] = live.get(key, 0) + 1
    return counts, live


def _reported(metrics: ProcessMetrics) -> tuple[dict[str, int], dict[tuple[str, str, str], int]]:
    report = metrics.report()
    assert report is not None
    return dict(report.tasks), {(c.name, c.type, c.state): c.count for c in report.live_counts}


def test_the_tally_matches_a_walk_of_every_task_through_each_path() -> None:
    metrics = ProcessMetrics("driver")
    tasks = [_task(metrics, i, name="g" if i % 3 else "f", actor=i % 5 == 0) for i in range(60)]
    for task in tasks[11::10]:
        task.method = TERMINATE  # the owner's own last call to an actor: counted, not listed
    for i, task in enumerate(tasks):
        if i % 2:
            task.move(RESOLVING)  # waits for its arguments
        if i % 4 != 1:
            task.move(QUEUED)
    for task in tasks[:20]:
        task.move(RUNNING)
    assert _reported(metrics) == _walk_counts(tasks)
    tasks[0].move(QUEUED)  # its worker died: retried
    tasks[2].move(FINISHED)
    tasks[2].move(QUEUED)  # its result was lost: rebuilt
    tasks[3].move(FINISHED)  # cancelled while waiting for its arguments
    for task in tasks[4:10]:
        task.move(FINISHED)
    tasks[11].method = TERMINATE  # the owner's own last call to an actor: counted, not listed
    assert _reported(metrics) == _walk_counts(tasks)
    for task in tasks:
        task.move(FINISHED)
    assert _reported(metrics) == ({}, {})
    assert not any(metrics.live.members.values())


def test_the_report_lists_a_bounded_number_of_tasks_and_counts_them_all() -> None:
    metrics = ProcessMetrics("driver")
    tasks = [_task(metrics, i) for i in range(3 * process_metrics.PENDING_SHOWN)]
    for task in tasks:
        task.move(QUEUED)
    for task in tasks[: 2 * process_metrics.RUNNING_SHOWN]:
        task.move(RUNNING)
    report = metrics.report()
    assert report is not None
    assert len(report.running) == process_metrics.RUNNING_SHOWN
    assert len(report.pending) == min(process_metrics.PENDING_SHOWN, len(tasks) - 2 * process_metrics.RUNNING_SHOWN)
    assert dict(report.tasks) == _walk_counts(tasks)[0]
    assert [e.task_id for e in report.running] == [t.task_id for t in tasks[: process_metrics.RUNNING_SHOWN]]
