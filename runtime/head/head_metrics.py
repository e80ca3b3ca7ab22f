"""The head's metrics: the cluster as a whole — nodes, actors, jobs, resources, demand.

Per-node figures carry a ``node`` label (the short node id): a cluster has tens or hundreds of
nodes, not millions, so the label stays low-cardinality. Pending demand is labelled by shape,
which is what an autoscaler reads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ember.runtime.objects import ids
from ember.runtime.wire import bundle_resources, resources
from ember.runtime.wire.metrics_server import Family, RpcLatency, build_info
from ember.runtime.wire.protocol import ember_pb2 as pb

if TYPE_CHECKING:
    from ember.runtime.head.head import Head

ACTOR_STATES = {pb.PENDING: "pending", pb.ALIVE: "alive", pb.RESTARTING: "restarting", pb.DEAD: "dead"}
GROUP_STATES = {
    pb.PG_PENDING: "pending", pb.PG_CREATED: "created", pb.PG_RESCHEDULING: "rescheduling",
    pb.PG_REMOVED: "removed",
}


class HeadMetrics:
    def __init__(self, head: Head) -> None:
        self.head = head
        self.rpc = RpcLatency()

    async def families(self) -> list[Family]:
        from prometheus_client.core import GaugeMetricFamily

        head = self.head
        families: list[Family] = [build_info("head")]
        nodes = GaugeMetricFamily("ember_nodes", "Nodes of the cluster, by state.", labels=["state"])
        alive = head.alive_nodes()
        nodes.add_metric(["alive"], len(alive))
        nodes.add_metric(["dead"], len(head.nodes) - len(alive))
        families.append(nodes)

        actors = GaugeMetricFamily("ember_actors", "Actors, by state.", labels=["state"])
        counts = dict.fromkeys(ACTOR_STATES.values(), 0)
        for record in head.actors.actors.values():
            counts[ACTOR_STATES[record.info.state]] += 1
        for state, count in counts.items():
            actors.add_metric([state], count)
        families.append(actors)

        groups = GaugeMetricFamily(
            "ember_placement_groups",
            "Placement groups, by state (removed: those the head still lists, the newest).",
            labels=["state"],
        )
        group_counts = dict.fromkeys(GROUP_STATES.values(), 0)
        for group in head.placement_groups.groups.values():
            group_counts[GROUP_STATES[group.state]] += 1
        for state, count in group_counts.items():
            groups.add_metric([state], count)
        families.append(groups)

        jobs = GaugeMetricFamily("ember_jobs", "Jobs (drivers), by state.", labels=["state"])
        running = sum(1 for job in head.jobs.values() if job.alive)
        jobs.add_metric(["running"], running)
        jobs.add_metric(["finished"], len(head.jobs) - running)
        families.append(jobs)

        total = GaugeMetricFamily(
            "ember_node_resources",
            "Resources each live node has (memory and object_store_memory in bytes).",
            labels=["node", "resource"],
        )
        available = GaugeMetricFamily(
            "ember_node_resources_available",
            "Resources of each live node not in use, as it last reported.",
            labels=["node", "resource"],
        )
        workers = GaugeMetricFamily(
            "ember_node_worker_processes", "Worker processes on each live node.", labels=["node"]
        )
        idle = GaugeMetricFamily(
            "ember_node_idle_seconds",
            "How long each live node has had no lease, no actor and no object only it holds "
            "(0: busy); an autoscaler removes nodes idle long enough.",
            labels=["node"],
        )
        broken = GaugeMetricFamily(
            "ember_node_object_store_broken",
            "1 for each live node whose object store is broken (it takes no new objects; "
            "ember status says why), 0 for the others.",
            labels=["node"],
        )
        for node in alive:
            name = ids.short(node.node_id)
            broken.add_metric([name], 1 if node.store_broken else 0)
            for resource, value in sorted(resources.to_float(node.total).items()):
                if resource.startswith("node:"):
                    continue
                total.add_metric([name, resource], value)
                available.add_metric(
                    [name, resource], resources.to_float({resource: node.available.get(resource, 0)})[resource]
                )
            workers.add_metric([name], node.num_workers)
            idle.add_metric([name], node.idle_seconds)
        families += [total, available, workers, idle, broken]

        demand = GaugeMetricFamily(
            "ember_pending_demand",
            "Work waiting for room, by resource shape: lease requests queued at node agents "
            "(kind=task) and actors waiting for a node (kind=actor).",
            labels=["shape", "kind"],
        )
        shapes: dict[tuple[str, str], int] = {}
        for node in alive:
            for entry in node.pending:
                key = (_shape(entry), "task")
                shapes[key] = shapes.get(key, 0) + entry.count
        for entry in head.actors.demand():
            key = (_shape(entry), "actor")
            shapes[key] = shapes.get(key, 0) + entry.count
        for (shape, kind), count in sorted(shapes.items()):
            demand.add_metric([shape, kind], count)
        families.append(demand)
        families += self.rpc.families()
        return families


def _shape(demand: pb.ResourceDemand) -> str:
    return bundle_resources.describe(resources.to_fixed(demand.shape.quantities))
