"""The life of a ``Cluster``, as kopf sees it: one level-based reconcile, whatever woke it.

A Cluster is created, the operator restarts and resumes it, the user edits it, or nothing
happens for a while: each time the same ``reconcile`` runs. It looks at what exists (the token
Secret, the Services and Pods labelled ``ember.dev/cluster=<name>``, and the head's drain
progress for worker pods on their way out), asks the pure ``render.plan`` what should change,
and applies that in a fixed order: create, drain, delete, patch the spec, write the status,
tell the story in events. Nothing is chained through status phases: a missed event, a pod
deleted behind the operator's back, or a restart mid-roll are all just the next pass.

Worker pods are drained through the head before they are deleted. When the head cannot be
asked (its pod is down, or it does not answer) a pod on its way out is deleted anyway after
``head_grace_seconds``, with a Warning event saying so: a dead head must not pin a cluster.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import json
import logging
import secrets
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, cast

import kopf

from ember.operator import operator_metrics as metrics
from ember.operator import render
from ember.operator.head_client import HeadClient, HeadUnreachable
from ember.operator.kube_objects import (
    GROUP,
    PLURAL,
    VERSION,
    KubeError,
    KubeObjects,
    connection_info,
)

log = logging.getLogger("ember.operator")

registry = kopf.OperatorRegistry()

RECONCILE_INTERVAL = 10.0  # seconds between timer passes, whether anything happened or not
RETRY_DELAY = 10.0  # after an API error
HEAD_GRACE_SECONDS = 60.0  # how long a pod waits for an unreachable head before it goes undrained
DEFAULT_CLIENT_PORT = 10001


@kopf.on.login(registry=registry)
def login(memo: kopf.Memo, **_: Any) -> kopf.ConnectionInfo:
    """kopf talks to the API server the reconcile's client talks to."""
    kube: KubeObjects = memo.kube
    return connection_info(kube.configuration)


