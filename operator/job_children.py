"""What an ``EmberJob`` makes: its Cluster (from ``clusterSpec``) and its submitter Job.

Both carry the label ``ember.dev/job=<job>`` and a controller owner reference to the EmberJob,
so deleting the job takes them with it (garbage collection) and the reconcile finds them by
label. The submitter (``submissionMode: SubmitterJob``) is a ``batch/v1`` Job that runs, in
the cluster's own image, what a user would type:

    ember job status ID || ember job submit --no-wait --submission-id ID ... -- ENTRYPOINT
    ember job logs -f ID

(``kubectl logs job/<job>-<attempt>-submit`` then shows the job's output.) Checking first makes
a restarted submitter pod follow the job it already submitted instead of failing on the taken
id. The user's values (entrypoint, runtime_env) reach it as environment variables, never as
words of a shell command line. Its pod is hardened as the cluster's pods are, and labelled as
one of the cluster's (``ember.dev/cluster``) so that the cluster's NetworkPolicy lets it reach
the head; the Cluster's reconcile takes only pods labelled head or worker for its own.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

from ember.operator import children, pod_template
from ember.operator.cluster_spec import ClusterSpec
from ember.operator.job_spec import GROUP, JOB_LABEL, KIND, VERSION, JobSpec

SUBMITTER_BACKOFF = 3  # pod retries of a submitter (the head not answering yet, say)
SUBMITTER_RESOURCES = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}}
SUBMITTER_SCRIPT = (
    'ember job status "$EMBER_SUBMISSION_ID" >/dev/null 2>&1 || '
    'ember job submit --no-wait --submission-id "$EMBER_SUBMISSION_ID" '
    '--runtime-env-json "$EMBER_RUNTIME_ENV_JSON" --metadata-json "$EMBER_METADATA_JSON" '
    '$EMBER_ENTRYPOINT_FLAGS -- "$EMBER_ENTRYPOINT" || exit 1\n'
    'exec ember job logs -f "$EMBER_SUBMISSION_ID"'
)


def owner_reference(ejob: Mapping[str, Any]) -> dict[str, Any]:
    metadata = ejob.get("metadata") or {}
    return {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": KIND, "name": metadata.get("name", ""),
        "uid": metadata.get("uid", ""), "controller": True, "blockOwnerDeletion": True,
    }


def labels(spec: JobSpec, attempt: int) -> dict[str, str]:
    return {
        JOB_LABEL: spec.name,
        "ember.dev/attempt": str(attempt),
        "app.kubernetes.io/name": "ember",
        children.MANAGED_BY_LABEL: children.MANAGED_BY,
    }


def cluster(ejob: Mapping[str, Any], spec: JobSpec, attempt: int) -> dict[str, Any]:
    """The attempt's Cluster, ``<job>-<attempt>``, made from ``clusterSpec``."""
    assert spec.cluster_spec is not None
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Cluster",
        "metadata": {
            "name": spec.cluster_name(attempt),
            "namespace": spec.namespace,
            "labels": labels(spec, attempt),
            "ownerReferences": [owner_reference(ejob)],
        },
        "spec": copy.deepcopy(dict(spec.cluster_spec)),
    }


def runtime_env_json(spec: JobSpec, working_dir: str) -> str:
    env = dict(spec.runtime_env)
    if working_dir:
        env["working_dir"] = working_dir
    return json.dumps(env, sort_keys=True) if env else ""


def entrypoint_flags(spec: JobSpec) -> list[str]:
    flags = []
    if spec.entrypoint_num_cpus:
        flags += ["--entrypoint-num-cpus", f"{spec.entrypoint_num_cpus:g}"]
    if spec.entrypoint_num_gpus:
        flags += ["--entrypoint-num-gpus", f"{spec.entrypoint_num_gpus:g}"]
    if spec.entrypoint_memory:
        flags += ["--entrypoint-memory", str(spec.entrypoint_memory)]
    if spec.entrypoint_resources:
        flags += ["--entrypoint-resources", json.dumps(dict(spec.entrypoint_resources), separators=(",", ":"))]
    return flags


