"""``ember memory``: every live object of the cluster, where its copies are and why it is
still alive, grouped with totals (``ray memory``).

    ember memory                          # grouped by the owner's node, largest first
    ember memory --group-by call_site --units MB
    ember memory --group-by owner --sort-by object_id --format json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from ember.runtime.objects import memory_report as report_module
from ember.util.state.head_query import StateApiError
from ember.util.state.memory import memory_report


def add_command(commands: Any, head_address: Callable[[argparse.Namespace], str | None]) -> None:
    parser = commands.add_parser(
        "memory", help="every live object: size, owner, copies, and why it is still alive"
    )
    parser.add_argument(
        "--group-by", choices=report_module.GROUP_BY, default="node", type=report_module.option,
        help="node: the owner's node; owner: the owning process; call_site: where it was made "
        "(Ray's NODE_ADDRESS and STACK_TRACE are taken too)",
    )
    parser.add_argument(
        "--sort-by", choices=report_module.SORT_BY, default="size", type=report_module.option,
        help="size (largest first), object_id, pid (of the owner) or reference_type (or Ray's "
        "OBJECT_SIZE, PID, REFERENCE_TYPE)",
    )
    parser.add_argument(
        "--units", choices=list(report_module.UNITS), default="B", type=str.upper,
        help="sizes in bytes, or powers of 1000",
    )
    parser.add_argument("-n", "--num-entries", type=int, help="at most this many objects per group")
    parser.add_argument("--format", choices=("table", "json"), default="table")
    parser.add_argument("--timeout", type=int, default=30, help="seconds")
    parser.add_argument("--address", help="the head's HOST:PORT (default: the cluster started here)")
    parser.set_defaults(run=lambda args: _run(args, head_address(args)))


def _run(args: argparse.Namespace, head_address: str | None) -> int:
    if head_address is None:
        print("ember memory: no running cluster found (give --address)", file=sys.stderr)
        return 1
    if args.num_entries is not None and args.num_entries < 0:
        print(f"ember memory: --num-entries must be 0 or more, not {args.num_entries}", file=sys.stderr)
        return 2
    try:
        report = memory_report(head_address, args.group_by, args.sort_by, args.timeout)
    except StateApiError as error:
        print(f"ember memory: {error}", file=sys.stderr)
        return 1
    if args.format == "json":
        print(json.dumps(report.as_json(), indent=2))
    else:
        print(report_module.text(report, args.units, args.num_entries))
    return 0
