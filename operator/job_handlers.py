"""The life of an ``EmberJob``, as kopf sees it: one level-based reconcile, whatever woke it.

Created, resumed after an operator restart, edited (``suspend`` flipped by a user or a queue
such as Kueue), or every ``RECONCILE_INTERVAL``: the same pass runs. It reads the attempt's
Cluster and submitter, the leftovers of earlier attempts, and — once the Cluster runs — what the
head says of the attempt's submission; ``job_render.plan`` decides; the pass applies it: create,
delete, submit or stop through the head, write the status, tell the story in events.

The operator talks to the head as ``ember job`` does, over the cluster's client port with its
token (and TLS material), so a job's status comes from where the job runs in both submission
modes; in ``SubmitterJob`` mode a ``batch/v1`` Job does the submitting, in ``Operator`` mode the
operator itself. A ConfigMap working_dir is read through the API and uploaded to the head by the
operator in both.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, cast

import kopf

from ember.operator import cluster_spec, job_children, job_render
from ember.operator.handlers import plain, registry
from ember.operator.head_client import HeadClient, HeadRefused, HeadUnreachable, head_of, head_tls
from ember.operator.job_spec import GROUP, OPERATOR, PLURAL, VERSION, JobSpec, JobSpecError, parse
from ember.operator.kube_objects import KubeError, KubeObjects, KubeRefused
from ember.runtime.wire import package_format
from ember.runtime.wire.protocol import ember_pb2 as pb

log = logging.getLogger("ember.operator.jobs")

RECONCILE_INTERVAL = 2.0  # seconds between timer passes: how soon a job's end is seen
RETRY_DELAY = 5.0


@kopf.on.create(GROUP, VERSION, PLURAL, registry=registry)
async def job_created(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    await reconcile(body, memo)


@kopf.on.resume(GROUP, VERSION, PLURAL, registry=registry)
async def job_resumed(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    await reconcile(body, memo)


@kopf.on.update(GROUP, VERSION, PLURAL, registry=registry)
async def job_updated(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    await reconcile(body, memo)


@kopf.timer(GROUP, VERSION, PLURAL, interval=RECONCILE_INTERVAL, registry=registry)
async def job_periodically(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    await reconcile(body, memo)


@kopf.on.delete(GROUP, VERSION, PLURAL, optional=True, registry=registry)
async def job_deleted(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Its own Cluster and submitter go with it (garbage collection); a job running on a
    selected Cluster, which stays, is stopped there."""
    ejob = plain(body)
    memo.get("jobs", {}).pop((ejob["metadata"].get("namespace"), ejob["metadata"].get("name")), None)
    try:
        spec = parse(ejob)
    except JobSpecError:
        return
    status = ejob.get("status") or {}
    if spec.owns_cluster or status.get("jobDeploymentStatus") in ("Complete", "Failed", "Suspended", ""):
        return
    attempt = int(status.get("attempt") or 1)
    try:
        async with await _head(memo.kube, spec, attempt) as head:
            await head.stop_job(spec.submission_id(attempt))
            log.info("EmberJob %s deleted: stopped its job on Cluster %s", spec.id, spec.cluster_selector)
    except (HeadUnreachable, HeadRefused, KubeError) as error:
        log.warning("EmberJob %s deleted: could not stop its job on Cluster %s: %s", spec.id,
                    spec.cluster_selector, error)


async def reconcile(body: kopf.Body, memo: kopf.Memo) -> None:
    ejob = plain(body)
    meta = ejob["metadata"]
    if meta.get("deletionTimestamp"):
        return
    jobs: dict[tuple[str, str], asyncio.Lock] = memo.setdefault("jobs", {})
    lock = jobs.setdefault((meta["namespace"], meta["name"]), asyncio.Lock())
    async with lock:
        try:
            await JobPass(ejob, memo.kube).run()
        except KubeError as error:
            raise kopf.TemporaryError(f"EmberJob {meta['namespace']}/{meta['name']}: {error}", delay=RETRY_DELAY) from None


