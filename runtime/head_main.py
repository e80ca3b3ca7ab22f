"""``python -m ember.runtime.head_main``: the head process."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal

from ember.runtime import session
from ember.runtime.head.dashboard import Dashboard, reached_from_outside
from ember.runtime.head.head import Head
from ember.runtime.head.head_metrics import HeadMetrics
from ember.runtime.head.head_state import HeadState
from ember.runtime.head.job_launch import Launcher
from ember.runtime.head.job_manager import JobManager
from ember.runtime.head.job_store import JobStore
from ember.runtime.head.metric_history import MetricHistory
from ember.runtime.head.package_store import PackageStore
from ember.runtime.head.relay import Relay
from ember.runtime.launcher import DEFAULT_DASHBOARD_PORT
from ember.runtime.wire import auth, http_server, rpc
from ember.runtime.wire.listen_address import bind_host, host_port, open_host
from ember.runtime.wire.metrics_server import MetricsServer
from ember.runtime.wire.protocol import ember_pb2_grpc as rpc_pb

log = logging.getLogger("ember.runtime.head.head")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ember-head")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--session-dir", required=True)
    parser.add_argument(
        "--state-dir",
        default=os.environ.get("EMBER_STATE_DIR") or None,
        help="where detached actors and the job counter are kept across head restarts",
    )
    parser.add_argument("--lifeline", action="store_true", help="exit when stdin closes")
    parser.add_argument(
        "--autoscaler", action="store_true",
        help="an autoscaler will say which nodes it may add: until then work waits for a node",
    )
    parser.add_argument(
        "--metrics-port", type=int, default=0, help="Prometheus endpoint port (0: any free one)"
    )
    parser.add_argument("--dashboard-host", default="127.0.0.1")
    parser.add_argument(
        "--dashboard-port", type=int, default=DEFAULT_DASHBOARD_PORT, help="-1: no dashboard"
    )
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace, ready_fd: int) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if args.lifeline:
        session.watch_lifeline(lambda: _set_soon(loop, stop))
    state = HeadState(args.state_dir) if args.state_dir else None
    auth.set_token(_cluster_token(args.session_dir, state))
    head = Head(args.session_dir, state=state, autoscaler=args.autoscaler)
    metrics = HeadMetrics(head)
    server = rpc.server("ember head", observe=metrics.rpc.observe, services=("Head", "Relay"))
    rpc_pb.add_HeadServicer_to_server(head, server)
    rpc_pb.add_RelayServicer_to_server(Relay(head, args.host), server)
    jobs = _job_manager(head, args.session_dir, args.state_dir)
    rpc_pb.add_JobsServicer_to_server(jobs, server)
    rpc_pb.add_PackagesServicer_to_server(jobs.packages, server)
    # Advertised as --host; listening on every interface unless that is a loopback address.
    try:
        port = rpc.bind(server, bind_host(args.host), args.port)
    except OSError:
        # One line, not a traceback: the launcher shows the end of this log to the user.
        log.error(
            "head: cannot listen on %s: another process holds the port (or the address is not "
            "this machine's); pick another port with --port", host_port(args.host, args.port),
        )
        raise SystemExit(1) from None
    await server.start()
    address = f"{args.host}:{port}"
    head.actors.address = address
    if state is not None:
        groups = head.placement_groups.restore()
        restored = head.actors.restore()
        log.info(
            "state directory %s: %d detached actors and %d detached placement groups to take back",
            args.state_dir, restored, groups,
        )
    restored = jobs.restore()
    if restored:
        log.info("%s: %d job(s) recorded; the running ones wait for their supervisors", jobs.store.directory, restored)
    jobs.start()
    log.info("head listening on %s, session %s", address, args.session_dir)
    watcher = asyncio.ensure_future(head.watch_heartbeats())
    history = MetricHistory(head)
    sampler = asyncio.ensure_future(history.run())
    # Before the head says it is ready, so that init() can print the dashboard's address.
    dashboard = Dashboard(head, loop, auth.token, jobs, history=history)
    if args.dashboard_port >= 0:
        try:
            port = dashboard.start(args.dashboard_host, args.dashboard_port)
            # Drivers print it too: an address a user can open, not the one bound.
            head.dashboard_address = host_port(open_host(args.dashboard_host, args.host), port)
            outside = reached_from_outside(port)
            log.info("dashboard at %s://%s%s", http_server.scheme(), head.dashboard_address, f"; {outside}" if outside else "")
        except OSError as error:
            log.error("dashboard: cannot listen on %s:%d: %s", args.dashboard_host, args.dashboard_port, error)
    session.announce_ready(ready_fd, address)
    endpoint = MetricsServer(loop, metrics.families)
    try:
        port = await endpoint.start(bind_host(args.host), args.metrics_port)
        head.metrics_address = f"{args.host}:{port}"
        head.metrics_targets.changed()
        log.info("head serves metrics on %s://%s/metrics", http_server.scheme(), head.metrics_address)
    except OSError as error:
        log.error("head: cannot serve metrics on port %d: %s", args.metrics_port, error)
    await stop.wait()
    log.info("head stopping")
    dashboard.stop()
    endpoint.stop()
    watcher.cancel()
    sampler.cancel()
    head.close()
    await jobs.close()
    await head.placement_groups.close()
    await head.actors.close()
    await server.stop(0.5)


def _job_manager(head: Head, session_dir: str, state_dir: str | None) -> JobManager:
    """Submitted jobs and their code packages, kept in the state directory when there is one
    (a restarted head still has them), else in the session's."""
    root = state_dir or session_dir
    packages = PackageStore(os.path.join(root, "packages"))
    packages.job_alive = lambda job_id: job_id in head.jobs and head.jobs[job_id].alive
    return JobManager(
        JobStore(os.path.join(root, "jobs")),
        packages,
        lambda: head.actors.address,
        persistent=state_dir is not None,
        launcher=Launcher(head, session_dir),
    )


def _cluster_token(session_dir: str, state: HeadState | None) -> str:
    """The token given (environment), else the one a previous head kept, else a new one: a
    head never serves without one."""
    token = auth.from_environment()
    saved = state.token() if state is not None else ""
    if not token and saved:
        token = saved
    if not token:
        token = auth.generate()
        path = os.path.join(session_dir, "token")
        auth.write_file(path, token)
        log.warning("no cluster token was given (EMBER_TOKEN, EMBER_TOKEN_FILE): made one, in %s", path)
    if state is not None and token != saved:
        state.save_token(token)
    return token


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    # What the head writes (its logs, the metrics targets, its state) is for this user alone;
    # it runs no user code that could want otherwise.
    os.umask(0o077)
    ready_fd = session.setup_daemon_logging(args.session_dir, "head")
    asyncio.run(serve(args, ready_fd))
    os._exit(0)


def _set_soon(loop: asyncio.AbstractEventLoop, event: asyncio.Event) -> None:
    loop.call_soon_threadsafe(event.set)


if __name__ == "__main__":
    main()
