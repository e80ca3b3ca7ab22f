"""The reconcile of a ``Cluster`` as a pure function: what exists in, what to do out.

The kopf handlers observe (the token Secret, the Services and Pods labelled with the cluster's
name, which workers the head reports drained), call :func:`plan`, and apply the result in
order. Keeping the decision here, free of I/O, is what lets every reconcile rule — scale up and
down, drains, rolls, suspend, failed pods, status — be unit-tested without a cluster, and lets
the handlers stay a thin loop that can run again at any time (level-based: the plan of the
world it produced asks for nothing more).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from ember.operator import (
    children,
    cluster_policy,
    cluster_spec,
    cluster_status,
    pod_state,
    pod_template,
)
from ember.operator.cluster_policy import Policy
from ember.operator.cluster_spec import ClusterSpec


@dataclass(frozen=True)
class Observed:
    """What the handler read from the API (and the head) just before planning."""

    secret: Mapping | None  # the cluster's token Secret as the API returned it (None: absent)
    services: tuple[Mapping, ...]  # Services labelled ember.dev/cluster=<name>
    pods: tuple[Mapping, ...]  # Pods labelled ember.dev/cluster=<name> (incl. terminating ones)
    drained: frozenset[str]  # worker pod names the head reports drained, or that left the head
    fresh_token: str  # a new random token, used only if the Secret must be created
    now: datetime  # for lastTransitionTime / lastScaleTime
    # PersistentVolumeClaims labelled ember.dev/cluster=<name>; the head's state volume is
    # created only when absent from here (a handler that does not list claims leaves this
    # empty and must treat 409 AlreadyExists on create as done).
    claims: tuple[Mapping, ...] = field(default=())
    # NetworkPolicies labelled ember.dev/cluster=<name> (the cluster's own, or none).
    network_policies: tuple[Mapping, ...] = field(default=())


@dataclass(frozen=True)
class Plan:
    """What to do now; applying it and planning again converges on a plan with nothing to do."""

    creates: tuple[Mapping, ...]  # whole objects in apply order: Secret, Service, PVC, head Pod, worker Pods
    deletes: tuple[tuple[str, str], ...]  # (kind, name) to delete now: drained/failed/suspended/rolled pods
    drains: tuple[str, ...]  # worker pod names to drain first; deleted on a later pass once in `drained`
    status: Mapping  # the whole .status as it should be now
    events: tuple[tuple[str, str, str], ...]  # (Normal|Warning, reason, message) for the Cluster
    spec_patch: Mapping | None  # merge patch of .spec, e.g. clearing workersToDelete once those pods are gone
    patches: tuple[Mapping, ...] = ()  # whole objects to merge-patch over what exists (the NetworkPolicy)


@dataclass
class _Work:
    """The plan being assembled, step by step."""

    creates: list[Mapping] = field(default_factory=list)
    patches: list[Mapping] = field(default_factory=list)
    deletes: list[tuple[str, str]] = field(default_factory=list)
    drains: list[str] = field(default_factory=list)
    events: list[tuple[str, str, str]] = field(default_factory=list)

    def remove(self, pod: Mapping, drained: frozenset[str], why: str) -> str:
        """Drain a worker first; delete it once the head reports it drained. Returns which."""
        name = pod_state.name(pod)
        if name in drained:
            self.deletes.append(("Pod", name))
            return "deleted"
        self.drains.append(name)
        return f"draining ({why})"


DEFAULT_POLICY = Policy()


def plan(cluster: Mapping, observed: Observed, policy: Policy = DEFAULT_POLICY) -> Plan:
    """The next step of the reconcile: Secret → Service → NetworkPolicy → (PVC) → head pod →
    workers → status. ``policy``: what the cluster admin allows (``cluster_policy``)."""
    spec = cluster_spec.parse(cluster)
    work = _Work()
    seen = cluster_status.Observation(head_pod=None, head_ready=False, head_crash_looping=False,
                                      head_detail=f"pod {spec.head_pod_name} does not exist yet")
    previous_phase = (cluster.get("status") or {}).get("phase")

    # Token Secret: the operator's own is created once; a user's must exist before pods start.
    secret_ok = True
    if observed.secret is None:
        if spec.generates_token:
            work.creates.append(children.token_secret(cluster, spec, observed.fresh_token))
            seen.creating.append(f"Secret/{spec.token_secret}")
        else:
            secret_ok = False
            seen.secret_missing = spec.token_secret
            work.events.append(("Warning", "SecretMissing",
                                f"Secret {spec.token_secret} named by spec.auth.secretName does not exist "
                                f"in {spec.namespace}: cluster {spec.name} waits for it"))

    # Head Service: recreated (on the next pass, once gone) when its type or ports changed.
    service = children.head_service(cluster, spec)
    existing = next((s for s in observed.services if pod_state.name(s) == spec.service_name), None)
    if existing is None:
        work.creates.append(service)
        seen.creating.append(f"Service/{spec.service_name}")
    elif not pod_state.terminating(existing) and children.service_differs(existing, service):
        work.deletes.append(("Service", spec.service_name))
        seen.changing.append(f"Service/{spec.service_name}")
        work.events.append(("Normal", "ReplacingService",
                            f"Service {spec.service_name} changed type or ports: replacing it"))

    # NetworkPolicy before any pod, so that no pod of the cluster runs unprotected.
    _network_policy(cluster, spec, observed, policy, work, seen)
    refused = cluster_policy.template_violations(spec) if policy.restricted_templates else ()
    seen.refused = refused

    pods = {pod_state.name(p): p for p in observed.pods}
    live = {n: p for n, p in pods.items() if not pod_state.terminating(p)}
    heads = [p for p in live.values() if pod_state.labels(p).get(children.NODE_TYPE_LABEL) == "head"]
    workers = [p for p in live.values() if pod_state.labels(p).get(children.NODE_TYPE_LABEL) == "worker"]

    if spec.suspend:
        _suspend(spec, work, heads + workers, previous_phase)
        for group in spec.groups:
            seen.groups.append(cluster_status.GroupCount(
                group.name, 0, 0, cluster_status.previous_failures(cluster).get(group.name, 0)))
    elif refused:
        _refused(cluster, spec, work, seen, heads, workers)
    else:
        if previous_phase == "Suspended":
            work.events.append(("Normal", "Resumed", f"spec.suspend is false: starting cluster {spec.name} again"))
        head_ok = _head(cluster, spec, observed, work, seen, heads, pods, secret_ok)
        stale_workers = _workers(cluster, spec, observed, work, seen, workers, pods, head_ok and secret_ok)
        head = live.get(spec.head_pod_name)
        if (head is not None and not pod_state.ended(head) and stale_workers == 0
                and pod_state.spec_hash(head) != cluster_spec.head_hash(spec)):
            work.deletes.append(("Pod", spec.head_pod_name))
            seen.changing.append(f"Pod/{spec.head_pod_name}")
            work.events.append(("Normal", "RollingHead",
                                f"head pod {spec.head_pod_name} differs from the spec and every worker is "
                                "current: deleting it to start it again"))

    return Plan(
        creates=tuple(work.creates),
        patches=tuple(work.patches),
        deletes=tuple(work.deletes),
        drains=tuple(work.drains),
        status=cluster_status.build(cluster, spec, seen, observed.now),
        events=tuple(work.events),
        spec_patch=_cleared_lists(cluster, spec, live),
    )


def _network_policy(
    cluster: Mapping, spec: ClusterSpec, observed: Observed, policy: Policy, work: _Work,
    seen: cluster_status.Observation,
) -> None:
    """The cluster's NetworkPolicy: created when absent, patched when it says less than the
    spec asks, deleted when ``spec.networkPolicy.enabled`` is false."""
    name = spec.network_policy_name
    existing = next((n for n in observed.network_policies if pod_state.name(n) == name), None)
    if not spec.network_policy["enabled"]:
        if existing is not None and not pod_state.terminating(existing):
            work.deletes.append(("NetworkPolicy", name))
            work.events.append(("Normal", "DeletingNetworkPolicy",
                                f"spec.networkPolicy.enabled is false: deleting NetworkPolicy {name}"))
        return
    desired = children.network_policy(cluster, spec, policy.operator_peer)
    if existing is None:
        work.creates.append(desired)
        seen.creating.append(f"NetworkPolicy/{name}")
    elif children.policy_differs(existing, desired):
        work.patches.append(desired)
        seen.changing.append(f"NetworkPolicy/{name}")
        work.events.append(("Normal", "UpdatingNetworkPolicy",
                            f"NetworkPolicy {name} differs from spec.networkPolicy: updating it"))


def _refused(
    cluster: Mapping, spec: ClusterSpec, work: _Work, seen: cluster_status.Observation,
    heads: list[Mapping], workers: list[Mapping],
) -> None:
    """A template this operator does not allow: no pod is made from it, none is replaced or
    rolled to it, and the pods there are left as they are (deleting running work because an
    admin tightened the policy would be worse). The status says which fields, a Warning event
    says it once per change (the last status remembers what was said)."""
    head = next((p for p in heads if pod_state.name(p) == spec.head_pod_name), None)
    if head is not None:
        seen.head_pod = head
        seen.head_ready = pod_state.ready(head)
    seen.head_detail = f"no pod is made from a refused template: {'; '.join(seen.refused)}"
    failed_before = cluster_status.previous_failures(cluster)
    for group in spec.groups:
        mine = [p for p in workers if pod_state.labels(p).get(children.GROUP_LABEL) == group.name]
        seen.groups.append(cluster_status.GroupCount(
            group.name, group.desired, sum(1 for p in mine if pod_state.ready(p)),
            failed_before.get(group.name, 0)))
    message = cluster_status.refusal_message(seen.refused)
    if cluster_status.previous_refusal(cluster) != message:
        work.events.append(("Warning", "ForbiddenTemplate", message))


def _suspend(spec: ClusterSpec, work: _Work, pods: list[Mapping], previous_phase: str | None) -> None:
    """``suspend: true``: every pod goes at once, no drain (the whole cluster stops anyway)."""
    names = sorted(pod_state.name(p) for p in pods)
    work.deletes += [("Pod", n) for n in names]
    if names or previous_phase != "Suspended":
        work.events.append(("Normal", "Suspended",
                            f"spec.suspend is true: deleting {len(names)} pods of cluster {spec.name}"
                            + (f" ({', '.join(names)})" if names else "")))


def _head(
    cluster: Mapping,
    spec: ClusterSpec,
    observed: Observed,
    work: _Work,
    seen: cluster_status.Observation,
    heads: list[Mapping],
    pods: Mapping[str, Mapping],
    secret_ok: bool,
) -> bool:
    """The head pod: created when absent, replaced when it ended. True when it is Ready."""
    for other in heads:
        if pod_state.name(other) != spec.head_pod_name:
            work.deletes.append(("Pod", pod_state.name(other)))
    head = pods.get(spec.head_pod_name)
    if head is None:
        if not secret_ok:
            seen.head_detail = f"waiting for Secret {spec.token_secret}"
            return False
        if "stateVolume" in spec.head and not any(
            pod_state.name(c) == spec.state_claim_name for c in observed.claims
        ):
            work.creates.append(children.state_claim(cluster, spec))
            seen.creating.append(f"PersistentVolumeClaim/{spec.state_claim_name}")
        work.creates.append(pod_template.head_pod(cluster, spec))
        seen.creating.append(f"Pod/{spec.head_pod_name}")
        work.events.append(("Normal", "CreatedHead", f"created head pod {spec.head_pod_name}"))
        seen.head_detail = f"pod {spec.head_pod_name} is being created"
        return False
    if pod_state.terminating(head):
        seen.head_detail = f"pod {spec.head_pod_name} is terminating; a new one follows"
        return False
    seen.head_pod = head
    if pod_state.ended(head):
        why = pod_state.failure_reason(head)
        work.deletes.append(("Pod", spec.head_pod_name))
        seen.failures.append(spec.head_pod_name)
        seen.head_detail = f"pod {spec.head_pod_name} ended ({why}); replacing it"
        work.events.append(("Warning", "HeadPodFailed",
                            f"head pod {spec.head_pod_name} is {pod_state.phase(head)} ({why}): replacing it"))
        return False
    seen.head_crash_looping = pod_state.crash_looping(head)
    if pod_state.ready(head):
        seen.head_ready = True
        return True
    why = pod_state.unschedulable(head)
    if why:
        seen.head_detail = f"pod {spec.head_pod_name} cannot be scheduled: {why}"
        _unschedulable(cluster, work, seen, spec.head_pod_name, f"head pod {spec.head_pod_name}", why)
        return False
    seen.head_detail = (
        f"pod {spec.head_pod_name} restarted {pod_state.restarts(head)} times without becoming Ready"
        if seen.head_crash_looping
        else f"pod {spec.head_pod_name} is {pod_state.phase(head)}, not Ready yet"
    )
    return False


def _workers(
    cluster: Mapping,
    spec: ClusterSpec,
    observed: Observed,
    work: _Work,
    seen: cluster_status.Observation,
    workers: list[Mapping],
    pods: Mapping[str, Mapping],
    may_create: bool,
) -> int:
    """Every group brought toward its desired size and spec; returns the stale pods left."""
    failed_before = cluster_status.previous_failures(cluster)
    known = {g.name for g in spec.groups}
    taken = set(pods)  # names of every pod, terminating ones too: a new pod never reuses them
    stale_left = 0
    for pod in workers:
        group_name = pod_state.labels(pod).get(children.GROUP_LABEL, "")
        if group_name not in known:
            if pod_state.ended(pod):
                work.deletes.append(("Pod", pod_state.name(pod)))
            else:
                work.remove(pod, observed.drained, f"group {group_name!r} left the spec")
            seen.changing.append(f"Pod/{pod_state.name(pod)}")
    for group in spec.groups:
        mine = [p for p in workers if pod_state.labels(p).get(children.GROUP_LABEL) == group.name]
        terminating = sum(
            1 for p in pods.values()
            if pod_state.terminating(p) and pod_state.labels(p).get(children.GROUP_LABEL) == group.name
        )
        failed = 0
        running = []
        for pod in mine:
            if not pod_state.ended(pod):
                running.append(pod)
                continue
            name, why = pod_state.name(pod), pod_state.failure_reason(pod)
            work.deletes.append(("Pod", name))
            if pod_state.phase(pod) == "Failed":
                failed += 1
                seen.failures.append(name)
                work.events.append(("Warning", "WorkerFailed",
                                    f"worker pod {name} of group {group.name} failed ({why}): replacing it"))
            else:
                work.events.append(("Normal", "WorkerExited",
                                    f"worker pod {name} of group {group.name} exited: replacing it"))
        desired = group.desired
        listed = set(group.workers_to_delete)
        remaining = [p for p in running if pod_state.name(p) not in listed]
        leaving = [p for p in running if pod_state.name(p) in listed]
        if not listed and len(remaining) > desired:
            # The user lowered replicas without naming pods: the newest go, drained first.
            remaining.sort(key=lambda p: pod_state.age_key(p, spec.name, group.name))
            leaving, remaining = remaining[desired:], remaining[:desired]
        for pod in leaving:
            done = work.remove(pod, observed.drained, f"scale-down of group {group.name}")
            seen.changing.append(f"Pod/{pod_state.name(pod)}")
            if done == "deleted":
                seen.scaled = True
                work.events.append(("Normal", "DeletedWorker",
                                    f"worker pod {pod_state.name(pod)} of group {group.name} is drained: deleting it"))

        rolled = _roll(spec, group, observed, work, seen, remaining, terminating)
        stale_left += sum(
            1 for p in remaining if pod_state.spec_hash(p) != cluster_spec.worker_hash(spec, group)
        )
        missing = desired - (len(remaining) - rolled)
        if missing > 0 and may_create:
            created = []
            for _ in range(missing):
                name = _free_name(spec.name, group.name, taken)
                taken.add(name)
                created.append(name)
                work.creates.append(pod_template.worker_pod(cluster, spec, group, name))
                seen.creating.append(f"Pod/{name}")
            seen.scaled = seen.scaled or missing > rolled
            work.events.append(("Normal", "CreatedWorkers",
                                f"created worker pods {', '.join(created)} of group {group.name} "
                                f"({desired} desired)"))
        ready = sum(1 for p in remaining if pod_state.ready(p))
        for pod in remaining:
            why = pod_state.unschedulable(pod)
            if why and not pod_state.ready(pod):
                name = pod_state.name(pod)
                _unschedulable(cluster, work, seen, name, f"worker pod {name} of group {group.name}", why)
        seen.groups.append(cluster_status.GroupCount(
            group.name, desired, ready, failed_before.get(group.name, 0) + failed))
    return stale_left


def _unschedulable(
    cluster: Mapping, work: _Work, seen: cluster_status.Observation, name: str, what: str, why: str
) -> None:
    """A pod no node can take: the status says so on every pass (the condition's message and
    ``unschedulablePods``), a Warning event once, when the pod first appears in that list
    (the last status is the memory of what was said, so an operator restart says nothing twice)."""
    seen.unschedulable[name] = why
    if name not in cluster_status.previous_unschedulable(cluster):
        work.events.append(("Warning", "Unschedulable", f"{what} cannot be scheduled: {why}"))


def _roll(
    spec: ClusterSpec,
    group: cluster_spec.WorkerGroup,
    observed: Observed,
    work: _Work,
    seen: cluster_status.Observation,
    remaining: list[Mapping],
    terminating: int,
) -> int:
    """Replace pods whose spec hash is stale, a quarter of the group (at least one) at a time.

    A slot is taken by every pod of the group not serving yet: terminating, missing, or
    current but not Ready. Stale pods already drained are deleted whatever the slots (they
    serve nothing). Returns how many stale pods are deleted now.
    """
    want = cluster_spec.worker_hash(spec, group)
    stale = sorted((p for p in remaining if pod_state.spec_hash(p) != want),
                   key=lambda p: pod_state.age_key(p, spec.name, group.name))
    if not stale:
        return 0
    unready_current = sum(1 for p in remaining if pod_state.spec_hash(p) == want and not pod_state.ready(p))
    missing = max(0, group.desired - len(remaining))
    budget = max(1, group.desired // 4)
    drained = [p for p in stale if pod_state.name(p) in observed.drained]
    slots = max(0, budget - terminating - unready_current - missing - len(drained))
    chosen = drained + [p for p in stale if pod_state.name(p) not in observed.drained][:slots]
    rolled = 0
    for pod in chosen:
        seen.changing.append(f"Pod/{pod_state.name(pod)}")
        if work.remove(pod, observed.drained, "rolling update") == "deleted":
            rolled += 1
            work.events.append(("Normal", "RollingWorker",
                                f"worker pod {pod_state.name(pod)} of group {group.name} differs from the "
                                "spec and is drained: replacing it"))
    if not chosen:
        seen.changing.append(f"roll of group {group.name} waits for {terminating + unready_current + missing} pods")
    return rolled


def _free_name(cluster: str, group: str, taken: set[str]) -> str:
    """``<cluster>-<group>-<n>`` with the lowest n no pod of the cluster uses."""
    n = 0
    while f"{cluster}-{group}-{n}" in taken:
        n += 1
    return f"{cluster}-{group}-{n}"


def _cleared_lists(cluster: Mapping, spec: ClusterSpec, live: Mapping[str, Mapping]) -> Mapping | None:
    """Clear a group's ``workersToDelete`` once none of the pods it names is alive.

    The whole ``workerGroups`` list is returned (a merge patch replaces lists whole), as the
    object had it, with only the emptied lists changed.
    """
    done = {g.name for g in spec.groups if g.workers_to_delete and not any(n in live for n in g.workers_to_delete)}
    if not done:
        return None
    groups = []
    for group in (cluster.get("spec") or {}).get("workerGroups") or []:
        group = dict(group)
        if group.get("name") in done:
            group["scaleStrategy"] = {**(group.get("scaleStrategy") or {}), "workersToDelete": []}
        groups.append(group)
    return {"workerGroups": groups}
