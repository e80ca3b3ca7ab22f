"""What an owner's metrics report costs with N tasks pending, and what keeping its tally costs
each task (``process_metrics``, ``task_record.LiveTasks``).

    python bench/owner_report.py                 # 125,000 to 1,000,000 pending tasks

The report runs every two seconds on the owner's I/O thread; it used to walk every pending
task, so its cost per report grew with the pending work. Run on an older checkout the script
times that walk instead (its ``report`` takes the tasks).
"""

from __future__ import annotations

import argparse
import inspect
import time

from ember.runtime.core import task_record
from ember.runtime.core.process_metrics import ProcessMetrics
from ember.runtime.core.task_record import (
    FINISHED,
    QUEUED,
    RUNNING,
    FunctionDescriptor,
    TaskOptions,
    TaskRecord,
)


def _records(metrics: ProcessMetrics, n: int) -> list[TaskRecord]:
    options = TaskOptions(name="noop", shape={"CPU": 10_000}, key=(("CPU", 10_000),))
    function = FunctionDescriptor("noop", b"f" * 16, b"")
    tally = getattr(metrics, "live", None)
    extra = (tally,) if tally is not None else ()
    return [TaskRecord(i.to_bytes(20, "big"), function, options, b"", [], [], [], *extra) for i in range(n)]


def _move(task: TaskRecord, state: str) -> None:
    if hasattr(task, "move"):
        task.move(state)
    else:  # an older checkout: its state is set directly
        task.state = state


def report_cost(n: int, repeat: int = 5) -> float:
    metrics = ProcessMetrics("driver")
    tasks = _records(metrics, n)
    for task in tasks:
        _move(task, QUEUED)
    for task in tasks[:1000]:
        _move(task, RUNNING)
    takes_tasks = "tasks" in inspect.signature(metrics.report).parameters
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        metrics.report(tasks) if takes_tasks else metrics.report()  # type: ignore[call-arg]
        times.append(time.perf_counter() - start)
    return sorted(times)[repeat // 2]


def transition_cost(n: int = 200_000) -> float:
    """A task's three state changes (queued, running, finished), per task."""
    metrics = ProcessMetrics("driver")
    tasks = _records(metrics, n)
    if hasattr(TaskRecord, "move"):
        start = time.perf_counter()
        for task in tasks:
            task.move(QUEUED)
            task.move(RUNNING)
            task.move(FINISHED)
    else:
        start = time.perf_counter()
        for task in tasks:
            task.state = QUEUED
            task.state = RUNNING
            task.state = FINISHED
    return (time.perf_counter() - start) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="125000,250000,500000,1000000")
    args = parser.parse_args()
    print(f"tally kept per task: {'yes' if hasattr(task_record, 'LiveTasks') else 'no (walks)'}")
    print(f"{'pending':>10}  {'report ms':>10}  {'µs/pending task':>16}")
    for n in (int(s) for s in args.sizes.split(",")):
        seconds = report_cost(n)
        print(f"{n:>10,}  {seconds * 1e3:>10.2f}  {seconds / n * 1e6:>16.3f}")
    print(f"three state changes: {transition_cost() * 1e6:.2f} µs per task")


if __name__ == "__main__":
    main()
