"""The ``ember`` command: start and stop clusters on this machine, and look at them."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from typing import Any

import grpc

from ember import list_command, memory_command, profile_command, stack_command, timeline_trace
from ember.log_echo import LogEcho
from ember.runtime import launcher, session, temp_root
from ember.runtime.head.head_state import HeadState
from ember.runtime.wire import auth, reachability
from ember.runtime.wire.listen_address import host_port

REACH_TIMEOUT = 15.0  # seconds a head's host may stay silent before a command gives up


def _start(args: argparse.Namespace) -> int:
    if args.head == bool(args.address):
        print("ember start: give --head (start a cluster) or --address HOST:PORT (join one)", file=sys.stderr)
        return 2
    try:
        custom = json.loads(args.resources) if args.resources else None
        labels = json.loads(args.labels) if args.labels else None
    except ValueError as error:
        print(f"ember start: --resources and --labels take JSON objects: {error}", file=sys.stderr)
        return 2
    try:
        token = auth.from_environment()
    except auth.TokenError as error:
        print(f"ember start: {error}", file=sys.stderr)
        return 2
    if args.head and not token and args.state_dir:
        token = HeadState(args.state_dir).token()  # the token of the cluster before a restart
    if not args.head:
        if not _reaches("start", args.address.removeprefix("ember://"), joining=True):
            return 1
        token = token or session.token_of_current_cluster(args.address)
        if not token:
            print(
                "ember start: a node agent needs the cluster's token: set EMBER_TOKEN, or "
                "EMBER_TOKEN_FILE to a file holding it (ember start --head said where it is)",
                file=sys.stderr,
            )
            return 2
    if args.head and _port_taken("start", args.host, args.port):
        return 1
    session_dir = session.new_session_dir()
    node = {
        "host": args.host,
        "num_cpus": args.num_cpus,
        "num_gpus": args.num_gpus,
        "accelerator_type": args.accelerator_type,
        "object_store_memory": args.object_store_memory,
        "resources": custom,
        "labels": labels,
        "lifeline": args.block,
        "metrics_port": args.metrics_port,
    }
    try:
        if args.head:
            processes = launcher.start(
                session_dir,
                head_port=args.port,
                state_dir=args.state_dir,
                head_metrics_port=args.head_metrics_port,
                dashboard_host=args.dashboard_host,
                dashboard_port=args.dashboard_port,
                token=token or None,
                autoscaler=args.autoscaler,
                **node,
            )
        else:
            head_address = args.address.removeprefix("ember://")
            processes = launcher.start_agent(session_dir, head_address, token=token, **node)
    except (launcher.LaunchError, OSError) as error:
        print(f"ember start: {error}", file=sys.stderr)
        return 1
    address = f"ember://{processes.head_address}"
    if args.head:
        session.write_current_cluster(
            address, session_dir, processes.pids, processes.agent_address,
            what={
                "kind": "head", "head_pids": processes.pids[:1],
                "nodes": [{"name": processes.agent_address, "pids": processes.pids[1:]}],
            },
        )
        print(f"Started an ember cluster: head and node agent on {args.host}.")
        print(f"  address:  {address}")
        print(f"  connect:  ember.init(address=\"{address}\")   or   ember.init(address=\"auto\")")
        print(f"  token:    {launcher.token_file(session_dir)} (readable only by you); drivers and")
        print("            nodes elsewhere need it: EMBER_TOKEN_FILE=<a copy of it> or EMBER_TOKEN=<it>")
        print(f"  add node: ember start --address {processes.head_address}   (on another machine)")
        print(f"  {_dashboard(processes.head_address, processes.token)}")
    else:
        session.record_started(
            session_dir, processes.pids, agent_address=processes.agent_address,
            what={
                "kind": "agent", "joined": address,
                "nodes": [{"name": processes.agent_address, "pids": processes.pids}],
            },
        )
        print(f"Started a node agent on {processes.agent_address}, joining the head at {address}.")
    print(f"  logs:     {session_dir}/logs")
    print("  stop:     ember stop")
    sys.stdout.flush()
    if args.block:
        return _block(processes)
    return 0


def _dashboard(head_address: str, token: str) -> str:
    """The dashboard's line, asked of the head with the cluster's token (without it the head
    says nothing); if the head cannot say, the line says why instead of vanishing."""
    from ember import status_report

    auth.set_token(token)
    try:
        view = status_report.fetch(head_address, timeout=5)
    except grpc.aio.AioRpcError as error:
        return f"dashboard: the head did not say where it is ({error.code().name}); its log does"
    return status_report.dashboard_line(view).replace("Dashboard: ", "dashboard: ", 1)


def _port_taken(command: str, host: str, port: int) -> bool:
    """Whether something already listens on the head's port; if so, one paragraph on what to
    do (instead of the head's failure to bind, which only says it could not)."""
    if port == 0:
        return False
    dial = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    try:
        reachability.check_now(host_port(dial, port), 2.0)
    except reachability.Unreachable:
        return False
    address = host_port(dial, port)
    here = session.read_current_cluster()
    if here is not None and here.removeprefix("ember://") == address:
        what = f"the ember cluster started here last listens there ({here})"
        see = "'ember status' shows it and 'ember stop' stops it"
    else:
        what = "something already listens there (another cluster, or another program)"
        see = f"'ember status --address {address}' shows the cluster, if it is one"
    again = "ember start --head" if command == "start" else "ember up FILE"
    print(
        f"ember {command}: port {port} of {host} is taken: {what}, so no head can start on it.\n"
        f"  {see}; to start another cluster beside it, give it a free port: {again} --port PORT.",
        file=sys.stderr,
    )
    return True


def _reaches(command: str, head_address: str, joining: bool = False) -> bool:
    """Whether anything listens at the head's address; if not, say why, at once for a
    refused connection, and where the cluster started on this machine is."""
    try:
        reachability.check_now(head_address, REACH_TIMEOUT)
        return True
    except reachability.Unreachable as error:
        what = "join the head" if joining else "reach the head"
        print(f"ember {command}: cannot {what} at {head_address}: {error}.", file=sys.stderr)
        here = session.read_current_cluster()
        if here and here.removeprefix("ember://") != head_address:
            print(f"  The cluster started on this machine is at {here} (ember status shows it).",
                  file=sys.stderr)
        else:
            print("  Check the address and port: 'ember start --head' prints them.", file=sys.stderr)
        return False


def _block(processes: launcher.LocalProcesses) -> int:
    """Stay in the foreground until a signal or until a child exits (what a container runs),
    echoing every log file of the session to stdout, where ``kubectl logs`` looks.

    A child that exits on its own (a node agent the head declared dead) makes the command fail,
    so that a container's restart policy starts the node afresh.
    """
    stopping = False

    def stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    echo = LogEcho(processes.session_dir)
    echo.start()
    while not stopping and all(p.poll() is None for p in processes.processes):
        time.sleep(0.2)
    exited = [p for p in processes.processes if p.poll() is not None]
    processes.stop()
    session.forget_started(processes.session_dir)  # nothing left for ember stop
    echo.stop()
    if not stopping and exited:
        print(f"ember start: process {exited[0].pid} exited (code {exited[0].returncode}); "
              f"see the logs", file=sys.stderr)
        return 1
    return 0


def _stop(args: argparse.Namespace) -> int:
    from ember import stop_command

    return stop_command.run(args.grace_period)


def _status(args: argparse.Namespace) -> int:
    from ember import status_report

    head_address = _head_address(args)
    if not head_address:
        print("ember status: no running cluster found (start one with 'ember start --head')")
        return 1
    if not _reaches("status", head_address):
        return 1
    try:
        view = status_report.fetch(head_address)
    except grpc.aio.AioRpcError as error:
        print(f"ember status: cannot reach the head at {head_address}: {error.details()}", file=sys.stderr)
        return 1
    print(status_report.render(view))
    return 0


def _up(args: argparse.Namespace) -> int:
    """``ember up CLUSTER.yaml``: the Cluster on this machine, autoscaled, in the foreground."""
    import asyncio

    from ember import cluster_spec, local_capacity
    from ember.local_provider import NODE_TYPE_LABEL, LocalProvider, Progress

    try:
        name, head_cpus, groups, autoscaling = cluster_spec.load(args.file)
        token = auth.from_environment() or auth.generate()
    except (cluster_spec.SpecError, auth.TokenError) as error:
        print(f"ember up: {error}", file=sys.stderr)
        return 2
    if _port_taken("up", "127.0.0.1", args.port):
        return 1
    machine = local_capacity.Machine.here()
    share = local_capacity.share(head_cpus, groups, autoscaling, machine)
    session_dir = session.new_session_dir()
    try:
        processes = launcher.start(
            session_dir, head_port=args.port, num_cpus=head_cpus, token=token,
            dashboard_port=args.dashboard_port, autoscaler=autoscaling.enabled,
            object_store_memory=share.object_store_memory,
            labels={NODE_TYPE_LABEL: "head"},
        )
    except (launcher.LaunchError, OSError) as error:
        print(f"ember up: {error}", file=sys.stderr)
        return 1
    address = f"ember://{processes.head_address}"
    head_node = {"name": processes.agent_address, "pids": processes.pids[1:]}
    session.write_current_cluster(
        address, session_dir, [os.getpid()],
        what={"kind": "up", "name": name, "head_pids": processes.pids[:1], "nodes": [head_node]},
    )
    auth.set_token(token)
    print(f"Cluster {name!r} up on this machine at {address} (logs: {session_dir}/logs).")
    print("  connect: ember.init(address=\"auto\")   stop: Ctrl-C or ember down")
    for group in groups:
        print(f"  group {group.name}: {group.min_replicas}..{group.max_replicas} x {group.shape}")
    print(share.summary(machine))
    if share.warning():
        sys.stdout.flush()
        print(share.warning(), file=sys.stderr)
    sys.stdout.flush()
    interactive = sys.stdout.isatty()
    shown = ""

    def show(progress: Progress) -> None:
        """On a terminal, one line rewritten each round (with how long ago the last action
        was); elsewhere (a log file, a pipe), a new line only when something changed."""
        nonlocal shown
        state = (
            f"nodes {progress.nodes} | pending {', '.join(progress.pending) or 'none'} | "
            f"last: {progress.last_action}"
        )
        if interactive:
            ago = time.monotonic() - progress.last_action_at
            print("\r" + f"{state} ({ago:.0f}s ago)"[:150].ljust(150), end="", flush=True)
        elif state != shown:
            print(state, flush=True)
            shown = state

    def record_nodes(workers: dict[str, list[int]]) -> None:
        nodes = [head_node, *({"name": n, "pids": pids} for n, pids in workers.items())]
        session.update_started(session_dir, nodes=nodes)

    provider = LocalProvider(
        session_dir, processes.head_address, token, groups, autoscaling, show, record_nodes,
        object_store_memory=share.object_store_memory,
    )

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        watcher = asyncio.ensure_future(_watch_children(processes, stop))
        try:
            await provider.run(stop)
        finally:
            watcher.cancel()
            await provider.channels.close()

    try:
        asyncio.run(run())
    finally:
        print("\nember up: stopping", flush=True)
        provider.stop_all()
        processes.stop()
        session.forget_started(session_dir)
        try:
            os.unlink(session.current_cluster_file())
        except FileNotFoundError:
            pass
    return 0


async def _watch_children(processes: launcher.LocalProcesses, stop: object) -> None:
    import asyncio

    assert isinstance(stop, asyncio.Event)
    while all(p.poll() is None for p in processes.processes):
        await asyncio.sleep(0.5)
    print("\nember up: the head or its node agent exited; see the logs", file=sys.stderr)
    stop.set()


def _head_address(args: argparse.Namespace) -> str | None:
    """The head to ask, and with it the token to present (set for this process)."""
    address = args.address or os.environ.get("EMBER_ADDRESS") or session.read_current_cluster()
    if not address:
        return None
    head_address = address.removeprefix("ember://")
    auth.set_token(auth.from_environment() or session.token_of_current_cluster(head_address))
    return head_address


def _logs(args: argparse.Namespace) -> int:
    from ember import cluster_logs

    head_address = _head_address(args)
    if not head_address:
        print("ember logs: no running cluster found (give --address)", file=sys.stderr)
        return 1
    if not _reaches("logs", head_address):
        return 1
    try:
        if args.name:
            cluster_logs.show(head_address, args.name, args.node or "", args.tail, args.follow)
        else:
            print(cluster_logs.list_files(head_address))
    except cluster_logs.LogsError as error:
        print(f"ember logs: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0


def _health(args: argparse.Namespace) -> int:
    """Exit 0 when every head and node agent asked answers in time (a container health check)."""
    from ember import health_check

    if args.address or args.agent:
        targets = [health_check.Target(
            "the command line", args.address.removeprefix("ember://") if args.address else "",
            args.agent or "",
        )]
    else:
        targets = health_check.recorded_targets()
    if not targets:
        print("ember health: nothing to check: 'ember start' runs nothing here "
              "(or give --address / --agent)", file=sys.stderr)
        return 1
    heads = [target.head for target in targets if target.head]
    auth.set_token(
        auth.from_environment() or (session.token_of_current_cluster(heads[0]) if heads else "")
    )
    findings = health_check.check(targets, args.timeout)
    healthy = all(finding.ok for finding in findings)
    for finding in findings:
        print(("ok:        " if finding.ok else "unhealthy: ") + finding.text,
              file=sys.stdout if finding.ok else sys.stderr)
    return 0 if healthy else 1


def _drain(args: argparse.Namespace) -> int:
    from ember import drain_command

    head_address = _head_address(args)
    if not head_address:
        print("ember drain: no running cluster found (give --address HOST:PORT)", file=sys.stderr)
        return 1
    if not _reaches("drain", head_address):
        return 1
    return drain_command.run(head_address, args.node, args.deadline, args.timeout)


def _operator(args: argparse.Namespace) -> int:
    """``ember operator``: the Kubernetes operator (kopf and kubernetes are imported only here:
    a laptop's ``import ember`` never loads them)."""
    import kopf

    from ember.operator import operator_main

    if bool(args.namespace) == args.all_namespaces:
        print("ember operator: give --namespace NS (one or more) or --all-namespaces", file=sys.stderr)
        return 2
    kopf.configure(verbose=args.verbose)
    return operator_main.run(
        args.namespace, args.all_namespaces, args.metrics_port, args.health_port, args.priority,
        restricted_templates=args.templates == "restricted",
    )


def _token(args: argparse.Namespace) -> int:
    from ember import token_command

    return token_command.run(args.cluster, args.namespace)


ADDRESS_HELP = "the head's HOST:PORT (default: EMBER_ADDRESS, else the cluster started here)"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except (temp_root.RootError, auth.TokenError) as error:
        print(f"ember {args.command}: {error}", file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    """Every command and flag (docs/cli.md lists them; a test keeps the two the same)."""
    parser = argparse.ArgumentParser(prog="ember", description="ember cluster tools")
    commands = parser.add_subparsers(dest="command", required=True)

    start = commands.add_parser(
        "start", help="start a head (and its node agent), or a node agent joining a head"
    )
    start.add_argument("--head", action="store_true", help="start a head node")
    start.add_argument("--address", help="HOST:PORT of the head for this node agent to join")
    start.add_argument("--host", default="127.0.0.1", help="address to listen on and advertise")
    start.add_argument("--port", type=int, default=10001, help="the head's port")
    start.add_argument("--num-cpus", type=float, help="default: what the machine or cgroup allows")
    start.add_argument(
        "--num-gpus", type=float,
        help="default: what nvidia-smi finds; ids from CUDA_VISIBLE_DEVICES when it is set",
    )
    start.add_argument(
        "--accelerator-type",
        help="the GPUs' model, e.g. A100 (default: from nvidia-smi), for accelerator_type=",
    )
    start.add_argument(
        "--object-store-memory", type=int,
        help="bytes of shared memory for this node's object store (default: 30%% of the node's "
        "memory, at most the size of /dev/shm)",
    )
    start.add_argument("--resources", help='custom resources as JSON, e.g. \'{"disk": 1}\'')
    start.add_argument("--labels", help='node labels as JSON, e.g. \'{"zone": "a"}\'')
    start.add_argument(
        "--metrics-port", type=int, default=0,
        help="this node agent's Prometheus port (default: any free one)",
    )
    start.add_argument(
        "--head-metrics-port", type=int, default=0,
        help="with --head: the head's Prometheus port (default: any free one)",
    )
    start.add_argument("--dashboard-host", default="127.0.0.1", help="with --head: where the dashboard listens")
    start.add_argument(
        "--dashboard-port", type=int, default=launcher.DEFAULT_DASHBOARD_PORT,
        help="with --head: the dashboard's port (-1: none)",
    )
    start.add_argument(
        "--state-dir",
        help="with --head: keep detached actors and the job counter here, across head restarts",
    )
    start.add_argument(
        "--autoscaler", action="store_true",
        help="with --head: an autoscaler will add nodes, so work no node holds yet waits for one",
    )
    start.add_argument("--block", action="store_true", help="stay in the foreground")
    start.set_defaults(run=_start)

    stop = commands.add_parser("stop", help="stop every cluster 'ember start' started here, as you")
    stop.add_argument(
        "--grace-period", type=float, default=5.0,
        help="seconds each process gets to exit after SIGTERM, before SIGKILL (default 5)",
    )
    stop.set_defaults(run=_stop)

    status = commands.add_parser("status", help="nodes and resources of a running cluster")
    status.add_argument("--address", help=ADDRESS_HELP)
    status.set_defaults(run=_status)

    up = commands.add_parser("up", help="run a Cluster manifest on this machine, autoscaled")
    up.add_argument("file", help="a Cluster manifest (the same YAML kubectl apply takes)")
    up.add_argument("--port", type=int, default=10001, help="the head's port")
    up.add_argument(
        "--dashboard-port", type=int, default=launcher.DEFAULT_DASHBOARD_PORT,
        help="the dashboard's port (-1: none; taken: any free one)",
    )
    up.set_defaults(run=_up)

    down = commands.add_parser("down", help="stop what ember up (or ember start) started here")
    down.add_argument(
        "--grace-period", type=float, default=10.0,
        help="seconds each process gets to exit after SIGTERM, before SIGKILL (default 10)",
    )
    down.set_defaults(run=_stop)

    logs = commands.add_parser("logs", help="list, print or follow the log files of every node")
    logs.add_argument("name", nargs="?", help="a file 'ember logs' listed; without it, list them")
    logs.add_argument("--node", help="the node (id prefix or agent address) the file is on")
    logs.add_argument("--tail", type=int, default=100, help="print the last N lines (default 100)")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing what is added")
    logs.add_argument("--address", help=ADDRESS_HELP)
    logs.set_defaults(run=_logs)

    list_command.add_commands(commands, _head_address)
    timeline_trace.add_command(commands, _head_address)
    stack_command.add_command(commands, _head_address)
    memory_command.add_command(commands, _head_address)
    profile_command.add_command(commands, _head_address)

    health = commands.add_parser(
        "health",
        help="exit 0 if the head and node agent 'ember start' runs here answer in time, else 1 "
        "(a container health check)",
    )
    health.add_argument("--address", help="check the head at HOST:PORT instead")
    health.add_argument("--agent", help="check the node agent at HOST:PORT instead")
    health.add_argument("--timeout", type=float, default=5.0, help="seconds for each answer")
    health.set_defaults(run=_health)

    drain = commands.add_parser(
        "drain",
        help="drain a node (what the autoscaler does before removing one) and wait until it is",
    )
    drain.add_argument("node", metavar="NODE", help="node id (or a unique prefix), or agent address")
    drain.add_argument(
        "--deadline", type=float,
        help="seconds running tasks get before they are stopped and retried elsewhere "
        "(default: no deadline)",
    )
    drain.add_argument("--address", help="the head's HOST:PORT (default: the cluster started here)")
    drain.add_argument("--timeout", type=float, help="give up waiting after this many seconds")
    drain.set_defaults(run=_drain)

    operator = commands.add_parser(
        "operator", help="run the Kubernetes operator of Cluster resources (what the chart runs)"
    )
    operator.add_argument(
        "--namespace", action="append", default=[], metavar="NS",
        help="watch Clusters in this namespace (repeat for more)",
    )
    operator.add_argument("--all-namespaces", action="store_true", help="watch every namespace")
    operator.add_argument(
        "--metrics-port", type=int, default=8080, help="Prometheus /metrics of the operator (0: none)"
    )
    operator.add_argument(
        "--health-port", type=int, default=8081, help="liveness probe at /healthz (0: none)"
    )
    operator.add_argument(
        "--priority", type=int,
        help="kopf peering priority (default: random, so that one replica of several acts)",
    )
    operator.add_argument(
        "--templates", choices=("restricted", "unrestricted"), default="restricted",
        help="restricted (default): make no pod from a Cluster template with hostPath (or another "
        "volume type outside the Pod Security Standards' restricted list), a service account other "
        "than default, or a Secret other than the cluster's own; unrestricted: allow them",
    )
    operator.add_argument("--verbose", action="store_true", help="log kopf's every step")
    operator.set_defaults(run=_operator)

    from ember import job_command

    job_command.add_parser(commands)

    token = commands.add_parser(
        "token", help="print a Kubernetes cluster's token (from its Secret, with the kubeconfig)"
    )
    token.add_argument("cluster", help="the Cluster resource's name")
    token.add_argument("-n", "--namespace", help="its namespace (default: the context's)")
    token.set_defaults(run=_token)
    return parser


if __name__ == "__main__":
    sys.exit(main())