class JobPass:
    """Observe, plan, apply: one pass over one EmberJob."""

    def __init__(self, ejob: dict[str, Any], kube: KubeObjects) -> None:
        self.ejob = ejob
        self.kube = kube
        self.namespace = ejob["metadata"]["namespace"]
        self.name = ejob["metadata"]["name"]
        self.id = f"{self.namespace}/{self.name}"

    async def run(self) -> None:
        try:
            spec = parse(self.ejob)
        except JobSpecError as error:
            await self._refuse(str(error))
            return
        status = self.ejob.get("status") or {}
        attempt = int(status.get("attempt") or 1)
        deployment = status.get("jobDeploymentStatus", "")
        cluster = await self.kube.read_cluster(self.namespace, spec.cluster_name(attempt))
        submitter = None
        if spec.submission_mode != OPERATOR:
            submitter = await self.kube.read_batch_job(self.namespace, spec.submitter_name(attempt))
        stale = await self._stale(spec, attempt)
        now = datetime.now(UTC)
        observed = job_render.JobObserved(
            cluster=cluster, submitter=submitter, head_job=None, head_asked=False,
            head_error="not asked", now=now, stale=stale,
        )
        ready = cluster is not None and (cluster.get("status") or {}).get("phase") in job_render.READY_PHASES
        if not ready or deployment in ("Complete", "Failed") or (deployment == "Suspended" and spec.suspend):
            await self.apply(spec, job_render.plan(self.ejob, observed), None, observed)
            return
        try:
            async with await _head(self.kube, spec, attempt, cluster) as head:
                observed = await self._ask_head(head, spec, attempt, observed)
                plan = job_render.plan(self.ejob, observed)
                if plan.submit:
                    try:
                        await head.submit_job(_submission(spec, attempt, observed.working_dir))
                        log.info("EmberJob %s: submitted %s to Cluster %s", self.id,
                                 spec.submission_id(attempt), spec.cluster_name(attempt))
                    except HeadRefused as refused:
                        observed = dataclasses.replace(observed, submit_error=str(refused))
                        plan = job_render.plan(self.ejob, observed)
                await self.apply(spec, plan, head, observed)
        except HeadUnreachable as error:
            observed = job_render.JobObserved(
                cluster=cluster, submitter=submitter, head_job=None, head_asked=False,
                head_error=str(error), now=now, stale=stale,
            )
            await self.apply(spec, job_render.plan(self.ejob, observed), None, observed)

    async def _ask_head(
        self, head: HeadClient, spec: JobSpec, attempt: int, observed: job_render.JobObserved
    ) -> job_render.JobObserved:
        info = await head.get_job(spec.submission_id(attempt))
        if info is not None:
            status = pb.JobStatus.Name(info.status).removeprefix("JOB_")
            exit_code = info.exit_code if info.HasField("exit_code") else None
            return dataclasses.replace(
                observed, head_asked=True, head_error="",
                head_job=job_render.HeadJob(status=status, message=info.message, exit_code=exit_code),
            )
        observed = dataclasses.replace(observed, head_asked=True, head_error="")
        if not spec.working_dir_config_map or spec.suspend:
            return observed
        config_map = await self.kube.read_config_map(self.namespace, spec.working_dir_config_map)
        if config_map is None:
            return dataclasses.replace(observed, waiting_for=(
                f"ConfigMap {spec.working_dir_config_map} (spec.runtimeEnv.workingDir.configMap) to exist"))
        try:
            data = config_map_package(config_map)
        except ValueError as error:
            return dataclasses.replace(observed, submit_error=str(error))
        try:
            uri = await head.upload(data)
        except HeadRefused as refused:
            return dataclasses.replace(observed, submit_error=f"the working_dir from ConfigMap "
                                       f"{spec.working_dir_config_map}: {refused}")
        return dataclasses.replace(observed, working_dir=uri)

    async def _stale(self, spec: JobSpec, attempt: int) -> tuple[tuple[str, str], ...]:
        """Clusters and submitters of earlier attempts the job made and that are still there."""
        uid = self.ejob["metadata"].get("uid")
        stale = []
        kinds = ["Cluster"] if spec.owns_cluster else []
        if spec.submission_mode != OPERATOR:
            kinds.append("Job")
        for kind in kinds:
            for child in await self.kube.list_job_children(self.namespace, self.name, kind):
                meta = child.get("metadata") or {}
                ours = any(ref.get("uid") == uid for ref in meta.get("ownerReferences") or [])
                current = (meta.get("labels") or {}).get("ember.dev/attempt") == str(attempt)
                if ours and not current and not meta.get("deletionTimestamp"):
                    stale.append((kind, str(meta.get("name"))))
        return tuple(stale)

    async def apply(
        self, spec: JobSpec, plan: job_render.JobPlan, head: HeadClient | None,
        observed: job_render.JobObserved,
    ) -> None:
        for obj in plan.creates:
            try:
                if await self.kube.create(self.namespace, obj):
                    log.info("EmberJob %s: created %s %s", self.id, obj["kind"], obj["metadata"]["name"])
            except KubeRefused as refused:
                # An admission policy (the chart's, for a template it forbids) or validation:
                # the attempt fails saying so, instead of asking again every pass.
                log.warning("EmberJob %s: %s", self.id, refused)
                observed = dataclasses.replace(observed, create_error=str(refused))
                plan = job_render.plan(self.ejob, observed)
                break
        if plan.stop and head is not None:
            try:
                await head.stop_job(plan.status.get("submissionId") or "")
            except (HeadRefused, HeadUnreachable) as error:
                log.warning("EmberJob %s: could not stop its job: %s", self.id, error)
        for kind, name in plan.deletes:
            if await self.kube.delete(self.namespace, kind, name):
                log.info("EmberJob %s: deleted %s %s", self.id, kind, name)
        status = plain(plan.status)
        previous = self.ejob.get("status") or {}
        if any(previous.get(key) != value for key, value in status.items()):
            await self.kube.patch_job_status(self.namespace, self.name, status)
        body = kopf.Body(cast(kopf.RawBody, self.ejob))
        for kind, reason, message in plan.events:
            kopf.event(body, type=kind, reason=reason, message=message)

    async def _refuse(self, why: str) -> None:
        status = self.ejob.get("status") or {}
        if status.get("message") == why:
            return
        await self.kube.patch_job_status(self.namespace, self.name, {
            "jobDeploymentStatus": "Failed", "reason": "InvalidSpec", "message": why,
        })
        kopf.event(kopf.Body(cast(kopf.RawBody, self.ejob)), type="Warning", reason="InvalidSpec", message=why)


