"""What the nodes of ``ember up`` may claim of the one machine they all run on.

On Kubernetes each worker pod is on a node of its own size; ``ember up`` runs every node of a
manifest on this machine. Left alone, each node agent would size its object store as if it had
the machine to itself (30% of its memory, at most ``/dev/shm``): five nodes, five 7 GiB arenas
on a 24 GiB ``/dev/shm``, which fail with SIGBUS or "no space" once they fill. So the object
store budget of one node is split among the most nodes the manifest can run at once (the head's
and every group's ``maxReplicas``; the fixed size when autoscaling is off).

CPUs, GPUs and memory are what the manifest says: a manifest is often tried here before it goes
to a cluster, and its shapes must schedule as they will there. When they add up to more than
this machine has, ``ember up`` says so plainly, resource by resource, instead of advertising
8 CPUs and a GPU on a 2-core machine without one in silence.
"""

from __future__ import annotations

from dataclasses import dataclass

from ember.local_provider import AutoscalingSpec, GroupSpec
from ember.runtime.node import gpu_devices, node_resources


@dataclass(frozen=True)
class Machine:
    cpus: float
    gpus: int
    memory: int  # bytes, as the cgroup allows
    shm: int  # bytes of /dev/shm an arena may use

    @classmethod
    def here(cls) -> Machine:
        return cls(
            node_resources.cpu_count(), len(gpu_devices.discover(None).ids),
            node_resources.memory_bytes(), node_resources.shm_bytes(),
        )


@dataclass(frozen=True)
class Share:
    nodes: int  # the most nodes that run at once: the head's, and every group's most
    object_store_memory: int  # bytes for each node's object store
    warnings: list[str]

    def summary(self, machine: Machine) -> str:
        """The object store's split, for ``ember up``'s opening lines."""
        return (
            f"  object store: {_gib(self.object_store_memory)} per node (this machine's "
            f"{_gib(_budget(machine))} shared by up to {self.nodes} node"
            f"{'s' if self.nodes != 1 else ''})"
        )

    def warning(self) -> str:
        """One paragraph, resource by resource, when the manifest asks for more than this
        machine has; "" when it does not."""
        if not self.warnings:
            return ""
        return "\n".join([
            "ember up: warning: the manifest asks for more than this machine has; its nodes all "
            "run here, and advertise what it asks for:",
            *(f"  {line}" for line in self.warnings),
        ])


def most_replicas(group: GroupSpec, autoscaling: AutoscalingSpec) -> int:
    """How many nodes of ``group`` may run at once (as ``LocalProvider`` sizes it)."""
    if autoscaling.enabled:
        return group.max_replicas
    return group.replicas if group.replicas is not None else group.min_replicas


def share(
    head_cpus: float, groups: list[GroupSpec], autoscaling: AutoscalingSpec, machine: Machine
) -> Share:
    counts = {group.name: most_replicas(group, autoscaling) for group in groups}
    nodes = 1 + sum(counts.values())
    store = max(1, _budget(machine) // nodes)
    warnings = []
    asked_cpus = head_cpus + sum(counts[g.name] * g.shape.get("CPU", 0.0) for g in groups)
    if asked_cpus > machine.cpus:
        warnings.append(
            f"CPU: up to {asked_cpus:g} ({_sum('CPU', head_cpus, groups, counts)}), on "
            f"{machine.cpus:g} CPUs: tasks are placed as on a cluster that size, and share "
            f"this machine's {machine.cpus:g}"
        )
    asked_gpus = sum(counts[g.name] * g.shape.get("GPU", 0.0) for g in groups)
    if asked_gpus > machine.gpus:
        has = (
            "none: a task given a GPU here finds none to use" if machine.gpus == 0
            else f"only {machine.gpus}: tasks given the others find none to use"
        )
        warnings.append(
            f"GPU: up to {asked_gpus:g} ({_sum('GPU', 0.0, groups, counts)}), and this machine "
            f"has {has}"
        )
    asked_memory = sum(counts[g.name] * g.shape.get("memory", 0.0) for g in groups)
    if asked_memory > machine.memory:
        warnings.append(
            f"memory: up to {_gib(asked_memory)} ({_sum('memory', 0.0, groups, counts)}), on "
            f"{_gib(machine.memory)}: tasks that use what they ask for run this machine out of "
            f"memory"
        )
    return Share(nodes, store, warnings)


def _budget(machine: Machine) -> int:
    """One node's default object store on this machine: what all of them share."""
    budget = int(machine.memory * node_resources.OBJECT_STORE_FRACTION)
    return min(budget, machine.shm) if machine.shm else budget


def _sum(resource: str, head: float, groups: list[GroupSpec], counts: dict[str, int]) -> str:
    """``head 2 + gpu 2 x 8``: where a total comes from."""
    parts = [f"head {head:g}"] if head else []
    for group in groups:
        amount = group.shape.get(resource, 0.0)
        if amount and counts[group.name]:
            shown = _gib(amount) if resource == "memory" else f"{amount:g}"
            parts.append(f"{group.name} {counts[group.name]} x {shown}")
    return " + ".join(parts) or "none"


def _gib(amount: float) -> str:
    return f"{amount / 2**30:.1f} GiB"
