"""``ember profile``: where a worker spends its CPU for a while, as a flame graph.

    ember profile --pid 4242                       # 10 s, speedscope JSON in profile-4242.json
    ember profile --pid 4242 --duration 30 --format svg -o slow.svg
    ember profile --node 3f2a --pid 4242 --format collapsed -o - | flamegraph.pl > out.svg

py-spy takes the samples where it is installed on the worker's node and may attach to it (it
sees a task that holds the GIL in a C loop too); otherwise the worker samples itself. The
output says which did, and why py-spy did not. The worker keeps running its tasks meanwhile.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from ember.runtime.wire import flame_graph, profile_formats
from ember.runtime.wire.protocol import ember_pb2 as pb
from ember.util.state import head_query
from ember.util.state.head_query import StateApiError

SUFFIXES = {"speedscope": ".json", "svg": ".svg", "collapsed": ".txt"}


def profile(
    pid: int, node: str = "", duration: float = profile_formats.DEFAULT_DURATION,
    rate: int = profile_formats.DEFAULT_RATE, sampler: str = "", idle: bool = False,
    address: str | None = None,
) -> pb.ClusterProfiles:
    """Profile process ``pid`` of the cluster for ``duration`` seconds."""
    request = profile_formats.checked(pb.ProfileRequest(
        node=node, pid=pid, duration=duration, rate=rate, sampler=sampler, idle=idle
    ))
    reply: pb.ClusterProfiles = head_query.ask("Profile", request, address, request.duration + 30.0)
    return reply


def title(process: pb.ProcessProfile) -> str:
    where = f" on node {process.node_id.hex()[:12]} ({process.node_address})" if process.node_id else ""
    return (
        f"{process.kind.lower() or 'process'} pid {process.pid}{where}: {process.duration:.1f} s at "
        f"{process.rate}/s, sampled by {process.sampler}"
    )


def render(process: pb.ProcessProfile, format: str) -> str:
    if format == "svg":
        return flame_graph.svg(process, title(process))
    if format == "collapsed":
        return profile_formats.collapsed(process)
    return profile_formats.speedscope_text(process, title(process))


def add_command(commands: Any, head_address: Callable[[argparse.Namespace], str | None]) -> None:
    parser = commands.add_parser(
        "profile", help="sample a worker's Python stacks for a while and write a flame graph"
    )
    parser.add_argument("--pid", type=int, required=True, help="the worker (or driver) process")
    parser.add_argument("--node", default="", help="its node (id prefix or agent address; default: any)")
    parser.add_argument(
        "--duration", type=float, default=profile_formats.DEFAULT_DURATION,
        help=f"seconds to sample (at most {profile_formats.MAX_DURATION:g}; default %(default)g)",
    )
    parser.add_argument(
        "--rate", type=int, default=profile_formats.DEFAULT_RATE,
        help=f"samples a second (at most {profile_formats.MAX_RATE}; default %(default)d)",
    )
    parser.add_argument("--format", choices=profile_formats.FORMATS, default="speedscope")
    parser.add_argument(
        "--sampler", choices=("auto", "py-spy", "self"), default="auto",
        help="py-spy where it can attach, else the worker itself (auto); or only one of them",
    )
    parser.add_argument("--idle", action="store_true", help="also threads that wait (py-spy's --idle)")
    parser.add_argument(
        "-o", "--output", help="the file to write ('-': standard output; default: profile-PID.json/.svg/.txt)"
    )
    parser.add_argument("--address", help="the head's HOST:PORT (default: the cluster started here)")
    parser.set_defaults(run=lambda args: _run(args, head_address(args)))


def _run(args: argparse.Namespace, head_address: str | None) -> int:
    if head_address is None:
        print("ember profile: no running cluster found (give --address)", file=sys.stderr)
        return 1
    try:
        reply = profile(
            args.pid, args.node, args.duration, args.rate,
            "" if args.sampler == "auto" else args.sampler, args.idle, head_address,
        )
    except (StateApiError, profile_formats.BadProfileRequest) as error:
        print(f"ember profile: {error}", file=sys.stderr)
        return 1
    for unasked in reply.errors:
        print(f"ember profile: not asked: {unasked}", file=sys.stderr)
    usable = [p for p in reply.processes if not p.error]
    for process in reply.processes:
        if process.error:
            print(f"ember profile: pid {process.pid}: {process.error}", file=sys.stderr)
    if not usable:
        if not reply.processes:
            print(f"ember profile: no worker or driver with pid {args.pid} in the cluster", file=sys.stderr)
        return 1
    process = usable[0]
    text = render(process, args.format)
    output = args.output or f"profile-{process.pid}{SUFFIXES[args.format]}"
    if output == "-":
        sys.stdout.write(text)
    else:
        with open(output, "w", encoding="utf-8") as f:
            f.write(text)
    report = sys.stderr if output == "-" else sys.stdout
    print(f"{title(process)}: {process.samples} samples, {len(process.stacks)} stacks", file=report)
    if process.note:
        print(f"  ({process.note})", file=report)
    if process.dropped:
        print(f"  ({process.dropped} samples of further stacks were counted under one frame)", file=report)
    if output != "-":
        print(f"wrote {output}" + ("  (open it at speedscope.app)" if args.format == "speedscope" else ""))
    return 0
