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

A deleted Cluster is the garbage collector's: its children carry owner references. kopf holds
it only long enough to stop its timer and autoscaling daemon (its finalizer
``ember.dev/operator``, which kopf adds because of them), so while no operator runs, a deleted
Cluster stays Terminating; docs/kubernetes.md (Uninstalling) says what to do then.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import json
import logging
import secrets
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, cast

import kopf

from ember.operator import cluster_spec, render, scaling_loop
from ember.operator import operator_metrics as metrics
from ember.operator.children import CLUSTER_LABEL, MANAGED_BY, MANAGED_BY_LABEL
from ember.operator.cluster_policy import Policy
from ember.operator.head_client import HeadClient, HeadUnreachable, head_of, head_tls
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


@kopf.on.event(
    "", "v1", "pods", labels={CLUSTER_LABEL: kopf.PRESENT, MANAGED_BY_LABEL: MANAGED_BY},
    registry=registry,
)
async def pod_changed(
    namespace: str | None, labels: Mapping[str, str], memo: kopf.Memo, **_: Any
) -> None:
    """A pod of a cluster started, became Ready, failed or went: its Cluster's next pass runs
    now rather than at the next timer tick. Bursts collapse: while a pass runs, any number of
    pod events make one more pass after it."""
    name = labels[CLUSTER_LABEL]
    state = cluster_state(memo, namespace or "", name)
    if state.reconcile_lock.locked():
        state["again"] = True
        return
    cluster = await memo.kube.read_cluster(namespace or "", name)
    if cluster is not None:
        await reconcile(kopf.Body(cast(kopf.RawBody, cluster)), memo, "pod")


@kopf.daemon(GROUP, VERSION, PLURAL, cancellation_timeout=5.0, registry=registry)
async def autoscale(
    namespace: str | None, name: str, spec: kopf.Spec, body: kopf.Body, memo: kopf.Memo,
    stopped: kopf.DaemonStopped, **_: Any,
) -> None:
    """While autoscaling is on, size the worker groups to the head's demand every
    ``intervalSeconds`` (a round reads the Cluster afresh and does nothing while autoscaling is
    off or the cluster suspended); kopf stops this when the Cluster is deleted. One silent round
    (head restarting, API hiccup) is logged and the next one tries."""
    where = f"{namespace}/{name}"
    while not stopped:
        interval = float((spec.get("autoscaling") or {}).get("intervalSeconds") or 1.0)
        if not (spec.get("autoscaling") or {}).get("enabled") or spec.get("suspend"):
            await asyncio.sleep(interval)  # ``spec`` is live: kopf updates it in place
            continue
        try:
            decision = await scaling_loop.scale_once(memo.kube, namespace or "", name)
        except HeadUnreachable as error:
            log.debug("cluster %s: no demand this round: %s", where, error)
        except KubeError as error:
            log.warning("cluster %s: autoscaling round not applied: %s", where, error)
        else:
            if decision is not None and decision.describe():
                metrics.ACTIONS.labels(namespace or "", name, "scaled").inc()
                kopf.event(body, type="Normal", reason="Scaled", message=decision.describe())
                if decision.unplaceable:
                    kopf.event(body, type="Warning", reason="Unplaceable", message=(
                        f"no worker group can ever hold {len(decision.unplaceable)} waiting "
                        f"bundle(s), e.g. {dict(decision.unplaceable[0])}"
                    ))
        # Not ``stopped.wait(interval)``: cancelled as the operator exits, its inner wait_for
        # can raise TimeoutError (Python 3.11) and kopf reports the daemon failed.
        await asyncio.sleep(interval)


@kopf.on.delete(GROUP, VERSION, PLURAL, optional=True, registry=registry)
def deleted(namespace: str | None, name: str, memo: kopf.Memo, **_: Any) -> None:
    """Children go with their owner (garbage collection); only the metrics are the operator's
    to forget. ``optional``: this handler asks for no finalizer of its own. The Cluster has
    kopf's ``ember.dev/operator`` anyway, for the timer and the autoscaling daemon above (kopf
    stops them before it lets the Cluster go): with no operator running, a deleted Cluster
    waits until one runs again or someone removes the finalizer (docs/kubernetes.md,
    Uninstalling)."""
    metrics.forget(namespace or "", name)
    memo.get("clusters", {}).pop((namespace or "", name), None)
    log.info("cluster %s/%s deleted: its pods and services go with it", namespace, name)


def cluster_state(memo: kopf.Memo, namespace: str, name: str) -> kopf.Memo:
    """What the operator keeps about one Cluster between passes, whichever handler runs: the
    lock that keeps passes one at a time, and since when its head has been silent."""
    clusters: dict[tuple[str, str], kopf.Memo] = memo.setdefault("clusters", {})
    state = clusters.get((namespace, name))
    if state is None:
        state = clusters[(namespace, name)] = kopf.Memo(
            kube=memo.kube,
            head_grace_seconds=memo.get("head_grace_seconds", HEAD_GRACE_SECONDS),
            policy=memo.get("policy") or Policy(),
            reconcile_lock=asyncio.Lock(),
        )
    return state