async def _head(
    kube: KubeObjects, spec: JobSpec, attempt: int, cluster: Mapping[str, Any] | None = None
) -> HeadClient:
    """A client of the head of the attempt's Cluster (its token, its TLS)."""
    name = spec.cluster_name(attempt)
    if cluster is None:
        cluster = await kube.read_cluster(spec.namespace, name)
        if cluster is None:
            raise HeadUnreachable(f"Cluster {spec.namespace}/{name} does not exist")
    target = cluster_spec.parse(cluster)
    secret = await kube.read_secret(spec.namespace, target.token_secret)
    tls = None
    if target.tls_secret:
        tls = head_tls(target, await kube.read_secret(spec.namespace, target.tls_secret))
    pods = await kube.list_children(spec.namespace, name, "Pod")
    return head_of(f"{spec.namespace}/{name}", cluster.get("spec") or {}, pods, secret, tls)


def _submission(spec: JobSpec, attempt: int, working_dir: str) -> pb.JobSubmission:
    return pb.JobSubmission(
        submission_id=spec.submission_id(attempt),
        entrypoint=spec.entrypoint,
        runtime_env_json=job_children.runtime_env_json(spec, working_dir),
        metadata=dict(spec.metadata),
        entrypoint_num_cpus=spec.entrypoint_num_cpus,
        entrypoint_num_gpus=spec.entrypoint_num_gpus,
        entrypoint_memory=float(spec.entrypoint_memory),
        entrypoint_resources=dict(spec.entrypoint_resources),
    )


def config_map_package(config_map: Mapping[str, Any]) -> bytes:
    """A ConfigMap as a working_dir package: its one ``.zip`` key as it is, else its keys as
    the files of the directory (``binaryData`` too)."""
    data = dict(config_map.get("data") or {})
    binary: dict[str, bytes] = {}
    for key, value in (config_map.get("binaryData") or {}).items():
        try:
            binary[key] = base64.b64decode(value, validate=True)
        except binascii.Error:
            raise ValueError(f"ConfigMap {config_map.get('metadata', {}).get('name')}: binaryData "
                             f"{key} is not base64") from None
    zips = [key for key in binary if key.endswith(".zip")]
    if len(zips) == 1 and not data and len(binary) == 1:
        return binary[zips[0]]
    files: dict[str, str | bytes] = {**data, **binary}
    if not files:
        raise ValueError(f"ConfigMap {config_map.get('metadata', {}).get('name')} holds no files")
    return package_format.pack_mapping(files)