def submitter(
    ejob: Mapping[str, Any], spec: JobSpec, attempt: int, target: ClusterSpec, working_dir: str
) -> dict[str, Any]:
    """The attempt's submitter, ``<job>-<attempt>-submit``, for the Cluster ``target``."""
    env: list[dict[str, Any]] = [
        {"name": "EMBER_ADDRESS", "value": f"ember://{target.service_host}:{target.ports['client']}"},
        {"name": "EMBER_TOKEN", "valueFrom": {"secretKeyRef": {"name": target.token_secret, "key": children.TOKEN_KEY}}},
        {"name": "EMBER_SUBMISSION_ID", "value": spec.submission_id(attempt)},
        {"name": "EMBER_ENTRYPOINT", "value": spec.entrypoint},
        {"name": "EMBER_RUNTIME_ENV_JSON", "value": runtime_env_json(spec, working_dir) or "{}"},
        {"name": "EMBER_METADATA_JSON", "value": json.dumps(dict(spec.metadata), sort_keys=True)},
        # Flags with numbers and JSON of numbers and resource names only: split by the shell.
        {"name": "EMBER_ENTRYPOINT_FLAGS", "value": " ".join(entrypoint_flags(spec))},
    ]
    mounts: list[dict[str, Any]] = [{"name": "tmp", "mountPath": pod_template.TMP_DIR}]
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {}}]
    if target.tls_secret:
        env += [
            {"name": "EMBER_TLS_CERT", "value": f"{pod_template.TLS_DIR}/{children.TLS_CERT_KEY}"},
            {"name": "EMBER_TLS_KEY", "value": f"{pod_template.TLS_DIR}/{children.TLS_KEY_KEY}"},
            {"name": "EMBER_TLS_CA", "value": f"{pod_template.TLS_DIR}/{children.TLS_CA_KEY}"},
            {"name": "EMBER_TLS_SERVER_NAME", "value": target.service_host},
        ]
        mounts.append({"name": "tls", "mountPath": pod_template.TLS_DIR, "readOnly": True})
        volumes.append({"name": "tls", "secret": {"secretName": target.tls_secret, "defaultMode": 0o440}})
    pod_labels = {
        **labels(spec, attempt),
        # One of the cluster's pods for its NetworkPolicy; neither head nor worker for its reconcile.
        children.CLUSTER_LABEL: target.name,
        children.NODE_TYPE_LABEL: "submitter",
    }
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "enableServiceLinks": False,
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True, "runAsUser": pod_template.USER_ID, "runAsGroup": pod_template.USER_ID,
            "fsGroup": pod_template.USER_ID, "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [{
            "name": "submit",
            "image": target.raw["image"],
            "imagePullPolicy": target.raw["imagePullPolicy"],
            "command": ["/bin/sh", "-c", SUBMITTER_SCRIPT],
            "env": env,
            "resources": copy.deepcopy(SUBMITTER_RESOURCES),
            "securityContext": {
                "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                "readOnlyRootFilesystem": True, "runAsNonRoot": True,
            },
            "volumeMounts": mounts,
        }],
        "volumes": volumes,
    }
    if target.raw.get("imagePullSecrets"):
        pod_spec["imagePullSecrets"] = [dict(s) for s in target.raw["imagePullSecrets"]]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": spec.submitter_name(attempt),
            "namespace": spec.namespace,
            "labels": labels(spec, attempt),
            "ownerReferences": [owner_reference(ejob)],
        },
        "spec": {
            "backoffLimit": SUBMITTER_BACKOFF,
            "template": {"metadata": {"labels": pod_labels}, "spec": pod_spec},
        },
    }


def submitter_failure(job: Mapping[str, Any]) -> str:
    """Why a submitter Job failed for good ("" while it has not): its Failed condition."""
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Failed" and condition.get("status") == "True":
            return f"{condition.get('reason', 'Failed')}: {condition.get('message', '')}".rstrip(": ")
    return ""
