"""An ``EmberJob``'s spec as the operator reads it: CRD defaults applied, runtimeEnv in Ray's words.

An EmberJob (``kubectl get ej``) is a program to run on an ember cluster, with KubeRay's RayJob
as the model: its own cluster made from ``clusterSpec`` (a Cluster owned by the job, deleted
after it when ``shutdownAfterJobFinishes``), or an existing one named by ``clusterSelector``.
Its ``runtimeEnv`` is written in the resource's camelCase and becomes the job's runtime_env in
Ray's snake_case (checked by ``ember.runtime.wire.runtime_env``, as every door checks it); a
``workingDir`` is a URL of a zip, or a ConfigMap whose keys are the files (or whose one ``.zip``
key is the package), which the operator uploads to the head.

Each attempt of the job (a retry after a failure, ``backoffLimit``; a resume after a suspend)
has its own submission id and, with ``clusterSpec``, its own Cluster: ``<job>-<attempt>``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes.utils.quantity import parse_quantity

from ember.runtime.wire import runtime_env as env_spec

GROUP = "ember.dev"
VERSION = "v1alpha1"
PLURAL = "emberjobs"
KIND = "EmberJob"
JOB_LABEL = "ember.dev/job"
SUBMITTER = "SubmitterJob"
OPERATOR = "Operator"
DEFAULTS: Mapping[str, Any] = {
    "shutdownAfterJobFinishes": False,
    "ttlSecondsAfterFinished": 0,
    "backoffLimit": 0,
    "suspend": False,
    "submissionMode": SUBMITTER,
}
# runtimeEnv's fields and the runtime_env fields they become.
RUNTIME_ENV_FIELDS = {
    "envVars": "env_vars", "pip": "pip", "uv": "uv", "pyModules": "py_modules", "excludes": "excludes",
}
CONFIG_FIELDS = {"setupTimeoutSeconds": "setup_timeout_seconds", "eagerInstall": "eager_install"}


class JobSpecError(ValueError):
    """A spec the operator cannot act on (the CRD refuses most of these before they arrive)."""


def with_defaults(spec: Mapping[str, Any] | None) -> dict[str, Any]:
    """A copy of ``spec`` with the CRD's defaults where the API server would put them."""
    out: dict[str, Any] = copy.deepcopy(dict(spec or {}))
    for key, value in DEFAULTS.items():
        out.setdefault(key, value)
    return out


@dataclass(frozen=True)
class JobSpec:
    name: str
    namespace: str
    uid: str
    entrypoint: str
    runtime_env: Mapping[str, Any]  # in Ray's words; the working_dir is a URL or absent
    working_dir_config_map: str  # a ConfigMap to upload as the working_dir ("" for none)
    cluster_spec: Mapping[str, Any] | None
    cluster_selector: str  # the existing Cluster's name ("" with clusterSpec)
    shutdown_after_finish: bool
    ttl_seconds: int
    deadline_seconds: int | None
    backoff_limit: int
    suspend: bool
    submission_mode: str
    entrypoint_num_cpus: float = 0.0
    entrypoint_num_gpus: float = 0.0
    entrypoint_memory: int = 0
    entrypoint_resources: Mapping[str, float] = field(default_factory=dict)
    metadata: Mapping[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.namespace}/{self.name}"

    def cluster_name(self, attempt: int) -> str:
        """The Cluster an attempt runs on: the selected one, or ``<job>-<attempt>``."""
        return self.cluster_selector or f"{self.name}-{attempt}"

    def submission_id(self, attempt: int) -> str:
        """The attempt's name on the head: with the job's uid, so that a job deleted and made
        again under its name is never taken for the old one on a cluster that outlived it."""
        return f"{self.name}-{self.uid[:8]}-{attempt}" if self.uid else f"{self.name}-{attempt}"

    def submitter_name(self, attempt: int) -> str:
        return f"{self.name}-{attempt}-submit"

    @property
    def owns_cluster(self) -> bool:
        return self.cluster_spec is not None


def parse(ejob: Mapping[str, Any]) -> JobSpec:
    metadata = ejob.get("metadata") or {}
    name = str(metadata.get("name") or "")
    if not name:
        raise JobSpecError("metadata.name: an EmberJob needs a name")
    raw = with_defaults(ejob.get("spec"))
    entrypoint = str(raw.get("entrypoint") or "")
    if not entrypoint.strip():
        raise JobSpecError("spec.entrypoint: the job needs a command to run")
    has_spec, has_selector = "clusterSpec" in raw, "clusterSelector" in raw
    if has_spec == has_selector:
        raise JobSpecError("spec: give exactly one of clusterSpec and clusterSelector")
    runtime_env, config_map = runtime_env_of(raw.get("runtimeEnv") or {})
    memory = raw.get("entrypointMemory")
    try:
        memory_bytes = int(parse_quantity(memory)) if memory not in (None, "") else 0
    except ValueError as error:
        raise JobSpecError(f"spec.entrypointMemory: {error}") from None
    deadline = raw.get("activeDeadlineSeconds")
    return JobSpec(
        name=name,
        namespace=str(metadata.get("namespace") or "default"),
        uid=str(metadata.get("uid") or ""),
        entrypoint=entrypoint,
        runtime_env=runtime_env,
        working_dir_config_map=config_map,
        cluster_spec=copy.deepcopy(raw["clusterSpec"]) if has_spec else None,
        cluster_selector=str((raw.get("clusterSelector") or {}).get("name") or "") if has_selector else "",
        shutdown_after_finish=bool(raw["shutdownAfterJobFinishes"]),
        ttl_seconds=int(raw["ttlSecondsAfterFinished"]),
        deadline_seconds=int(deadline) if deadline is not None else None,
        backoff_limit=int(raw["backoffLimit"]),
        suspend=bool(raw["suspend"]),
        submission_mode=str(raw["submissionMode"]),
        entrypoint_num_cpus=float(raw.get("entrypointNumCpus") or 0),
        entrypoint_num_gpus=float(raw.get("entrypointNumGpus") or 0),
        entrypoint_memory=memory_bytes,
        entrypoint_resources={str(k): float(v) for k, v in (raw.get("entrypointResources") or {}).items()},
        metadata={str(k): str(v) for k, v in (raw.get("metadata") or {}).items()},
    )


def runtime_env_of(given: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """``spec.runtimeEnv`` as a runtime_env in Ray's words, and the ConfigMap to upload as its
    working_dir ("" when it has none); ``JobSpecError`` names the field the runtime_env check
    refuses."""
    env: dict[str, Any] = {}
    for key, target in RUNTIME_ENV_FIELDS.items():
        if key in given:
            env[target] = copy.deepcopy(given[key])
    if given.get("config"):
        env["config"] = {CONFIG_FIELDS.get(k, k): v for k, v in given["config"].items()}
    working_dir = given.get("workingDir") or {}
    config_map = ""
    if working_dir.get("url"):
        env["working_dir"] = str(working_dir["url"])
    elif working_dir.get("configMap"):
        config_map = str(working_dir["configMap"])
    try:
        checked = env_spec.validate(env, "spec.runtimeEnv")
    except env_spec.RuntimeEnvError as error:
        raise JobSpecError(str(error)) from None
    return checked, config_map
