"""The ``ember`` command: start and stop clusters on this machine, and look at them."""

from __future__ import annotations

import argparse
import glob
import json
import os
import signal
import sys
import time
from typing import Any

from ember.runtime import launcher, resources, session


def _start(args: argparse.Namespace) -> int:
    if not args.head:
        print("ember start: only --head is supported on this version", file=sys.stderr)
        return 2
    custom = json.loads(args.resources) if args.resources else None
    session_dir = session.new_session_dir()
    try:
        processes = launcher.start(
            session_dir,
            host=args.host,
            head_port=args.port,
            num_cpus=args.num_cpus,
            num_gpus=args.num_gpus,
            object_store_memory=args.object_store_memory,
            resources=custom,
            lifeline=args.block,
        )
    except (launcher.LaunchError, OSError) as error:
        print(f"ember start: {error}", file=sys.stderr)
        return 1
    address = f"ember://{processes.head_address}"
    session.write_current_cluster(address, session_dir, processes.pids)
    print(f"Started an ember cluster: head and node agent on {args.host}.")
    print(f"  address:  {address}")
    print(f"  connect:  ember.init(address=\"{address}\")   or   ember.init(address=\"auto\")")
    print(f"  logs:     {session_dir}/logs")
    print("  stop:     ember stop")
    sys.stdout.flush()
    if args.block:
        return _block(processes)
    return 0


def _block(processes: launcher.LocalProcesses) -> int:
    """Stay in the foreground until a signal or until a child exits (what a container runs)."""
    stopping = False

    def stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while not stopping and all(p.poll() is None for p in processes.processes):
        time.sleep(0.2)
    processes.stop()
    return 0


def _stop(args: argparse.Namespace) -> int:
    stopped = 0
    for record_path in glob.glob(os.path.join(session.started_dir(), "*.json")):
        try:
            with open(record_path) as f:
                record = json.load(f)
        except (OSError, ValueError):
            continue
        stopped += len(launcher.stop_pids(record.get("pids", []), timeout=args.grace_period))
        os.unlink(record_path)
    try:
        os.unlink(session.current_cluster_file())
    except FileNotFoundError:
        pass
    print(f"Stopped {stopped} ember process{'es' if stopped != 1 else ''}.")
    return 0


def _status(args: argparse.Namespace) -> int:
    import ember

    address = args.address or session.read_current_cluster() or os.environ.get("EMBER_ADDRESS")
    if not address:
        print("ember status: no running cluster found (start one with 'ember start --head')")
        return 1
    ember.init(address=address, logging_level="WARNING")
    try:
        nodes = ember.nodes()
        total = resources.to_fixed(ember.cluster_resources())
        free = resources.to_fixed(ember.available_resources())
    finally:
        ember.shutdown()
    healthy = [n for n in nodes if n["Alive"]]
    dead = [n for n in nodes if not n["Alive"]]
    print("Node status")
    print("-" * 60)
    print("Healthy:")
    for node in healthy:
        print(f" 1 node_{node['NodeID']} ({node['NodeManagerAddress']})")
    print("Dead:" if dead else "Dead:\n (no dead nodes)")
    for node in dead:
        print(f" 1 node_{node['NodeID']} ({node['NodeManagerAddress']})")
    print()
    print("Resources")
    print("-" * 60)
    print("Usage:")
    for name in sorted(total):
        if name.startswith("node:"):
            continue
        used = resources.to_float({name: total[name] - free.get(name, 0)})[name]
        whole = resources.to_float({name: total[name]})[name]
        if name in ("memory", "object_store_memory"):
            print(f" {_gib(used)}/{_gib(whole)} {name}")
        else:
            print(f" {used:g}/{whole:g} {name}")
    return 0


def _gib(value: float) -> str:
    return f"{value / 2**30:.2f}GiB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ember", description="ember cluster tools")
    commands = parser.add_subparsers(dest="command", required=True)

    start = commands.add_parser("start", help="start a head (and its node agent) on this machine")
    start.add_argument("--head", action="store_true", help="start a head node")
    start.add_argument("--host", default="127.0.0.1", help="address to listen on and advertise")
    start.add_argument("--port", type=int, default=10001, help="the head's port")
    start.add_argument("--num-cpus", type=float)
    start.add_argument("--num-gpus", type=float)
    start.add_argument("--object-store-memory", type=int)
    start.add_argument("--resources", help='custom resources as JSON, e.g. \'{"disk": 1}\'')
    start.add_argument("--block", action="store_true", help="stay in the foreground")
    start.set_defaults(run=_start)

    stop = commands.add_parser("stop", help="stop every cluster 'ember start' started here")
    stop.add_argument("--grace-period", type=float, default=5.0)
    stop.set_defaults(run=_stop)

    status = commands.add_parser("status", help="nodes and resources of a running cluster")
    status.add_argument("--address")
    status.set_defaults(run=_status)

    args = parser.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
