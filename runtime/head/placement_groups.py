"""The head's placement groups: bundles of resources reserved on nodes, a whole group or none.

A group is created pending and placed in the background. The head chooses nodes for one group
at a time, in the order they came (``bundle_placement``), against its own account of what is
free, where a choice counts as taken at once: two groups that cannot both fit are never both
chosen. For a chosen group it asks each node to *prepare* its bundles (the node takes their
resources out of what it grants, or refuses if they are not free), and only once every node
did, to *commit* them (the node then offers them under the group's names, see
``bundle_resources``); a group whose bundles all go to one node is prepared and committed there
in one request, since with one node nothing can fail between the phases. Several groups may be
between the two phases at once, and their requests to one node travel together
(``bundle_calls``), each done or refused there on its own. A node that
refuses, cannot be reached or dies meanwhile ends the attempt: every bundle prepared or
committed for it is released, and the group waits whole for the next change in the cluster. So
no group ever holds part of what it needs, and two groups that cannot both fit never each keep
half: the second waits for the first to go.

Nodes list the bundles they hold in their reports; any the head did not place there (a release
that was lost, a head restarted since) is released. A node that dies takes its bundles along:
the group is rescheduled (Ray's state) and those bundles placed again. Removing a group
releases its bundles with the workers running in them, and kills its actors (``on_removed``);
a group not created ``detached`` is removed when its job ends.

Detached groups are written down in the head's state directory, where there is one, with the
nodes of their bundles: detached actors survive a head restart in their workers, and so must
the bundles they run in. The restarted head takes each bundle back when its node registers
again listing it, and places again those whose node does not come back.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from ember.runtime.head import bundle_placement
from ember.runtime.head.bundle_calls import BundleCalls
from ember.runtime.head.bundle_placement import Bundle, Candidate, NodeType
from ember.runtime.head.head_state import HeadState
from ember.runtime.head.membership import NodeState
from ember.runtime.head.placement_group_record import PENDING, GroupRecord
from ember.runtime.objects import ids
from ember.runtime.wire import bundle_resources, resources, rpc
from ember.runtime.wire.protocol import ember_pb2 as pb

log = logging.getLogger("ember.runtime.head.placement_groups")

RETRY_DELAYS = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0)  # after an attempt a node refused
KEEP_REMOVED = 1000  # removed groups kept for the table, newest
SAFETY_PASS = 1.0  # seconds between passes even when nothing announced a change
MAX_IN_FLIGHT = 16  # groups between prepare and commit at once
RETURN_GRACE = 15.0  # seconds beyond the node timeout a restarted head waits for a bundle's node


class Cluster(Protocol):
    """What placing groups needs of the head: the nodes, and the shapes an autoscaler may add
    (None: an autoscaler that has not said yet)."""

    node_types: list[NodeType] | None
    node_timeout: float

    def alive_nodes(self) -> list[NodeState]: ...

    def node_by_id(self, node_id: bytes) -> NodeState | None: ...


class PlacementGroups:
    def __init__(self, cluster: Cluster, channels: rpc.Channels, state: HeadState | None = None) -> None:
        self.cluster = cluster
        self.channels = channels
        self.calls = BundleCalls(channels)  # prepare, commit, release: coalesced per node
        self.state = state  # where detached groups are written down, if anywhere
        self.groups: dict[bytes, GroupRecord] = {}
        self.pending: dict[bytes, GroupRecord] = {}  # waiting for (part of) their placement
        self.names: dict[tuple[str, str], bytes] = {}
        self._removed: collections.deque[bytes] = collections.deque()
        self._order = itertools.count()
        self._wake = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._placing: set[bytes] = set()  # groups whose attempt is under way
        self._background: set[asyncio.Task[None]] = set()
        # Releases sent and not answered yet, by group and node.
        self._releasing: collections.defaultdict[tuple[bytes, bytes], list[pb.BundleRelease]] = (
            collections.defaultdict(list)
        )
        # Called with a removed group's id and the reason: its actors die (the head's actor
        # directory), before its bundles are released with the workers in them.
        self.on_removed: Callable[[bytes, str], None] = lambda group_id, reason: None
        # Pulsed on every group's change: actors waiting for a group's placement look again.
        self.changed = asyncio.Event()

    # ------------------------------------------------------------------ API

    def create(self, spec: pb.PlacementGroupSpec) -> str:
        """Register a group (placed in the background); returns why not, or ""."""
        if spec.placement_group_id in self.groups:
            return f"placement group id {spec.placement_group_id.hex()} is taken"
        if spec.strategy not in bundle_placement.STRATEGIES:
            return f"placement group strategy must be one of {', '.join(bundle_placement.STRATEGIES)}, got {spec.strategy!r}"
        if spec.name:
            existing = self.names.get((spec.namespace, spec.name))
            if existing is not None:
                return (
                    f"a placement group named '{spec.name}' already exists in namespace "
                    f"'{spec.namespace}' ({self.groups[existing].describe()})"
                )
        record = GroupRecord(spec, next(self._order))
        self.groups[spec.placement_group_id] = record
        if spec.name:
            self.names[(spec.namespace, spec.name)] = spec.placement_group_id
        self.pending[spec.placement_group_id] = record
        log.info(
            "%s created: %s %s", record.describe(), spec.strategy,
            ", ".join(resources.describe(b) for b in record.bundles),
        )
        self._persist(record)
        self.wake()
        return ""

    # ------------------------------------------------------------------ surviving a restart

    def _persist(self, record: GroupRecord) -> None:
        if self.state is None or not record.spec.detached:
            return
        if record.state == pb.PG_REMOVED:
            self.state.drop_group(record.spec.placement_group_id)
        else:
            record.info.attempt = record.attempt
            self.state.save_group(record.info)

    def restore(self) -> int:
        """Take back the detached groups a previous head wrote down. Their bundles count once
        their nodes list them again; those whose node does not come back are placed anew."""
        assert self.state is not None
        persisted = self.state.load_groups()
        for info in persisted:
            record = GroupRecord(info.spec, next(self._order))
            record.info.CopyFrom(info)
            record.attempt = info.attempt
            record.unconfirmed = record.placed()
            self.groups[info.spec.placement_group_id] = record
            if info.spec.name:
                self.names[(info.spec.namespace, info.spec.name)] = info.spec.placement_group_id
            if record.state in PENDING:
                self.pending[info.spec.placement_group_id] = record
        if persisted:
            asyncio.get_running_loop().call_later(
                self.cluster.node_timeout + RETURN_GRACE, self._unreturned
            )
            self.wake()
        return len(persisted)

    def _unreturned(self) -> None:
        """Bundles whose nodes never came back after the restart: placed again elsewhere."""
        for record in list(self.groups.values()):
            lost = dict(record.unconfirmed)
            record.unconfirmed.clear()
            if not lost or record.state == pb.PG_REMOVED:
                continue
            for index in lost:
                record.info.bundle_nodes[index] = b""
            log.warning(
                "%s: bundles %s did not come back with their nodes after the head restarted; "
                "placing them again", record.describe(), ", ".join(map(str, lost)),
            )
            record.update(state=pb.PG_RESCHEDULING, scheduling_state="QUEUED")
            self.pending[record.spec.placement_group_id] = record
            self._persist(record)
        self._pulse()
        self.wake()

    def find(self, request: pb.PlacementGroupRequest) -> GroupRecord | None:
        if request.placement_group_id:
            return self.groups.get(request.placement_group_id)
        group_id = self.names.get((request.namespace, request.name))
        return self.groups.get(group_id) if group_id else None

    async def wait(self, record: GroupRecord, seconds: float, until_infeasible: bool) -> None:
        """Until the group is created or removed (or, with ``until_infeasible``, found to fit
        no node), at most ``seconds``."""
        deadline = asyncio.get_running_loop().time() + seconds
        while record.state in PENDING and not (until_infeasible and record.info.infeasible):
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return
            try:
                await asyncio.wait_for(record.changed.wait(), remaining)
            except TimeoutError:
                return

    async def wait_any(self, group_ids: list[bytes], seconds: float) -> pb.PlacementGroupsSettled:
        """Those of the groups created, removed or found to fit no node (and the ids of none),
        once there is at least one, or after ``seconds``: many ``pg.ready()`` in one call."""
        deadline = asyncio.get_running_loop().time() + seconds
        while True:
            reply = pb.PlacementGroupsSettled()
            for group_id in group_ids:
                record = self.groups.get(group_id)
                if record is None:
                    reply.unknown.append(group_id)
                elif record.state not in PENDING or record.info.infeasible:
                    info = record.info
                    reply.groups.add(
                        placement_group_id=group_id, name=record.spec.name, state=info.state,
                        infeasible=info.infeasible,
                        why=info.removal_reason if info.state == pb.PG_REMOVED else info.waiting_for,
                    )
            remaining = deadline - asyncio.get_running_loop().time()
            if reply.groups or reply.unknown or remaining <= 0:
                return reply
            await self.changed_within(remaining)

    def remove(self, group_id: bytes, reason: str) -> bool:
        """Remove a group: its actors die, its bundles go back with what runs in them."""
        record = self.groups.get(group_id)
        if record is None or record.state == pb.PG_REMOVED:
            return False
        log.info("removing %s: %s", record.describe(), reason)
        homes = set(record.placed().values()) | set(record.reserving.values())
        for index, node_id in record.placed().items():
            self._forget_bundle(record, index, node_id)
        record.reserving.clear()
        self.pending.pop(group_id, None)
        record.update(
            state=pb.PG_REMOVED, scheduling_state="REMOVED", removal_reason=reason,
            bundle_nodes=[b""] * len(record.bundles),
        )
        self._pulse()
        if record.spec.name and self.names.get((record.spec.namespace, record.spec.name)) == group_id:
            del self.names[(record.spec.namespace, record.spec.name)]
        self.on_removed(group_id, f"{record.describe()} was removed ({reason})")
        release = pb.BundleRelease(
            placement_group_id=group_id, reason=f"{record.describe()} was removed ({reason})",
            stop_workers=True,
        )
        for node_id in homes:
            self._release(node_id, release)
        self._persist(record)
        self._removed.append(group_id)
        while len(self._removed) > KEEP_REMOVED:
            self.groups.pop(self._removed.popleft(), None)
        self.wake()  # what it held may complete another group
        return True

    def table(self) -> pb.PlacementGroupList:
        return pb.PlacementGroupList(groups=[r.info for r in self.groups.values()])

    # ------------------------------------------------------------------ the cluster's events

    def job_finished(self, job_id: bytes) -> None:
        for record in list(self.groups.values()):
            if record.spec.job_id == job_id and not record.spec.detached:
                self.remove(record.spec.placement_group_id, f"its job {job_id.hex()} ended")

    def node_lost(self, node: NodeState, cause: str, release: bool = False) -> None:
        """The node died, or is being drained (``release``: its bundles are given back there,
        what runs in them finishes): its bundles are placed again elsewhere."""
        for record in self.groups.values():
            lost = [i for i, n in record.placed().items() if n == node.node_id]
            if not lost or record.state == pb.PG_REMOVED:
                continue
            for index in lost:
                self._forget_bundle(record, index, node.node_id)
                record.info.bundle_nodes[index] = b""
            self.pending[record.spec.placement_group_id] = record
            log.warning(
                "%s: bundle%s %s on %s lost (%s); placing %s again", record.describe(),
                "s" if len(lost) > 1 else "", ", ".join(map(str, lost)), node.describe(), cause,
                "them" if len(lost) > 1 else "it",
            )
            record.update(
                state=pb.PG_RESCHEDULING, scheduling_state="QUEUED",
                waiting_for=f"bundles {', '.join(map(str, lost))} were on {node.describe()}, which {cause}",
            )
            self._persist(record)
            if release:
                self._release(node.node_id, pb.BundleRelease(
                    placement_group_id=record.spec.placement_group_id, indexes=lost,
                    attempt=record.attempt, reason=f"{node.describe()} {cause}",
                ))
        self._pulse()
        self.wake()

    def reconcile(self, node: NodeState, held: list[pb.HeldBundle]) -> None:
        """A node's list of the bundles it holds: release those the head did not place there."""
        for bundle in held:
            record = self.groups.get(bundle.placement_group_id)
            index = bundle.index
            meant = record is not None and record.state != pb.PG_REMOVED and index < len(record.bundles) and (
                record.info.bundle_nodes[index] == node.node_id
                or record.reserving.get(index) == node.node_id
            )
            if meant and record is not None:
                # Attempts after a head restart count on from those the nodes remember.
                record.attempt = max(record.attempt, bundle.attempt)
                if record.unconfirmed.get(index) == node.node_id and bundle.committed:
                    del record.unconfirmed[index]  # taken back: it counts on its node again
                    resources.add(node.bundles, bundle_resources.committed(record.bundles[index], record.hex, index))
                    log.info("%s: took back bundle %d on %s", record.describe(), index, node.describe())
                continue
            if self._being_released(node.node_id, bundle):
                continue  # listed before the release reached the node
            what = record.describe() if record is not None else f"placement group {bundle.placement_group_id.hex()[:12]}"
            log.info("%s holds bundle %d of %s, which the head did not place there: releasing it", node.describe(), index, what)
            self._release(node.node_id, pb.BundleRelease(
                placement_group_id=bundle.placement_group_id, indexes=[index],
                attempt=bundle.attempt, reason="the head did not place it there",
                stop_workers=record is None or record.state == pb.PG_REMOVED,
            ))

    # ------------------------------------------------------------------ what others ask

    def group_of(self, group_hex: str) -> GroupRecord | None:
        try:
            return self.groups.get(bytes.fromhex(group_hex))
        except ValueError:
            return None

    async def settled(self, group_hexes: set[str], seconds: float) -> None:
        """Wait, at most ``seconds``, for the groups among ``group_hexes`` still pending."""
        for group_hex in group_hexes:
            record = self.group_of(group_hex)
            if record is not None:
                await self.wait(record, seconds, until_infeasible=True)

    async def changed_within(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self.changed.wait(), seconds)
        except TimeoutError:
            pass

    def demand(self) -> list[pb.PlacementGroupDemand]:
        """Groups waiting for room, whole: what an autoscaler must add nodes for."""
        wanted = []
        for record in sorted(self.pending.values(), key=lambda r: r.order):
            placed = record.placed()
            waiting = [i for i in range(len(record.bundles)) if i not in placed]
            wanted.append(pb.PlacementGroupDemand(
                placement_group_id=record.spec.placement_group_id,
                strategy=record.spec.strategy,
                bundles=[record.spec.bundles[i] for i in waiting],
                bundle_label_selector=[
                    pb.LabelSelector(conditions=record.selectors[i]) for i in waiting
                ] if any(record.selectors) else [],
            ))
        return wanted

    # ------------------------------------------------------------------ placing

    def wake(self) -> None:
        """Something changed that may let a waiting group be placed."""
        if self._runner is None:
            if not self.pending:
                return
            self._runner = asyncio.ensure_future(self._schedule())
        self._wake.set()

    async def _schedule(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), SAFETY_PASS)
            except TimeoutError:
                pass
            self._wake.clear()
            now = loop.time()
            for record in sorted(self.pending.values(), key=lambda r: r.order):
                group_id = record.spec.placement_group_id
                if record.state not in PENDING or record.retry_at > now or group_id in self._placing:
                    continue
                if len(self._placing) >= MAX_IN_FLIGHT:
                    break  # the next pass, once one is done
                try:
                    attempt = self._choose(record)
                except Exception:  # noqa: BLE001 - one group's failure must not stop the others
                    log.exception("placing %s failed", record.describe())
                    continue
                if attempt is not None:
                    self._placing.add(group_id)
                    self._spawn(self._attempt(record, *attempt))

    def _choose(self, record: GroupRecord) -> tuple[int, dict[int, bytes], dict[bytes, list[int]]] | None:
        """Nodes for the group's bundles not placed yet, counted as taken now; or None, with
        the group's record saying why it waits (or can never be placed)."""
        placed = record.placed()
        bundles = [
            Bundle(i, shape, record.selectors[i] if i < len(record.selectors) else {})
            for i, shape in enumerate(record.bundles) if i not in placed
        ]
        live = self.cluster.alive_nodes()
        candidates = [_candidate(node) for node in live if node.drain is None]
        chosen = bundle_placement.choose(bundles, record.spec.strategy, candidates, placed)
        if chosen is None:
            # A group placed once that lost bundles with a node waits for a node to come back
            # (a restarted pod, a replaced machine) however the cluster looks now, as in Ray;
            # one never placed fails what waits for it if no node can ever hold it.
            why = ""
            if record.state == pb.PG_PENDING:
                totals = [Candidate(n.node_id, n.total, n.total, dict(n.info.labels)) for n in live]
                why = bundle_placement.infeasible(
                    bundles, record.spec.strategy, totals, self.cluster.node_types, placed
                )
            state = "INFEASIBLE" if why else "NO_RESOURCES"
            waiting = why or (
                f"no nodes with room for bundles {', '.join(str(b.index) for b in bundles)} now; "
                f"{'they wait' if len(bundles) > 1 else 'it waits'}"
            )
            if record.info.scheduling_state != state or record.info.waiting_for != waiting:
                if why and not record.info.infeasible:
                    log.warning("%s cannot be placed: %s", record.describe(), why)
                record.update(scheduling_state=state, waiting_for=waiting, infeasible=bool(why))
                self._pulse()
            return None
        record.attempt += 1
        attempt = record.attempt
        record.reserving = dict(chosen)
        record.update(
            scheduling_state="SCHEDULING_STARTED", infeasible=False,
            scheduling_attempts=record.info.scheduling_attempts + 1,
        )
        by_node: dict[bytes, list[int]] = collections.defaultdict(list)
        for index, node_id in chosen.items():
            by_node[node_id].append(index)
            node = self.cluster.node_by_id(node_id)
            if node is not None:  # counted as taken until the node's next report says so
                resources.subtract(node.available, record.bundles[index])
        return attempt, chosen, dict(by_node)

    async def _attempt(
        self, record: GroupRecord, attempt: int, chosen: dict[int, bytes], by_node: dict[bytes, list[int]]
    ) -> None:
        """Prepare on every chosen node, then commit; or give back what was reserved."""
        try:
            await self._reserve(record, attempt, chosen, by_node)
        except Exception:  # noqa: BLE001 - the attempt ends; the group waits for another
            log.exception("placing %s failed", record.describe())
            if record.state in PENDING and record.attempt == attempt:
                self._abandon(record, attempt, by_node, "the head failed while placing it")
        finally:
            self._placing.discard(record.spec.placement_group_id)
            self.wake()

    async def _reserve(
        self, record: GroupRecord, attempt: int, chosen: dict[int, bytes], by_node: dict[bytes, list[int]]
    ) -> None:
        # On a single node nothing can fail between the phases: one request does both there.
        alone = len(by_node) == 1
        errors = await self._phase(record, attempt, by_node, prepare=True, commit=alone)
        if not alone and not errors and record.state in PENDING and record.attempt == attempt:
            errors = await self._phase(record, attempt, by_node, prepare=False, commit=True)
        if record.state not in PENDING or record.attempt != attempt:
            return  # removed meanwhile: remove() released what the attempt reserved
        if errors:
            self._abandon(record, attempt, by_node, errors[0])
            return
        self._created(record, attempt, chosen, by_node)

    async def _phase(
        self, record: GroupRecord, attempt: int, by_node: dict[bytes, list[int]], prepare: bool,
        commit: bool,
    ) -> list[str]:
        """One phase (or, on the attempt's only node, both) on every chosen node at once;
        returns the failures, naming the nodes."""

        async def one(node_id: bytes, indexes: list[int]) -> str:
            node = self.cluster.node_by_id(node_id)
            if node is None:
                return f"node {ids.short(node_id)} died"
            request = pb.BundleReservation(
                placement_group_id=record.spec.placement_group_id, group=record.describe(),
                attempt=attempt, indexes=indexes,
                bundles=[record.spec.bundles[i] for i in indexes] if prepare else [],
                commit=commit and prepare,
            )
            return await (self.calls.prepare if prepare else self.calls.commit)(node, request)

        results = await asyncio.gather(*(one(n, i) for n, i in by_node.items()))
        return [error for error in results if error]

    def _abandon(self, record: GroupRecord, attempt: int, by_node: dict[bytes, list[int]], why: str) -> None:
        """An attempt failed: give back whatever it reserved, and wait whole for another."""
        record.reserving.clear()
        for node_id, indexes in by_node.items():
            self._release(node_id, pb.BundleRelease(
                placement_group_id=record.spec.placement_group_id, indexes=indexes,
                attempt=attempt, reason=f"the attempt to place {record.describe()} failed: {why}",
                stop_workers=True,  # a committed bundle may have taken work before another failed
            ))
        delay = RETRY_DELAYS[min(record.failures, len(RETRY_DELAYS) - 1)]
        record.failures += 1
        record.retry_at = asyncio.get_running_loop().time() + delay
        asyncio.get_running_loop().call_later(delay, self.wake)
        log.info("%s not placed (attempt %d): %s; retrying", record.describe(), attempt, why)
        record.update(scheduling_state="NO_RESOURCES", waiting_for=why)

    def _created(
        self, record: GroupRecord, attempt: int, chosen: dict[int, bytes], by_node: dict[bytes, list[int]]
    ) -> None:
        """Every chosen node committed. The group is created, unless a node died meanwhile:
        a group never created then gives everything back (all or nothing); one rescheduled
        keeps what it holds, as it did before, and waits for the rest."""
        dead = [i for i, node_id in chosen.items() if self.cluster.node_by_id(node_id) is None]
        if dead and record.state == pb.PG_PENDING:
            self._abandon(record, attempt, by_node, f"the node of bundles {', '.join(map(str, dead))} died")
            return
        for index, node_id in chosen.items():
            node = self.cluster.node_by_id(node_id)
            if node is None:
                continue  # died after it committed: its bundle died with it
            record.info.bundle_nodes[index] = node_id
            resources.add(node.bundles, bundle_resources.committed(record.bundles[index], record.hex, index))
        record.reserving.clear()
        record.failures = 0
        missing = [i for i, node in enumerate(record.info.bundle_nodes) if not node]
        if missing:
            record.update(
                state=pb.PG_RESCHEDULING if record.placed() else pb.PG_PENDING,
                scheduling_state="QUEUED",
                waiting_for=f"bundles {', '.join(map(str, missing))} lost their nodes while it was placed",
            )
            self._persist(record)
            return
        self.pending.pop(record.spec.placement_group_id, None)
        rescheduled = record.state == pb.PG_RESCHEDULING
        record.update(
            state=pb.PG_CREATED, scheduling_state="FINISHED", waiting_for="",
            creation_seconds=record.info.creation_seconds or time.monotonic() - record.started,
        )
        self._pulse()
        self._persist(record)
        nodes = sorted({ids.short(n) for n in chosen.values()})
        log.info("%s %s on %s", record.describe(), "placed again" if rescheduled else "created", ", ".join(nodes))

    def _forget_bundle(self, record: GroupRecord, index: int, node_id: bytes) -> None:
        node = self.cluster.node_by_id(node_id)
        if node is None:
            return
        for name, amount in bundle_resources.committed(record.bundles[index], record.hex, index).items():
            left = node.bundles.get(name, 0) - amount
            if left > 0:
                node.bundles[name] = left
            else:
                node.bundles.pop(name, None)

    def _release(self, node_id: bytes, request: pb.BundleRelease) -> None:
        """Give bundles back on the node, in the background. Until the node answers, its
        listings may still show them: ``reconcile`` leaves those to this release."""
        node = self.cluster.node_by_id(node_id)
        if node is None:
            return  # its bundles died with it
        key = (request.placement_group_id, node_id)
        self._releasing[key].append(request)
        self._spawn(self._send_release(node, key, request))

    async def _send_release(self, node: NodeState, key: tuple[bytes, bytes], request: pb.BundleRelease) -> None:
        try:
            error = await self.calls.release(node, request)
        finally:
            under_way = self._releasing[key]
            under_way.remove(request)
            if not under_way:
                del self._releasing[key]
        if error:
            # The node lists what it holds in its reports: reconcile() releases it then.
            log.debug("release on %s failed (%s); its next listing will say", node.describe(), error)

    def _being_released(self, node_id: bytes, bundle: pb.HeldBundle) -> bool:
        return any(
            bundle_resources.release_covers(release, bundle.index, bundle.attempt)
            for release in self._releasing.get((bundle.placement_group_id, node_id), ())
        )

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _pulse(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()

    async def close(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
        for task in list(self._background):
            task.cancel()
        self.calls.close()


def _candidate(node: NodeState) -> Candidate:
    """The node by its ordinary resources (bundles' own names are no room for another group)."""
    ordinary = {k: v for k, v in node.available.items() if "_group_" not in k}
    return Candidate(node.node_id, ordinary, node.total, dict(node.info.labels))
