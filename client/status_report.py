"""``ember status``: what ``ray status`` says, read straight from the head.

It asks the head for its view over one RPC instead of joining as a driver: looking at a cluster
must not start a job on it, and must work while the cluster is too busy to lease anything.
"""

from __future__ import annotations

import asyncio
import time

from ember.runtime.objects import ids
from ember.runtime.wire import bundle_resources, http_server, resources, rpc
from ember.runtime.wire.protocol import ember_pb2 as pb

RULE = "-" * 60


def fetch(head_address: str, timeout: float = 10.0) -> pb.ClusterView:
    async def ask() -> pb.ClusterView:
        channels = rpc.Channels()
        try:
            return await channels.head(head_address).GetClusterView(pb.Empty(), timeout=timeout)
        finally:
            await channels.close()

    return asyncio.run(ask())


def _draining(node: pb.NodeView) -> str:
    if node.drain_state == pb.DRAINED:
        return "  (drained: may be stopped)"
    if node.drain_state == pb.DRAINING:
        return f"  (draining: waiting for {node.drain.waiting_for or 'its agent'})"
    return ""


def render(view: pb.ClusterView, now: float | None = None) -> str:
    now = time.time() if now is None else now
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))
    lines = [f"======== Cluster status: {stamp} ========", dashboard_line(view),
             "", "Node status", RULE, "Healthy:"]
    alive = [n for n in view.nodes if n.alive]
    dead = [n for n in view.nodes if not n.alive]
    healthy = [n for n in alive if not n.store_broken]
    for node in healthy:
        lines.append(f" node_{ids.short(node.info.node_id)} {node.info.address}  "
                     f"{node.num_workers} workers  {_usage_line(node)}{_draining(node)}")
    if not healthy:
        lines.append(" (no healthy nodes)")
    unhealthy = [n for n in alive if n.store_broken]
    if unhealthy:
        lines.append("Unhealthy:")
    for node in unhealthy:
        lines.append(f" node_{ids.short(node.info.node_id)} {node.info.address}  object store broken "
                     f"(it takes no new objects; restart the node): {node.store_broken}")
    lines.append("Dead:")
    for node in dead:
        lines.append(f" node_{ids.short(node.info.node_id)} {node.info.address}: {node.death_cause}")
    if not dead:
        lines.append(" (no dead nodes)")
    lines += ["Pending:"]
    pending = _demand(view)
    lines += pending or [" (no pending work)"]
    lines += ["", "Resources", RULE, "Usage:"]
    total: dict[str, int] = {}
    free: dict[str, int] = {}
    for node in alive:
        resources.add(total, resources.to_fixed(node.info.total.quantities))
        resources.add(free, resources.to_fixed(node.available.quantities))
    reserved = _reserved(total, free)
    for name in sorted(total):
        if name.startswith("node:") or bundle_resources.parse(name) is not None:
            continue
        used, whole = (total[name] - free.get(name, 0)) / resources.UNIT, total[name] / resources.UNIT
        if name in ("memory", "object_store_memory"):
            line = f" {used / 2**30:.2f}GiB/{whole / 2**30:.2f}GiB {name}"
        else:
            line = f" {used:g}/{whole:g} {name}"
        if name in reserved:
            in_use, held = reserved[name]
            line += f" ({in_use:g} used of {held:g} reserved in placement groups)"
        lines.append(line)
    lines += ["", "Metrics (Prometheus):"]
    if view.metrics_address:
        lines.append(f" head   {http_server.scheme()}://{view.metrics_address}/metrics")
    for node in alive:
        if node.info.metrics_port:
            lines.append(
                f" node_{ids.short(node.info.node_id)} "
                f"{http_server.scheme()}://{node.info.host}:{node.info.metrics_port}/metrics"
            )
    lines += ["", "Recent failures:"]
    for event in view.events[-20:]:
        when = time.strftime("%H:%M:%S", time.localtime(event.time))
        lines.append(f" {when} {event.message}")
    if not view.events:
        lines.append(" (none)")
    return "\n".join(lines)


def _reserved(total: dict[str, int], free: dict[str, int]) -> dict[str, tuple[float, float]]:
    """Per resource, what placement groups use of what they reserve (as ``ray status``)."""
    found: dict[str, tuple[float, float]] = {}
    for name, amount in total.items():
        parsed = bundle_resources.parse(name)
        if parsed is None or parsed[2] != -1 or parsed[0] == bundle_resources.BUNDLE:
            continue  # the group-wide name counts each bundle once
        in_use, held = found.get(parsed[0], (0.0, 0.0))
        found[parsed[0]] = (
            in_use + (amount - free.get(name, 0)) / resources.UNIT, held + amount / resources.UNIT
        )
    return found


def dashboard_line(view: pb.ClusterView) -> str:
    """Where the dashboard is (it wants the cluster's token, as every port does)."""
    if not view.dashboard_address:
        return "Dashboard: none (the head was started without one, or could not listen; see its log)"
    return (
        f"Dashboard: {http_server.scheme()}://{view.dashboard_address}  (open it with "
        f"#token=TOKEN, the cluster's token)"
    )


def _usage_line(node: pb.NodeView) -> str:
    total = resources.to_fixed(node.info.total.quantities)
    free = resources.to_fixed(node.available.quantities)
    cpu = total.get("CPU", 0)
    line = f"CPU {(cpu - free.get('CPU', 0)) / resources.UNIT:g}/{cpu / resources.UNIT:g} in use"
    if node.idle_seconds >= 1:
        line += f", idle {node.idle_seconds:.0f}s"
    return line


def _demand(view: pb.ClusterView) -> list[str]:
    """Waiting shapes, tasks (queued at agents) and actors (queued at the head) apart."""
    tasks: dict[str, int] = {}
    for node in view.nodes:
        if node.alive:
            for demand in node.pending:
                key = bundle_resources.describe(resources.to_fixed(demand.shape.quantities))
                tasks[key] = tasks.get(key, 0) + demand.count
    lines = [f" {shape}: {count} lease request{'s' if count != 1 else ''} waiting"
             for shape, count in sorted(tasks.items())]
    for demand in view.actor_demand:
        key = bundle_resources.describe(resources.to_fixed(demand.shape.quantities))
        lines.append(f" {key}: {demand.count} actor{'s' if demand.count != 1 else ''} waiting")
    for group in view.placement_group_demand:
        shapes = ", ".join(resources.describe(resources.to_fixed(b.quantities)) for b in group.bundles)
        lines.append(
            f" placement group {group.placement_group_id.hex()[:12]} ({group.strategy}): "
            f"bundles {shapes} waiting"
        )
    return lines
