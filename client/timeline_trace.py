"""``ember.timeline()`` and ``ember timeline``: the cluster's tasks as a Chrome trace, as
``ray.timeline()`` and ``ray timeline`` write it.

Open the file in ``chrome://tracing`` or https://ui.perfetto.dev: one row per worker, grouped
by node, one bar per task from when its worker started it to when it ended; click a bar for
when it was submitted and scheduled. The times come from the node agents, which keep the
latest tasks their processes reported (every few seconds; the calling driver reports its own
first, so a program sees the tasks it just ran).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from ember.runtime.core import context
from ember.runtime.wire import task_timeline
from ember.runtime.wire.protocol import ember_pb2 as pb
from ember.util.state import head_query
from ember.util.state.head_query import StateApiError


def trace(job_id: str = "", address: str | None = None, timeout: float = 30.0) -> dict[str, Any]:
    """The Chrome trace (``{"traceEvents": [...]}``) of every task the cluster's node agents
    keep, or of one job's (its id in hex)."""
    try:
        job = bytes.fromhex(job_id)
    except ValueError:
        raise ValueError(f"a job id is hex, like the ones 'ember list tasks' shows, not {job_id!r}") from None
    core = context.current_core()
    if core is not None and address is None:
        core.io.run(core.flush_metrics())  # this process's latest tasks, before it asks
    reply: pb.ClusterTaskTimes = head_query.ask(
        "ListTaskTimes", pb.TaskTimesRequest(job_id=job), address, timeout
    )
    found = task_timeline.cluster_spans(reply)
    if job:
        found = [span for span in found if span.job_id == job]
    result = task_timeline.chrome_trace(found, task_timeline.node_names(reply))
    failures = [node.error for node in reply.nodes if node.error]
    if failures:
        result["otherData"] = {"nodes_not_asked": failures}
    return result


def timeline(filename: str | None = None) -> list[dict[str, Any]] | None:
    """Ray's ``ray.timeline``: the trace's events, or None after writing them to ``filename``
    as JSON (a list of events, as Ray writes it)."""
    events = trace()["traceEvents"]
    if filename is None:
        return list(events)
    with open(filename, "w") as out:
        json.dump(events, out)
    return None


def add_command(commands: Any, head_address: Callable[[argparse.Namespace], str | None]) -> None:
    parser = commands.add_parser(
        "timeline", help="write the cluster's recent tasks as a Chrome/Perfetto trace (JSON)"
    )
    parser.add_argument("--job", default="", help="only this job's tasks (its id, in hex)")
    parser.add_argument(
        "-o", "--output", default="",
        help="the file to write (default: timeline-<time>.json here; '-' for standard output)",
    )
    parser.add_argument("--address", help="the head's HOST:PORT (default: the cluster started here)")
    parser.set_defaults(run=lambda args: _run(args, head_address(args)))


def _run(args: argparse.Namespace, head_address: str | None) -> int:
    import time

    if head_address is None:
        print("ember timeline: no running cluster found (give --address)", file=sys.stderr)
        return 1
    try:
        result = trace(args.job, head_address)
    except (StateApiError, ValueError) as error:
        print(f"ember timeline: {error}", file=sys.stderr)
        return 1
    tasks = sum(1 for event in result["traceEvents"] if event["ph"] == "X")
    for failure in result.get("otherData", {}).get("nodes_not_asked", []):
        print(f"ember timeline: {failure}", file=sys.stderr)
    if args.output == "-":
        json.dump(result, sys.stdout)
        sys.stdout.write("\n")
        return 0
    path = args.output or time.strftime("timeline-%Y%m%d-%H%M%S.json")
    with open(path, "w") as out:
        json.dump(result, out)
    print(f"wrote {tasks} tasks to {path}: open it in chrome://tracing or ui.perfetto.dev", file=sys.stderr)
    return 0
