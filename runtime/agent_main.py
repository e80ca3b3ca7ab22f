"""``python -m ember.runtime.agent_main``: the node agent process.

The zygote is started before anything heavy is imported, so that it and the agent pay their
import costs at the same time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ember-agent")
    parser.add_argument("--head-address", required=True, help="HOST:PORT, or - to read it from stdin")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--session-dir", required=True)
    parser.add_argument("--num-cpus", type=float)
    parser.add_argument(
        "--num-gpus", type=float,
        help="GPUs to offer (default: what nvidia-smi finds); their ids are those in "
        "CUDA_VISIBLE_DEVICES when it is set, else 0..N-1",
    )
    parser.add_argument(
        "--accelerator-type",
        help="the GPUs' model, e.g. A100 (default: from nvidia-smi): advertised as the "
        "resource accelerator_type:<model>, which accelerator_type= asks for",
    )
    parser.add_argument("--memory", type=int)
    parser.add_argument("--object-store-memory", type=int)
    parser.add_argument("--resources", default="{}", help="custom resources as JSON")
    parser.add_argument("--labels", default="{}", help="node labels as JSON")
    parser.add_argument("--warm-workers", type=int, help="workers kept started (default: CPUs)")
    parser.add_argument("--spill-dir", help="where the object store spills (default: the session's)")
    parser.add_argument("--lifeline", action="store_true", help="exit when stdin closes")
    parser.add_argument(
        "--metrics-port", type=int, default=0, help="Prometheus endpoint port (0: any free one)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    env = dict(os.environ, EMBER_SESSION_DIR=args.session_dir, EMBER_NODE_HOST=args.host)
    from ember.runtime.node.worker_pool import start_zygote, with_thread_default

    env = with_thread_default(env)
    zygote = start_zygote(env)
    import asyncio

    from ember.runtime import session

    ready_fd = session.setup_daemon_logging(args.session_dir, "node-agent")
    from ember.runtime.wire import auth

    auth.set_token(auth.from_environment())
    asyncio.run(_serve(args, zygote, env, ready_fd))
    os._exit(0)


async def _serve(args: argparse.Namespace, zygote: object, env: dict[str, str], ready_fd: int) -> None:
    import asyncio
    import logging
    import math
    import signal

    from ember.runtime import session
    from ember.runtime.node import arena_owner, gpu_devices, node_resources, queue_balance
    from ember.runtime.node.bulk_transfer import BulkServer
    from ember.runtime.node.node_agent import NodeAgent
    from ember.runtime.node.object_store import ObjectStore
    from ember.runtime.node.worker_pool import WorkerPool
    from ember.runtime.objects import ids
    from ember.runtime.wire import http_server, resources, rpc
    from ember.runtime.wire.listen_address import bind_host
    from ember.runtime.wire.metrics_server import MetricsServer
    from ember.runtime.wire.protocol import ember_pb2_grpc as rpc_pb

    log = logging.getLogger("ember.runtime.node.node_agent")
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    why = {"reason": ""}
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _on_signal, stop, why, sig.name)

    try:
        gpus = gpu_devices.discover(args.num_gpus, args.accelerator_type)
    except ValueError as error:
        log.error("the node agent cannot start: %s", error)
        raise SystemExit(2) from None
    total = node_resources.default_resources(
        num_cpus=args.num_cpus,
        num_gpus=len(gpus.ids),
        memory=args.memory,
        object_store_memory=args.object_store_memory,
        custom=json.loads(args.resources),
    )
    if gpus.ids and gpus.accelerator_type:
        total[resources.ACCELERATOR_TYPE + gpus.accelerator_type] = resources.UNIT
    total[f"node:{args.host}"] = 10_000
    cpus = total.get("CPU", 0) / 10_000
    warm = args.warm_workers
    if warm is None:
        warm = max(1, min(math.ceil(cpus), node_resources.cpu_count()))
    node_id = ids.random_id()
    # Arenas of agents that were killed (nothing deleted them) go first; this one is claimed.
    arena_owner.sweep()
    arena_dir = os.path.join(arena_owner.SHM, f"ember-{os.path.basename(args.session_dir)}-{node_id.hex()[:8]}")
    arena_lock = arena_owner.claim(arena_dir)
    spill_dir = args.spill_dir or os.path.join(args.session_dir, "spill", node_id.hex()[:8])
    for directory in (os.path.dirname(spill_dir), spill_dir):  # spilled objects are someone's data
        os.makedirs(directory, mode=0o700, exist_ok=True)
    store = ObjectStore(arena_dir, total.get("object_store_memory", 0) // 10_000, spill_dir)
    agent: NodeAgent | None = None
    pool = WorkerPool(
        zygote,  # type: ignore[arg-type]
        env,
        lambda worker: agent.on_worker_exit(worker) if agent else None,
        lambda: agent.on_pool_restarted() if agent else None,
        lambda reason: agent.on_pool_broken(reason) if agent else None,
    )
    agent = NodeAgent(
        node_id, args.host, total, pool, warm, store, json.loads(args.labels), args.session_dir,
        gpu_devices.GpuDevices(gpus.ids),
    )
    server = rpc.server("node agent", observe=agent.metrics.rpc.observe, services=("NodeAgent",))
    rpc_pb.add_NodeAgentServicer_to_server(agent, server)
    # Advertised as --host; listening on every interface unless that is a loopback address.
    listen_host = bind_host(args.host)
    port = rpc.bind(server, listen_host, args.port)
    await server.start()
    agent.address = f"{args.host}:{port}"
    agent.transfer.address = agent.address
    bulk = BulkServer(store, loop, args.host)
    agent.transfer.bulk_port = bulk.port
    pool.worker_env = {
        "EMBER_AGENT_ADDRESS": agent.address,
        "EMBER_NODE_ID": agent.node_id.hex(),
        "EMBER_SESSION_DIR": args.session_dir,
        "EMBER_NODE_HOST": args.host,
        "EMBER_STORE_DIR": store.directory,
    }
    await pool.start()
    head_address = args.head_address
    if head_address == "-":
        head_address = (await loop.run_in_executor(None, sys.stdin.readline)).strip()
    agent.head_address = head_address
    pool.worker_env["EMBER_HEAD_ADDRESS"] = head_address
    # The zygote is still importing: these wait in its pipe, costing no time.
    for _ in range(warm):
        pool.spawn()
    if args.lifeline:
        session.watch_lifeline(lambda: _set_soon(loop, stop))
    log.info("%s serving with %s; head %s", agent.describe(), resources.describe(total), head_address)
    if gpus.ids:
        log.info(
            "%s: GPUs %s%s", agent.describe(), ",".join(gpus.ids),
            f" ({gpus.accelerator_type})" if gpus.accelerator_type else "",
        )
    agent.on_refused = lambda reason: stop.set()
    registered = asyncio.Event()
    head_task = asyncio.ensure_future(agent.head_link.run(registered))
    reaper = asyncio.ensure_future(agent.reap_idle_workers())
    balancer = asyncio.ensure_future(queue_balance.move_waiting_requests(agent))
    session.announce_ready(ready_fd, agent.address)
    metrics = MetricsServer(loop, agent.metrics.families, lambda: agent.store.broken or agent.pool.broken or None)
    try:
        agent.metrics_port = await metrics.start(listen_host, args.metrics_port)
        agent.report_soon()
        log.info(
            "%s serves metrics on %s://%s:%d/metrics", agent.describe(), http_server.scheme(), args.host,
            agent.metrics_port,
        )
    except OSError as error:
        log.error("%s: cannot serve metrics on port %d: %s", agent.describe(), args.metrics_port, error)
    await stop.wait()
    log.info("%s stopping", agent.describe())
    if why["reason"]:
        await agent.head_link.say_leaving(why["reason"])
    agent.stopping = True
    head_task.cancel()
    reaper.cancel()
    balancer.cancel()
    metrics.stop()
    bulk.stop()
    pool.stop()
    agent.runtime_envs.close()
    store.close()
    arena_owner.release(arena_dir, arena_lock)
    await server.stop(0.5)


def _on_signal(stop: asyncio.Event, why: dict[str, str], name: str) -> None:
    why["reason"] = f"{name} received"
    stop.set()


def _set_soon(loop: asyncio.AbstractEventLoop, event: asyncio.Event) -> None:
    loop.call_soon_threadsafe(event.set)


if __name__ == "__main__":
    main()
