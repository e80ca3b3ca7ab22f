"""``ember stack``: what the cluster's workers are doing now, thread by thread, so that a hung
task shows where it hangs (``ray stack`` runs py-spy on the local node; this asks every node).

    ember stack                      # every worker of every node
    ember stack --node 3f2a --pid 4242
    ember stack --pid 4242 --py-spy  # py-spy's dump as well, where it is installed
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

from ember.runtime.wire.protocol import ember_pb2 as pb
from ember.util.state import head_query
from ember.util.state.head_query import StateApiError


def stacks(
    node: str = "", pid: int = 0, py_spy: bool = False, address: str | None = None,
    timeout: float = 30.0,
) -> pb.ClusterStacks:
    reply: pb.ClusterStacks = head_query.ask(
        "DumpStacks", pb.StackRequest(node=node, pid=pid, py_spy=py_spy), address, timeout
    )
    return reply


def render(reply: pb.ClusterStacks, now: float | None = None) -> str:
    """The dump as people read it: a header per process, then each thread's traceback."""
    now = time.time() if now is None else now
    out: list[str] = []
    for process in sorted(reply.processes, key=lambda p: (p.node_address, p.pid)):
        where = f" on node {process.node_id.hex()[:12]} ({process.node_address})" if process.node_id else ""
        header = f"{process.kind.lower() or 'process'} pid {process.pid}{where}"
        if process.actor:
            header += f", actor {process.actor}"
        if process.task_name:
            since = f" for {now - process.task_started:.1f}s" if process.task_started else ""
            header += f", running {process.task_name} (task {process.task_id.hex()[:16]}){since}"
        out.append(f"=== {header}")
        if process.error:
            out.append(f"    ({process.error})")
        for thread in process.threads:
            daemon = ", daemon" if thread.daemon else ""
            out.append(f"--- thread {thread.name!r} ({thread.ident}{daemon}), most recent call last:")
            out.append(thread.stack.rstrip("\n"))
        if process.py_spy:
            out.append("--- py-spy dump:")
            out.append(process.py_spy.rstrip("\n"))
        out.append("")
    for error in reply.errors:
        out.append(f"(not asked: {error})")
    if not reply.processes and not reply.errors:
        out.append("no worker matched")
    return "\n".join(out)


def add_command(commands: Any, head_address: Callable[[argparse.Namespace], str | None]) -> None:
    parser = commands.add_parser(
        "stack", help="print the Python stack of every thread of the cluster's running workers"
    )
    parser.add_argument("--node", default="", help="only this node (id prefix or agent address)")
    parser.add_argument("--pid", type=int, default=0, help="only this worker (or driver) process")
    parser.add_argument(
        "--py-spy", action="store_true",
        help="also run 'py-spy dump' on each (where py-spy is installed and may attach)",
    )
    parser.add_argument("--address", help="the head's HOST:PORT (default: the cluster started here)")
    parser.set_defaults(run=lambda args: _run(args, head_address(args)))


def _run(args: argparse.Namespace, head_address: str | None) -> int:
    if head_address is None:
        print("ember stack: no running cluster found (give --address)", file=sys.stderr)
        return 1
    try:
        reply = stacks(args.node, args.pid, args.py_spy, head_address)
    except StateApiError as error:
        print(f"ember stack: {error}", file=sys.stderr)
        return 1
    print(render(reply))
    return 0 if reply.processes else 1
