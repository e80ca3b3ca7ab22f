"""One autoscaling decision, as ember's operator and Ray's autoscaler (v2) take it, on the
same made-up cluster: built once, outside the timing, then decided as often as asked.

The cluster: three node groups (4-CPU, 8-CPU with a GPU, 32-CPU), ``live`` running nodes spread
over them, of which one in twenty is idle, one in twenty half free and the rest busy; and
``pending`` waiting bundles of five shapes. That is the moment an autoscaler is for: a full
cluster with work waiting. No group is capped, so only the policy's own launch limit (ember:
twice the running nodes at once) bounds what it adds.

ember's ``autoscaling_policy.plan`` is a pure function of this. Ray's counterpart is
``ResourceDemandScheduler.schedule`` (``ray.autoscaler.v2.scheduler``), equally pure, fed
the instances and demand its autoscaler would give it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

GROUPS: tuple[tuple[str, dict[str, float]], ...] = (
    ("cpu", {"CPU": 4.0, "memory": 16e9}),
    ("gpu", {"CPU": 8.0, "GPU": 1.0, "memory": 32e9}),
    ("big", {"CPU": 32.0, "memory": 128e9}),
)
SHAPES: tuple[dict[str, float], ...] = (
    {"CPU": 1.0},
    {"CPU": 2.0},
    {"CPU": 1.0, "GPU": 1.0},
    {"CPU": 4.0, "memory": 8e9},
    {"CPU": 16.0},
)
IDLE_TIMEOUT = 60.0


def _node(index: int) -> tuple[str, str, dict[str, float], dict[str, float], float]:
    """(name, group, total, available, idle seconds) of the index-th live node."""
    group, shape = GROUPS[index % len(GROUPS)]
    kind = index % 20
    if kind == 0:
        available, idle = dict(shape), 600.0
    elif kind == 1:
        available, idle = {k: v / 2 for k, v in shape.items()}, 0.0
    else:
        available, idle = {k: 0.0 for k in shape}, 0.0
    return f"{group}-{index}", group, dict(shape), available, idle


def _bundles(pending: int) -> list[dict[str, float]]:
    return [SHAPES[i % len(SHAPES)] for i in range(pending)]


def ember_decider(live: int, pending: int) -> Callable[[], Any]:
    from ember.operator.autoscaling_policy import Node, WorkerGroup, plan

    nodes = [
        Node(name, group, available, idle, total=total)
        for name, group, total, available, idle in map(_node, range(live))
    ]
    groups = [
        WorkerGroup(
            name,
            shape,
            min_replicas=0,
            max_replicas=live + pending,
            workers=tuple(n.name for n in nodes if n.group == name),
        )
        for name, shape in GROUPS
    ]
    bundles = _bundles(pending)

    def decide() -> Any:
        return plan(groups, nodes, bundles, IDLE_TIMEOUT)

    return decide


def ray_decider(live: int, pending: int) -> Callable[[], Any]:
    import logging

    from ray.autoscaler.v2.instance_manager.config import NodeTypeConfig
    from ray.autoscaler.v2.scheduler import ResourceDemandScheduler, SchedulingRequest
    from ray.autoscaler.v2.schema import AutoscalerInstance
    from ray.autoscaler.v2.utils import ResourceRequestUtil
    from ray.core.generated.autoscaler_pb2 import NodeState, NodeStatus
    from ray.core.generated.instance_manager_pb2 import Instance, NodeKind

    logging.getLogger("ray.autoscaler.v2.scheduler").setLevel(logging.WARNING)
    configs = {
        name: NodeTypeConfig(
            name=name, min_worker_nodes=0, max_worker_nodes=live + pending, resources=shape
        )
        for name, shape in GROUPS
    }
    instances = []
    for name, group, total, available, idle in map(_node, range(live)):
        node_id = name.encode()
        instances.append(AutoscalerInstance(
            cloud_instance_id=name,
            im_instance=Instance(
                instance_id=name,
                instance_type=group,
                status=Instance.RAY_RUNNING,
                node_id=node_id.hex(),
                node_kind=NodeKind.WORKER,
                cloud_instance_id=name,
            ),
            ray_node=NodeState(
                node_id=node_id,
                ray_node_type_name=group,
                total_resources=total,
                available_resources=available,
                idle_duration_ms=int(idle * 1000),
                status=NodeStatus.IDLE if idle else NodeStatus.RUNNING,
                instance_id=name,
            ),
        ))
    requests = ResourceRequestUtil.group_by_count(
        [ResourceRequestUtil.make(shape) for shape in _bundles(pending)]
    )
    scheduler = ResourceDemandScheduler()

    def decide() -> Any:
        return scheduler.schedule(SchedulingRequest(
            disable_launch_config_check=True,
            node_type_configs=configs,
            idle_timeout_s=IDLE_TIMEOUT,
            resource_requests=requests,
            current_instances=instances,
        ))

    return decide


def decider(system: str, live: int, pending: int) -> Callable[[], Any]:
    return (ember_decider if system == "ember" else ray_decider)(live, pending)
