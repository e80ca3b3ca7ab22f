"""The head pod and worker pods of a ``Cluster``: one image, entry point ``ember start``.

A pod is the spec's resources and start parameters turned into an ``ember start`` command line,
the cluster's token and TLS files turned into environment and volumes, and the user's template
overrides laid over that. Workers are managed one by one (not by a Deployment) so that a
scale-down can remove exactly the workers the autoscaler drained; so a worker never restarts in
place (restartPolicy Never): a worker that dies is replaced by the reconcile and counted.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from ember.operator import children
from ember.operator.cluster_spec import ClusterSpec, Resources, WorkerGroup, head_hash, worker_hash

CONTAINER = "ember"
STATE_DIR = "/var/lib/ember"
TLS_DIR = "/etc/ember/tls"
TLS_LABEL = "ember.dev/tls"
TMP_DIR = "/tmp"
USER_ID = 1000


def head_pod(cluster: Mapping[str, Any], spec: ClusterSpec) -> dict[str, Any]:
    """Pod ``<cluster>-head``: the head and its node agent; restarted in place when it exits."""
    head = spec.head
    ports = spec.ports
    params = dict(head.get("startParams") or {})
    args = [
        "start", "--head", "--block", "--host", "$(POD_IP)", "--port", str(ports["client"]),
        "--dashboard-host", "0.0.0.0", "--dashboard-port", str(ports["dashboard"]),
        "--head-metrics-port", str(ports["metrics"]), "--metrics-port", str(ports["nodeMetrics"]),
        "--state-dir", STATE_DIR,
        *(["--autoscaler"] if spec.raw["autoscaling"]["enabled"] else []),
    ]
    args += _resource_flags(spec.head_resources, params)
    args += _node_labels(params, {"ember.dev/pod": spec.head_pod_name, "ember.dev/node-type": "head"})
    args += _start_params(params)
    container = _container(spec, spec.head_resources, head.get("template") or {}, args)
    container["ports"] = [
        {"name": "client", "containerPort": ports["client"], "protocol": "TCP"},
        {"name": "dashboard", "containerPort": ports["dashboard"], "protocol": "TCP"},
        {"name": "metrics", "containerPort": ports["metrics"], "protocol": "TCP"},
        {"name": "node-metrics", "containerPort": ports["nodeMetrics"], "protocol": "TCP"},
    ]
    container["readinessProbe"] = {
        "tcpSocket": {"port": "client"}, "initialDelaySeconds": 1, "periodSeconds": 5,
        "failureThreshold": 3,
    }
    container["volumeMounts"].insert(2, {"name": "state", "mountPath": STATE_DIR})
    state: dict[str, Any] = (
        {"name": "state", "persistentVolumeClaim": {"claimName": spec.state_claim_name}}
        if "stateVolume" in head
        else {"name": "state", "emptyDir": {}}
    )
    pod = _pod(cluster, spec, spec.head_pod_name, "head", None, head.get("template") or {},
               container, head_hash(spec))
    pod["spec"]["restartPolicy"] = "Always"
    pod["spec"]["volumes"].insert(2, state)
    return pod


def worker_pod(cluster: Mapping[str, Any], spec: ClusterSpec, group: WorkerGroup, name: str) -> dict[str, Any]:
    """Worker pod ``name`` of ``group``: a node agent joining the head through its Service.

    Its node labels carry the pod's name, group and node type: the pod's name is how the
    head's view of a node is matched back to the pod (to drain it before the pod is deleted),
    and tasks select nodes by all three (``label_selector``).
    """
    params = dict(group.start_params)
    args = [
        "start", "--block", "--address", f"{spec.service_host}:{spec.ports['client']}",
        "--host", "$(POD_IP)", "--metrics-port", str(spec.ports["nodeMetrics"]),
    ]
    args += _resource_flags(group.resources, params)
    args += _node_labels(
        params, {"ember.dev/pod": name, "ember.dev/group": group.name, "ember.dev/node-type": "worker"}
    )
    args += _start_params(params)
    container = _container(spec, group.resources, group.template, args)
    container["ports"] = [
        {"name": "node-metrics", "containerPort": spec.ports["nodeMetrics"], "protocol": "TCP"},
    ]
    # The agent answers 503 on /healthz once its object store is broken: the pod then stops
    # being Ready (and is counted so in the Cluster's status) instead of taking work it can't
    # store. Readiness only: restarting would throw away the objects it still serves. With TLS
    # the endpoint speaks HTTPS (the kubelet does not check its certificate).
    probe: dict[str, Any] = {"path": "/healthz", "port": "node-metrics"}
    if spec.tls_secret:
        probe["scheme"] = "HTTPS"
    container["readinessProbe"] = {
        "httpGet": probe, "initialDelaySeconds": 1, "periodSeconds": 5, "failureThreshold": 2,
    }
    pod = _pod(cluster, spec, name, "worker", group.name, group.template, container,
               worker_hash(spec, group))
    pod["spec"]["restartPolicy"] = "Never"
    return pod


def group_node_labels(group: WorkerGroup) -> dict[str, str]:
    """The node labels every worker of the group starts with (all but its pod's name): what
    the autoscaler matches label selectors against when it adds one."""
    labels = _given_labels(group.start_params.get("labels")) or {}
    labels.update({"ember.dev/group": group.name, "ember.dev/node-type": "worker"})
    return labels


def _given_labels(given: str | None) -> dict[str, str] | None:
    if given is None:
        return None
    try:
        parsed = json.loads(given)
    except ValueError:
        return None
    return {str(k): str(v) for k, v in parsed.items()} if isinstance(parsed, dict) else None


def _node_labels(params: dict[str, str], ours: dict[str, str]) -> list[str]:
    """``--labels``: the labels of startParams with the pod's own (which win: the operator
    finds its nodes by them). Takes ``labels`` out of ``params``; labels that are not a JSON
    object are passed as they are, for the agent to refuse them by name."""
    given = params.pop("labels", None)
    theirs = _given_labels(given)
    if given is not None and theirs is None:
        return ["--labels", given]
    merged = {**(theirs or {}), **ours}
    return ["--labels", json.dumps(merged, separators=(",", ":"))]


def _resource_flags(resources: Resources, params: Mapping[str, str]) -> list[str]:
    """--num-cpus, --num-gpus and --resources from the spec, unless startParams sets them."""
    flags = []
    if "num-cpus" not in params:
        flags += ["--num-cpus", _number(resources.cpu)]
    if resources.gpu and "num-gpus" not in params:
        flags += ["--num-gpus", str(resources.gpu)]
    if resources.custom and "resources" not in params:
        flags += ["--resources", json.dumps(dict(sorted(resources.custom.items())), separators=(",", ":"))]
    return flags


def _start_params(params: Mapping[str, str]) -> list[str]:
    """``{key: value}`` as ``--key value`` (a bare ``--key`` for an empty value)."""
    flags = []
    for key, value in sorted(params.items()):
        flags.append(f"--{key}")
        if value != "":
            flags.append(str(value))
    return flags


def _number(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text


def _container(spec: ClusterSpec, resources: Resources, template: Mapping[str, Any], args: list[str]) -> dict[str, Any]:
    requests: dict[str, str] = {"memory": str(resources.memory)}
    if resources.cpu > 0:
        requests["cpu"] = _number(resources.cpu)
    limits: dict[str, str] = {"memory": str(resources.memory)}
    if resources.gpu:
        limits["nvidia.com/gpu"] = str(resources.gpu)
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": spec.raw["image"],
        "imagePullPolicy": spec.raw["imagePullPolicy"],
        "command": ["ember"],
        "args": args,
        "env": _env(spec, template),
        "resources": {"requests": requests, "limits": limits},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
        },
        # The root filesystem is read-only; what ember writes goes to these (the Dockerfile
        # says the same): the object store in /dev/shm, session directories, logs and spilled
        # objects under /tmp (EMBER_TEMP_DIR), and the head's --state-dir (mounted in head_pod).
        "volumeMounts": [{"name": "dshm", "mountPath": "/dev/shm"}, {"name": "tmp", "mountPath": TMP_DIR}],
    }
    if spec.tls_secret:
        container["volumeMounts"].append({"name": "tls", "mountPath": TLS_DIR, "readOnly": True})
    container["volumeMounts"] += [dict(m) for m in template.get("volumeMounts") or []]
    if template.get("envFrom"):
        container["envFrom"] = [dict(e) for e in template["envFrom"]]
    return container


def _env(spec: ClusterSpec, template: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The operator's variables, then the template's; a template variable of the same name
    replaces the operator's (so EMBER_TLS_SERVER_NAME, say, can be set per cluster)."""
    env: list[dict[str, Any]] = [
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "EMBER_TOKEN", "valueFrom": {"secretKeyRef": {"name": spec.token_secret, "key": children.TOKEN_KEY}}},
    ]
    if spec.tls_secret:
        env += [
            {"name": "EMBER_TLS_CERT", "value": f"{TLS_DIR}/{children.TLS_CERT_KEY}"},
            {"name": "EMBER_TLS_KEY", "value": f"{TLS_DIR}/{children.TLS_KEY_KEY}"},
            {"name": "EMBER_TLS_CA", "value": f"{TLS_DIR}/{children.TLS_CA_KEY}"},
            # One certificate serves every pod; processes dial pod IPs, so the name checked is
            # the head Service's, which the certificate must carry.
            {"name": "EMBER_TLS_SERVER_NAME", "value": spec.service_host},
        ]
    overrides = {e["name"]: dict(e) for e in template.get("env") or []}
    out = [overrides.pop(e["name"], e) for e in env]
    return out + [e for e in (dict(x) for x in template.get("env") or []) if e["name"] in overrides]