async def reconcile(body: kopf.Body, memo: kopf.Memo, trigger: str) -> None:
    """One pass, never two at once for one Cluster (the timer and an update may coincide)."""
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    if body["metadata"].get("deletionTimestamp"):
        return  # going away: recreating children now would only fight the garbage collector
    state = cluster_state(memo, namespace, name)
    async with state.reconcile_lock:
        started = time.monotonic()
        try:
            state["again"] = False
            await Reconcile(plain(body), state).run()
            if state.get("again"):  # pods changed during the pass: look once more
                state["again"] = False
                fresh = await state.kube.read_cluster(namespace, name)
                if fresh is not None and not fresh["metadata"].get("deletionTimestamp"):
                    await Reconcile(fresh, state).run()
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
        self.policy: Policy = memo.get("policy") or Policy()

    async def run(self) -> None:
        self._remember_what_was_said()
        observed = await self.observe()
        plan = render.plan(self.cluster, observed, self.policy)
        if plan.drains:  # some workers are on their way out: how far did their drains get?
            drained = await self.drained(observed, plan.drains)
            if drained:
                observed = dataclasses.replace(observed, drained=drained)
                plan = render.plan(self.cluster, observed, self.policy)
        await self.apply(plan, observed)
        self.memo["status_written"] = (self.cluster["metadata"].get("uid"), plan.status)

    def _remember_what_was_said(self) -> None:
        """A pass may start from a body older than the status the last pass wrote (a timer fires
        before the watch brings that write back). The operator is the status's only writer, so
        the status it wrote last is the truth: the pods it said were unschedulable were told in
        an event then, and the failures it counted stay counted."""
        uid, written = self.memo.get("status_written") or ("", None)
        if written is not None and uid == self.cluster["metadata"].get("uid"):
            self.cluster["status"] = copy.deepcopy(written)

    # ------------------------------------------------------------------ observe

    async def observe(self) -> render.Observed:
        secret = await self.kube.read_secret(self.namespace, self.secret_name)
        return render.Observed(
            secret=secret,
            services=await self.kube.list_children(self.namespace, self.name, "Service"),
            pods=await self.kube.list_children(self.namespace, self.name, "Pod"),
            claims=await self.kube.list_children(self.namespace, self.name, "PersistentVolumeClaim"),
            network_policies=await self.kube.list_children(self.namespace, self.name, "NetworkPolicy"),
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
            async with await self.head(observed) as head:
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

    async def head(self, observed: render.Observed) -> HeadClient:
        """A client of the cluster's head; over TLS, with the cluster's TLS Secret read now
        (only a pass that must ask the head reads it)."""
        spec = cluster_spec.parse(self.cluster)
        tls = None
        if spec.tls_secret:
            tls = head_tls(spec, await self.kube.read_secret(self.namespace, spec.tls_secret))
        return head_of(self.id, self.spec, observed.pods, observed.secret, tls)

    # ------------------------------------------------------------------ apply

    async def apply(self, plan: render.Plan, observed: render.Observed) -> None:
        for obj in plan.creates:
            if await self.kube.create(self.namespace, obj):
                metrics.ACTIONS.labels(self.namespace, self.name, "created").inc()
                log.info("cluster %s: created %s %s", self.id, obj["kind"], obj["metadata"]["name"])
        for obj in plan.patches:
            await self.kube.patch(self.namespace, obj)
            metrics.ACTIONS.labels(self.namespace, self.name, "patched").inc()
            log.info("cluster %s: patched %s %s", self.id, obj["kind"], obj["metadata"]["name"])
        if plan.drains:
            await self.start_drains(plan.drains, observed)
        for kind, name in plan.deletes:
            if await self.kube.delete(self.namespace, kind, name):
                metrics.ACTIONS.labels(self.namespace, self.name, "deleted").inc()
                log.info("cluster %s: deleted %s %s", self.id, kind, name)
        if plan.spec_patch:
            # Guarded by the resourceVersion planned from: the patch replaces whole lists, and
            # the autoscaler may have named more workers to delete since; on a conflict the
            # next pass plans again from what is there.
            await self.kube.patch_cluster(self.namespace, self.name, {
                "metadata": {"resourceVersion": self.cluster["metadata"].get("resourceVersion")},
                "spec": dict(plan.spec_patch),
            })
        status = plain(plan.status)
        if not contains(self.cluster.get("status") or {}, status):
            await self.kube.patch_cluster_status(self.namespace, self.name, status)
        for kind, reason, message in (*plan.events, *self.events):
            kopf.event(kopf.Body(cast(kopf.RawBody, self.cluster)), type=kind, reason=reason, message=message)

    async def start_drains(self, pods: tuple[str, ...], observed: render.Observed) -> None:
        """Ask the head to drain each pod (it answers at once; a later pass sees it DRAINED).
        An unreachable head is no error here: ``drained`` counts the grace period."""
        try:
            async with await self.head(observed) as head:
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


def contains(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    """Whether the status already says all ``wanted`` says: a steady cluster is not re-patched
    every timer pass."""
    return all(current.get(key) == value for key, value in wanted.items())


def plain(body: Mapping[str, Any]) -> dict[str, Any]:
    """The Cluster as plain JSON data, detached from kopf's live views of it."""
    result: dict[str, Any] = json.loads(json.dumps(body, default=dict))
    return result
