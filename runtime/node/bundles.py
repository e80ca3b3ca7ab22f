"""Placement group bundles on a node: reserved for the head in two phases, then given back.

The head places a group's bundles all at once or not at all. It first asks each chosen node to
*prepare* its bundles: the node takes their resources out of what it grants now, or refuses if
they are not free. Only when every node prepared does the head *commit*: the node then offers the
bundles' resources under their group names (``bundle_resources``), which only work in the group
asks for. If any node refused, or the head gave up on the attempt, every prepared bundle is
*released*: nothing is held for a group that is not placed whole. A group whose bundles all go
to this one node is prepared and committed in one request (``commit``): with a single node
nothing can fail between the phases. One call from the head may carry many groups' requests
(``prepare_all``, ``commit_all``, ``release``); each is done or refused on its own.

Each message carries the head's attempt number. A release covers only bundles reserved by that
attempt or an earlier one, so a release of a failed attempt that arrives late cannot take back
the bundles of a later attempt that succeeded; a prepare from a later attempt takes over a
bundle an earlier one left here. The node lists what it holds in its reports (``listing``), so
the head releases whatever it did not mean to be here: a release that was lost, a head that
restarted and knows nothing of a group.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from ember.runtime.node.leases import Leases
from ember.runtime.wire import bundle_resources, resources
from ember.runtime.wire.protocol import ember_pb2 as pb
from ember.runtime.wire.resources import Shape

log = logging.getLogger("ember.runtime.node.node_agent")

RESYNC_INTERVAL = 10.0  # seconds between listings of the bundles held, changed or not
# Seconds at least between listings of changed bundles. A listing names every bundle held and
# the head checks each: one per report while a driver creates or removes a hundred groups cost
# both sides more than the groups themselves. The head needs them only for what it did not
# mean to be here (a lost release), which can wait that long; a new head gets one at once.
LISTING_GAP = 1.0


@dataclass
class HeldBundle:
    group_id: bytes
    index: int
    attempt: int
    shape: Shape  # what it takes from the node
    group: str  # the group, said for people
    committed: bool = False
    added: Shape = field(default_factory=dict)  # what it offers, once committed

    def describe(self) -> str:
        return f"bundle {self.index} of {self.group}"


class Bundles:
    def __init__(self, leases: Leases) -> None:
        self.leases = leases
        self.held: dict[tuple[bytes, int], HeldBundle] = {}
        self._changed = True
        self._listed_at = 0.0

    def describe_node(self) -> str:
        return self.leases.node.describe()

    # ------------------------------------------------------------------ the head's calls

    def prepare(self, request: pb.BundleReservation) -> str:
        """Take the bundles' resources out of what is free, all of them or none; returns why
        not ("" when done)."""
        leases = self.leases
        if leases.drain is not None:
            return f"{self.describe_node()} is being drained"
        needed: Shape = {}
        new: list[HeldBundle] = []
        for index, bundle in zip(request.indexes, request.bundles, strict=True):
            held = self.held.get((request.placement_group_id, index))
            if held is not None:
                held.attempt = max(held.attempt, request.attempt)  # an earlier attempt's, taken over
                continue
            shape = resources.to_fixed(bundle.quantities)
            new.append(HeldBundle(request.placement_group_id, index, request.attempt, shape, request.group))
            resources.add(needed, shape)
        if not resources.fits(needed, leases.available):
            which = ", ".join(str(b.index) for b in new)
            free = {k: v for k, v in leases.available.items() if k in needed}
            return (
                f"{self.describe_node()} cannot reserve bundle{'s' if len(new) > 1 else ''} {which} "
                f"of {request.group}: {bundle_resources.describe(needed)} needed, "
                f"{resources.describe(free)} free"
            )
        resources.subtract(leases.available, needed)
        for held in new:
            self.held[(held.group_id, held.index)] = held
        if new:
            self._changed = True
            leases.report_soon()
        return ""

    def commit(self, request: pb.BundleReservation) -> str:
        """Offer the prepared bundles under their group's names; returns why not. The caller
        grants what waited for them (``Leases.schedule``), once for all it commits."""
        group_hex = request.placement_group_id.hex()
        found = []
        for index in request.indexes:
            held = self.held.get((request.placement_group_id, index))
            if held is None or held.attempt != request.attempt:
                return (
                    f"{self.describe_node()} holds no bundle {index} of {request.group} for attempt "
                    f"{request.attempt} (released meanwhile)"
                )
            found.append(held)
        leases = self.leases
        for held in found:
            if held.committed:
                continue
            held.committed = True
            held.added = bundle_resources.committed(held.shape, group_hex, held.index)
            resources.add(leases.total, held.added)
            resources.add(leases.available, held.added)
            log.debug("%s: committed %s", self.describe_node(), held.describe())
        self._changed = True
        leases.report_soon()
        return ""

    def prepare_all(self, requests: Sequence[pb.BundleReservation]) -> list[str]:
        """Prepare each group's bundles on its own, and commit at once those whose request
        says so (the attempt's only node); returns why not, one per request."""
        errors = []
        committed = False
        for request in requests:
            error = self.prepare(request)
            if not error and request.commit:
                error = self.commit(request)
                committed = committed or not error
            errors.append(error)
        if committed:
            self.leases.schedule()
        return errors

    def commit_all(self, requests: Sequence[pb.BundleReservation]) -> list[str]:
        """Commit each group's bundles on its own; returns why not, one per request."""
        errors = [self.commit(request) for request in requests]
        self.leases.schedule()
        return errors

    def release(self, requests: Sequence[pb.BundleRelease]) -> int:
        """Give bundles back, each request's on its own; with ``stop_workers``, stop what runs
        in them. Returns how many. Requests queued here for what went ask the head again, and
        what is free is granted, once for all the requests (a removed job's hundred groups)."""
        count = 0
        for request in requests:
            count += self._release_one(request)
        if count:
            leases = self.leases
            # Requests queued for what is gone now ask the head again: it knows where the group
            # went, or says why it is no more.
            leases.requeue_unfit()
            self._changed = True
            leases.report_soon()
            leases.schedule()
        return count

    def _release_one(self, request: pb.BundleRelease) -> int:
        released = [
            held for (group_id, index), held in self.held.items()
            if group_id == request.placement_group_id
            and bundle_resources.release_covers(request, index, held.attempt)
        ]
        if not released:
            return 0
        leases = self.leases
        for held in released:
            del self.held[(held.group_id, held.index)]
            if held.committed:
                self._take_back(held.added)
            resources.add(leases.available, held.shape)
        group_hex = request.placement_group_id.hex()
        reason = request.reason or f"{released[0].group} was released"
        if request.stop_workers:
            leases.stop_leases(lambda shape: group_hex in bundle_resources.groups_of(shape), reason)
        log.info(
            "%s: released %s of %s: %s", self.describe_node(),
            "bundles " + ", ".join(str(h.index) for h in released), released[0].group, reason,
        )
        return len(released)

    def _take_back(self, added: Shape) -> None:
        """Withdraw a committed bundle's names. The group-wide names are shared with the
        group's other bundles here, so amounts go; a name goes once nothing is left of it.
        Leases still holding them give back only what still exists (``Leases._free_lease``)."""
        leases = self.leases
        for name, amount in added.items():
            left = leases.total.get(name, 0) - amount
            if left > 0:
                leases.total[name] = left
                leases.available[name] = leases.available.get(name, 0) - amount
            else:
                leases.total.pop(name, None)
                leases.available.pop(name, None)

    # ------------------------------------------------------------------ what the head hears

    def listing(self, force: bool = False) -> list[pb.HeldBundle] | None:
        """The bundles held, when they changed since the last listing (at most once every
        ``LISTING_GAP``) or a while passed, or with ``force``; None otherwise."""
        now = time.monotonic()
        since = now - self._listed_at
        due = (self._changed and since >= LISTING_GAP) or (self.held and since >= RESYNC_INTERVAL)
        if not (force or due):
            return None
        self._changed = False
        self._listed_at = now
        return [
            pb.HeldBundle(
                placement_group_id=held.group_id, index=held.index, attempt=held.attempt,
                committed=held.committed,
            )
            for held in self.held.values()
        ]

    def busy(self) -> bool:
        """A node holding bundles is not idle: an autoscaler must not take it away."""
        return bool(self.held)
