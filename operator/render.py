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


@dataclass(frozen=True)
class Plan:
    """What to do now; applying it and planning again converges on a plan with nothing to do."""

    creates: tuple[Mapping, ...]  # whole objects in apply order: Secret, Service, PVC, head Pod, worker Pods
    deletes: tuple[tuple[str, str], ...]  # (kind, name) to delete now: drained/failed/suspended/rolled pods
    drains: tuple[str, ...]  # worker pod names to drain first; deleted on a later pass once in `drained`
    status: Mapping  # the whole .status as it should be now
    events: tuple[tuple[str, str, str], ...]  # (Normal|Warning, reason, message) for the Cluster
    spec_patch: Mapping | None  # merge patch of .spec, e.g. clearing workersToDelete once those pods are gone