@kopf.on.create(GROUP, VERSION, PLURAL, registry=registry)
async def created(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    await reconcile(body, memo, "create")


@kopf.on.resume(GROUP, VERSION, PLURAL, registry=registry)
async def resumed(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    await reconcile(body, memo, "resume")


@kopf.on.update(GROUP, VERSION, PLURAL, registry=registry)
async def updated(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    await reconcile(body, memo, "update")


@kopf.timer(GROUP, VERSION, PLURAL, interval=RECONCILE_INTERVAL, registry=registry)
async def periodically(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    await reconcile(body, memo, "timer")


@kopf.on.delete(GROUP, VERSION, PLURAL, optional=True, registry=registry)
def deleted(namespace: str | None, name: str, **_: Any) -> None:
    """Children go with their owner (garbage collection); only the metrics are the operator's
    to forget. ``optional``: no finalizer holds the Cluster for this."""
    metrics.forget(namespace or "", name)
    log.info("cluster %s/%s deleted: its pods and services go with it", namespace, name)


async def reconcile(body: kopf.Body, memo: kopf.Memo, trigger: str) -> None:
    """One pass, never two at once for one Cluster (the timer and an update may coincide)."""
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    if body["metadata"].get("deletionTimestamp"):
        return  # going away: recreating children now would only fight the garbage collector
    if "reconcile_lock" not in memo:  # memo is per Cluster (a shallow copy of the operator's)
        memo["reconcile_lock"] = asyncio.Lock()
    async with memo["reconcile_lock"]:
        started = time.monotonic()
        try:
            await Reconcile(plain(body), memo).run()
        except KubeError as error:
            metrics.RECONCILES.labels(namespace, name, trigger, "error").inc()
            metrics.ERRORS.labels(namespace, name).inc()
            raise kopf.TemporaryError(f"cluster {namespace}/{name}: {error}", delay=RETRY_DELAY) from None
        except Exception:
            metrics.RECONCILES.labels(namespace, name, trigger, "error").inc()
            metrics.ERRORS.labels(namespace, name).inc()
            raise
        else:
            metrics.RECONCILES.labels(namespace, name, trigger, "ok").inc()
        finally:
            metrics.DURATION.labels(namespace, name).observe(time.monotonic() - started)


class Reconcile:
    """Observe, plan, apply: one pass over one Cluster."""

    def __init__(self, cluster: dict[str, Any], memo: kopf.Memo) -> None:
        self.cluster = cluster
        self.memo = memo
        self.kube: KubeObjects = memo.kube
        meta = cluster["metadata"]
        self.namespace: str = meta["namespace"]
        self.name: str = meta["name"]
        self.id = f"{self.namespace}/{self.name}"
        self.spec: Mapping[str, Any] = cluster.get("spec") or {}
        self.events: list[tuple[str, str, str]] = []

    async def run(self) -> None:
        observed = await self.observe()
        plan = render.plan(self.cluster, observed)
        if plan.drains:  # some workers are on their way out: how far did their drains get?
            drained = await self.drained(observed, plan.drains)
            if drained:
                observed = dataclasses.replace(observed, drained=drained)
                plan = render.plan(self.cluster, observed)
        await self.apply(plan, observed)

    # ------------------------------------------------------------------ observe

    async def observe(self) -> render.Observed:
        secret = await self.kube.read_secret(self.namespace, self.secret_name)
        return render.Observed(
            secret=secret,
            services=await self.kube.list_children(self.namespace, self.name, "Service"),
            pods=await self.kube.list_children(self.namespace, self.name, "Pod"),
            claims=await self.kube.list_children(self.namespace, self.name, "PersistentVolumeClaim"),
            drained=frozenset(),
            fresh_token=secrets.token_urlsafe(32),
            now=datetime.now(UTC),
        )

    @property
    def secret_name(self) -> str:
        return (self.spec.get("auth") or {}).get("secretName") or f"{self.name}-token"

    async def drained(self, observed: render.Observed, pods: tuple[str, ...]) -> frozenset[str]:
        """The pods among ``pods`` that may be deleted now: drained (or gone) as the head says,
        or waiting longer than the grace period for a head that does not answer."""
        waiting: dict[str, float] = self.memo.setdefault("head_unreachable_since", {})
        try:
            async with self.head(observed) as head:
                state = await head.drain_state(frozenset(pods))
        except HeadUnreachable as error:
            return self.past_grace(pods, waiting, str(error))
        for pod in pods:
            waiting.pop(pod, None)
        return state.drained

    def past_grace(self, pods: tuple[str, ...], waiting: dict[str, float], why: str) -> frozenset[str]:
        now = time.monotonic()
        grace = float(self.memo.get("head_grace_seconds", HEAD_GRACE_SECONDS))
        given_up = set()
        for pod in pods:
            since = waiting.setdefault(pod, now)
            if now - since >= grace:
                given_up.add(pod)
                waiting.pop(pod)
                metrics.ACTIONS.labels(self.namespace, self.name, "deleted_without_drain").inc()
                self.events.append((
                    "Warning", "DeletedWithoutDrain",
                    f"pod {pod} is deleted without a drain: {why} (waited {now - since:.0f}s)",
                ))
        if not given_up:
            log.info("cluster %s: waiting for the head to drain %s: %s", self.id, ", ".join(pods), why)
        return frozenset(given_up)

    def head(self, observed: render.Observed) -> HeadClient:
        """A client of this cluster's head at its pod's IP (the operator runs in the cluster,
        and a pod IP needs no DNS), with the token of the cluster's Secret."""
        head_pods = [
            p for p in observed.pods
            if (p.get("metadata", {}).get("labels") or {}).get("ember.dev/node-type") == "head"
            and not p.get("metadata", {}).get("deletionTimestamp")
        ]
        ip = (head_pods[0].get("status") or {}).get("podIP") if head_pods else None
        if not ip:
            raise HeadUnreachable(f"cluster {self.id} has no running head pod")
        port = ((self.spec.get("head") or {}).get("ports") or {}).get("client", DEFAULT_CLIENT_PORT)
        return HeadClient(self.id, f"{ip}:{port}", token_of(observed.secret))

    # ------------------------------------------------------------------ apply

    async def apply(self, plan: render.Plan, observed: render.Observed) -> None:
        for obj in plan.creates:
            if await self.kube.create(self.namespace, obj):
                metrics.ACTIONS.labels(self.namespace, self.name, "created").inc()
                log.info("cluster %s: created %s %s", self.id, obj["kind"], obj["metadata"]["name"])
        if plan.drains:
            await self.start_drains(plan.drains, observed)
        for kind, name in plan.deletes:
            if await self.kube.delete(self.namespace, kind, name):
                metrics.ACTIONS.labels(self.namespace, self.name, "deleted").inc()
                log.info("cluster %s: deleted %s %s", self.id, kind, name)
        if plan.spec_patch:
            await self.kube.patch_cluster(self.namespace, self.name, {"spec": dict(plan.spec_patch)})
        status = plain(plan.status)
        if not contains(self.cluster.get("status") or {}, status):
            await self.kube.patch_cluster_status(self.namespace, self.name, status)
        for kind, reason, message in (*plan.events, *self.events):
            kopf.event(kopf.Body(cast(kopf.RawBody, self.cluster)), type=kind, reason=reason, message=message)

    async def start_drains(self, pods: tuple[str, ...], observed: render.Observed) -> None:
        """Ask the head to drain each pod (it answers at once; a later pass sees it DRAINED).
        An unreachable head is no error here: ``drained`` counts the grace period."""
        try:
            async with self.head(observed) as head:
                for pod in pods:
                    reason = f"the operator removes pod {pod} of cluster {self.id}"
                    if await head.drain(pod, reason):
                        metrics.ACTIONS.labels(self.namespace, self.name, "drain_started").inc()
                        self.events.append((
                            "Normal", "DrainStarted",
                            f"draining pod {pod} before deleting it: nothing new is placed "
                            f"there, running tasks finish, objects only it holds are copied away",
                        ))
        except HeadUnreachable as error:
            log.info("cluster %s: cannot start drains of %s yet: %s", self.id, ", ".join(pods), error)


def token_of(secret: Mapping[str, Any] | None) -> str:
    """The ``token`` key of the cluster's Secret ("" when absent or unreadable)."""
    data = (secret or {}).get("data") or {}
    try:
        return base64.b64decode(data.get("token", "")).decode().strip()
    except (binascii.Error, UnicodeDecodeError):
        return ""


def contains(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    """Whether the status already says all ``wanted`` says: a steady cluster is not re-patched
    every timer pass."""
    return all(current.get(key) == value for key, value in wanted.items())


def plain(body: Mapping[str, Any]) -> dict[str, Any]:
    """The Cluster as plain JSON data, detached from kopf's live views of it."""
    result: dict[str, Any] = json.loads(json.dumps(body, default=dict))
    return result
