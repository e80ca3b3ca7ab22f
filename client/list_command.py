"""``ember list`` and ``ember summary``: the state API on the command line, as ``ray list`` and
``ray summary``.

    ember list tasks --filter state=RUNNING --limit 20
    ember list actors --filter "state!=DEAD" --detail
    ember list objects --format json
    ember summary tasks
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

import yaml

from ember.util.state import api
from ember.util.state.head_query import StateApiError
from ember.util.state.schema import SCHEMAS, StateSchema

LISTS: dict[str, Callable[..., list[Any]]] = {
    "tasks": api.list_tasks,
    "actors": api.list_actors,
    "nodes": api.list_nodes,
    "objects": api.list_objects,
    "placement-groups": api.list_placement_groups,
}
FORMATS = ("default", "table", "json", "yaml")


def add_commands(commands: Any, head_address: Callable[[argparse.Namespace], str | None]) -> None:
    """The ``list`` and ``summary`` subcommands, on the ``ember`` parser's ``commands``."""
    listing = commands.add_parser(
        "list", help="list the cluster's tasks, actors, nodes, objects or placement groups"
    )
    listing.add_argument("resource", choices=list(LISTS), help="what to list")
    listing.add_argument(
        "-f", "--filter", action="append", default=[], metavar="KEY=VALUE",
        help="keep rows whose column KEY is VALUE (or with KEY!=VALUE, is not); repeat to "
        "combine; strings match without regard to case",
    )
    listing.add_argument("--limit", type=int, default=api.DEFAULT_LIMIT, help="at most this many rows")
    listing.add_argument("--detail", action="store_true", help="every column, one block per row")
    listing.add_argument("--format", choices=FORMATS, default="default")
    listing.add_argument("--timeout", type=int, default=api.DEFAULT_TIMEOUT, help="seconds")
    listing.add_argument("--address", help="the head's HOST:PORT (default: the cluster started here)")
    listing.set_defaults(run=lambda args: _list(args, head_address(args)))

    summary = commands.add_parser("summary", help="the cluster's tasks counted by name and state")
    summary.add_argument("resource", choices=["tasks"])
    summary.add_argument("--format", choices=FORMATS, default="default")
    summary.add_argument("--timeout", type=int, default=api.DEFAULT_TIMEOUT, help="seconds")
    summary.add_argument("--address", help="the head's HOST:PORT (default: the cluster started here)")
    summary.set_defaults(run=lambda args: _summary(args, head_address(args)))


def parse_filter(text: str) -> tuple[str, str, str]:
    """``state=RUNNING`` or ``state!=DEAD``, as ``ray list --filter`` takes them."""
    predicate = "!=" if "!=" in text else "="
    key, found, value = text.partition(predicate)
    if not (found and key.strip() and value.strip()):
        raise ValueError(f"a filter is KEY=VALUE or KEY!=VALUE, got {text!r}")
    return key.strip(), predicate, value.strip()


def _list(args: argparse.Namespace, head_address: str | None) -> int:
    if head_address is None:
        print("ember list: no running cluster found (give --address)", file=sys.stderr)
        return 1
    schema = SCHEMAS[args.resource]
    try:
        filters = [parse_filter(text) for text in args.filter]
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            rows = LISTS[args.resource](
                address=head_address, filters=filters, limit=args.limit, timeout=args.timeout,
                detail=args.detail, raise_on_missing_output=False,
            )
    except (ValueError, StateApiError) as error:
        print(f"ember list {args.resource}: {error}", file=sys.stderr)
        return 1
    for warning in said:
        print(f"warning: {warning.message}", file=sys.stderr)
    columns = schema.columns(detail=args.detail)
    values = [{name: row[name] for name in columns} for row in rows]
    if args.format == "json":
        print(json.dumps(values, indent=2))
    elif args.format == "yaml" or (args.format == "default" and args.detail):
        print(yaml.safe_dump(values, sort_keys=False), end="")
    else:
        print(render_list(schema, values, args.detail))
    return 0


def _summary(args: argparse.Namespace, head_address: str | None) -> int:
    if head_address is None:
        print("ember summary: no running cluster found (give --address)", file=sys.stderr)
        return 1
    try:
        summary = api.summarize_tasks(address=head_address, timeout=args.timeout, raise_on_missing_output=False)
    except StateApiError as error:
        print(f"ember summary tasks: {error}", file=sys.stderr)
        return 1
    if args.format == "json":
        print(json.dumps(summary, indent=2))
    elif args.format == "yaml":
        print(yaml.safe_dump(summary, sort_keys=False), end="")
    else:
        print(render_summary(summary["cluster"]))
    return 0


# ------------------------------------------------------------------------------------ printing


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v}" for k, v in value.items())
    return str(value)


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(header, widths, strict=True)).rstrip()]
    lines += ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join(lines)


def render_list(schema: type[StateSchema], values: list[dict[str, Any]], detail: bool) -> str:
    columns = schema.columns(detail=detail)
    header = ["", *(name.upper() for name in columns)]
    rows = [[str(index), *(_cell(value[name]) for name in columns)] for index, value in enumerate(values)]
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    return "\n".join([
        f"======== List: {stamp} ========",
        "Stats:",
        "------------------------------",
        f"Total: {len(values)}",
        "",
        "Table:",
        "------------------------------",
        table(header, rows) if values else f"No {schema.resource} in the cluster",
    ])


def render_summary(cluster: dict[str, Any]) -> str:
    rows = [
        [str(index), name, _cell(entry["state_counts"]), entry["type"]]
        for index, (name, entry) in enumerate(cluster["summary"].items())
    ]
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    return "\n".join([
        f"======== Tasks Summary: {stamp} ========",
        "Stats:",
        "------------------------------------",
        f"total_actor_scheduled: {cluster['total_actor_scheduled']}",
        f"total_actor_tasks: {cluster['total_actor_tasks']}",
        f"total_tasks: {cluster['total_tasks']}",
        "",
        "Table (group by func_name):",
        "------------------------------------",
        table(["", "FUNC_OR_CLASS_NAME", "STATE_COUNTS", "TYPE"], rows) if rows else "No tasks in the cluster",
    ])
