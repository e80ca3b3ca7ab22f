"""How ember up's nodes share one machine: the object store split, and the warning."""

from __future__ import annotations

from ember import cluster_spec
from ember.local_capacity import Machine, share

GIB = 2**30
LAPTOP = Machine(cpus=2, gpus=0, memory=24 * GIB, shm=24 * GIB)


def _manifest(groups: str, autoscaling: str = "") -> str:
    return f"""
apiVersion: ember.dev/v1alpha1
kind: Cluster
metadata: {{name: t}}
spec:
  head: {{resources: {{cpu: 1}}}}
  workerGroups: {groups}
  {autoscaling}
"""


def _share(text: str, machine: Machine = LAPTOP):
    import yaml

    _, head_cpus, groups, autoscaling = cluster_spec.parse(yaml.safe_load(text))
    return share(head_cpus, groups, autoscaling, machine)


def test_the_object_store_is_split_among_the_most_nodes_that_run_at_once():
    autoscaled = _share(
        _manifest("[{name: a, maxReplicas: 4, resources: {cpu: 250m, memory: 1Gi}}]",
                  "autoscaling: {enabled: true}")
    )
    assert autoscaled.nodes == 5  # the head's node and four workers
    budget = int(24 * GIB * 0.3)  # what one node alone would take
    assert autoscaled.object_store_memory == budget // 5
    fixed = _share(_manifest("[{name: a, replicas: 1, maxReplicas: 4, resources: {cpu: 500m}}]"))
    assert fixed.nodes == 2 and fixed.object_store_memory == budget // 2
    small_shm = _share(_manifest("[{name: a, replicas: 3, maxReplicas: 3, resources: {cpu: 100m}}]"),
                       Machine(cpus=2, gpus=0, memory=24 * GIB, shm=1 * GIB))
    assert small_shm.object_store_memory * small_shm.nodes <= 1 * GIB


def test_no_warning_within_the_machine():
    within = _share(_manifest("[{name: a, replicas: 1, maxReplicas: 1, resources: {cpu: 1, memory: 2Gi}}]"))
    assert within.warnings == [] and within.warning() == ""


def test_asking_for_more_than_the_machine_has_is_said_resource_by_resource():
    beyond = _share(_manifest(
        "[{name: gpu, replicas: 1, maxReplicas: 2, resources: {cpu: 8, memory: 32Gi, gpu: 1}}]"
    ))
    assert beyond.warnings == [
        "CPU: up to 9 (head 1 + gpu 1 x 8), on 2 CPUs: tasks are placed as on a cluster that "
        "size, and share this machine's 2",
        "GPU: up to 1 (gpu 1 x 1), and this machine has none: a task given a GPU here finds "
        "none to use",
        "memory: up to 32.0 GiB (gpu 1 x 32.0 GiB), on 24.0 GiB: tasks that use what they ask "
        "for run this machine out of memory",
    ]
    assert beyond.warning().startswith("ember up: warning: the manifest asks for more than this machine has")
    one_gpu = _share(_manifest("[{name: g, replicas: 2, maxReplicas: 2, resources: {cpu: 1, gpu: 1}}]"),
                     Machine(cpus=4, gpus=1, memory=24 * GIB, shm=24 * GIB))
    assert one_gpu.warnings == [
        "GPU: up to 2 (g 2 x 1), and this machine has only 1: tasks given the others find none to use"
    ]