def _pod(
    cluster: Mapping[str, Any],
    spec: ClusterSpec,
    name: str,
    node_type: str,
    group: str | None,
    template: Mapping[str, Any],
    container: dict[str, Any],
    spec_hash: str,
) -> dict[str, Any]:
    meta = children.metadata(cluster, spec, name, node_type=node_type, group=group)
    meta["labels"] = {**(template.get("labels") or {}), **meta["labels"]}
    if spec.tls_secret:
        # Its dashboard and metrics speak HTTPS: the chart's PodMonitor scrapes it so.
        meta["labels"][TLS_LABEL] = "true"
    meta["annotations"] = {**(template.get("annotations") or {}), children.HASH_ANNOTATION: spec_hash}
    volumes: list[dict[str, Any]] = [
        {"name": "dshm", "emptyDir": {"medium": "Memory"}},
        {"name": "tmp", "emptyDir": {}},  # no size limit: spilled objects land here
    ]
    if spec.tls_secret:
        volumes.append({"name": "tls", "secret": {"secretName": spec.tls_secret, "defaultMode": 0o440}})
    volumes += [dict(v) for v in template.get("volumes") or []]
    pod_spec: dict[str, Any] = {
        "containers": [container],
        "volumes": volumes,
        "enableServiceLinks": False,
        # ember talks to no Kubernetes API from its pods: no token of the pod's service
        # account is mounted unless the template asks for one.
        "automountServiceAccountToken": bool(template.get("automountServiceAccountToken", False)),
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": USER_ID,
            "runAsGroup": USER_ID,
            "fsGroup": USER_ID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    for key in ("nodeSelector", "affinity", "serviceAccountName", "priorityClassName"):
        if template.get(key):
            pod_spec[key] = copy_of(template[key])
    if template.get("tolerations"):
        pod_spec["tolerations"] = [dict(t) for t in template["tolerations"]]
    if spec.raw.get("imagePullSecrets"):
        pod_spec["imagePullSecrets"] = [dict(s) for s in spec.raw["imagePullSecrets"]]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": pod_spec}


def copy_of(value: Any) -> Any:
    """A JSON-shaped deep copy, so a rendered pod never shares lists with the spec."""
    return json.loads(json.dumps(value))
