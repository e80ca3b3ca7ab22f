"""Where memory went: every live object, where its copies are and why it is alive.

``ember memory``, ``ember.util.state.memory_summary`` and the dashboard's *memory* tab read
the same answer (``ClusterObjects``: what every driver and worker says it holds and why, and
what every node's object store holds) and join it here, one entry per object: its size, its
owner (address, pid, node, job), its copies (in which nodes' stores, spilled or not; in which
processes' memory), the processes that keep it and why, and the line that made it when call
sites are recorded. Objects are then grouped (by the owner's node, the owner, or the call
site) with totals that add up to the overall total: each object counts once, in its group.

A pure function of the messages, so the client and the head (which imports no client code)
share it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ember.runtime.wire.protocol import ember_pb2 as pb

GROUP_BY = ("node", "owner", "call_site")
SORT_BY = ("size", "object_id", "pid", "reference_type")
# Ray's names for them (``ray memory --group-by NODE_ADDRESS``), taken as well.
RAY_NAMES = {
    "NODE_ADDRESS": "node", "STACK_TRACE": "call_site",
    "OBJECT_SIZE": "size", "PID": "pid", "REFERENCE_TYPE": "reference_type",
}
UNITS = {"B": 1, "KB": 1000, "MB": 1000**2, "GB": 1000**3}  # decimal, as the names say

ACTOR_HANDLE = "ACTOR_HANDLE"
STORE_ONLY = "STORE_ONLY"  # in a node's store, and no process said it holds it
UNKNOWN = "(unknown)"
# The order reasons are told in: what the program holds first, what ember keeps last.
REASON_ORDER = (
    "LOCAL_REFERENCE", "USED_BY_PENDING_TASK", "CAPTURED_IN_OBJECT", "BORROWED", "LINEAGE",
    STORE_ONLY,
)


class MemoryReportError(ValueError):
    """A grouping, order or unit ``ember memory`` does not know."""


@dataclass
class Holder:
    """One process that keeps an object, and why (its ``ObjectView``)."""

    pid: int
    kind: str  # DRIVER, WORKER
    address: str
    node_id: str
    reference_type: str
    reasons: list[str]
    borrowers: list[str] = field(default_factory=list)
    pending_tasks: list[str] = field(default_factory=list)
    captured_in: list[str] = field(default_factory=list)


@dataclass
class Copy:
    """Where the object's bytes are: a node's shared-memory store, or a process's memory."""

    node_id: str
    node_address: str = ""
    spilled: bool = False
    primary: bool = True  # the first copy, not one pulled from another node
    pid: int = 0  # set for a (small) value held in a process's own memory

    def describe(self) -> str:
        if self.pid:
            return f"memory of pid {self.pid}"
        where = f"store of node {self.node_id[:12]}"
        return where + (" (spilled)" if self.spilled else "") + ("" if self.primary else " (copy)")


@dataclass
class MemoryObject:
    object_id: str
    size: int  # bytes; -1 when nobody who was asked knows yet
    owner_address: str
    owner_pid: int
    owner_kind: str
    owner_node: str
    owner_job: str
    call_site: str
    task_status: str
    reasons: list[str]
    copies: list[Copy]
    holders: list[Holder]

    def why(self) -> str:
        """The reasons in words, with who: ``BORROWED by pid 123 (addr)``."""
        words = []
        for reason in self.reasons:
            if reason == "BORROWED":
                borrowers = sorted({b for h in self.holders for b in h.borrowers})
                words.append(f"BORROWED by {', '.join(borrowers)}")
            elif reason == "USED_BY_PENDING_TASK":
                tasks = sorted({t.split(" ")[0] for h in self.holders for t in h.pending_tasks})
                words.append(f"USED_BY_PENDING_TASK {', '.join(tasks)}".rstrip())
            else:
                who = sorted({f"{h.kind.lower()} pid {h.pid}" for h in self.holders if reason in h.reasons})
                words.append(reason + (f" ({', '.join(who)})" if who else ""))
        return "; ".join(words)


@dataclass
class MemoryGroup:
    key: str
    objects: list[MemoryObject]
    total_size: int  # bytes of the objects whose size is known
    by_reason: dict[str, list[int]]  # reason -> [objects, bytes]


@dataclass
class NodeStoreStats:
    node_id: str
    node_address: str
    capacity: int
    used: int
    spilled: int
    objects: int


@dataclass
class MemoryReport:
    group_by: str
    sort_by: str
    groups: list[MemoryGroup]
    total_size: int
    total_objects: int
    stores: list[NodeStoreStats]
    actor_handles: int
    problems: list[str]  # what could not be asked, or was left out

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _known(size: int) -> int:
    return size if size > 0 else 0


def option(name: str) -> str:
    """A grouping or order as ember names it, given ember's name or Ray's."""
    return RAY_NAMES.get(name, name)


def check_options(group_by: str, sort_by: str, units: str = "B") -> None:
    if group_by not in GROUP_BY:
        raise MemoryReportError(f"group_by must be one of {', '.join(GROUP_BY)}, not {group_by!r}")
    if sort_by not in SORT_BY:
        raise MemoryReportError(f"sort_by must be one of {', '.join(SORT_BY)}, not {sort_by!r}")
    if units.upper() not in UNITS:
        raise MemoryReportError(f"units must be one of {', '.join(UNITS)}, not {units!r}")


def build(listing: pb.ClusterObjects, group_by: str = "node", sort_by: str = "size") -> MemoryReport:
    """Join what processes and stores said into one entry per object, grouped and sorted."""
    check_options(group_by, sort_by)
    problems = list(listing.errors)
    processes = {p.address: p for p in listing.processes if not p.error}
    problems += [p.error for p in listing.processes if p.error]
    problems += [
        f"pid {p.pid} holds {p.omitted} more references than it lists"
        for p in listing.processes if p.omitted
    ]
    problems += [
        f"node {s.node_id.hex()[:12]} holds {s.omitted} more objects than it lists"
        for s in listing.stores if s.omitted
    ]
    views: dict[bytes, list[tuple[pb.ProcessObjects, pb.ObjectView]]] = {}
    handles = 0
    for process in processes.values():
        for view in process.objects:
            if view.reference_type == ACTOR_HANDLE:
                handles += 1
            else:
                views.setdefault(view.object_id, []).append((process, view))
    stored: dict[bytes, list[tuple[pb.NodeStore, pb.StoredObject]]] = {}
    for store in listing.stores:
        for entry in store.objects:
            stored.setdefault(entry.object_id, []).append((store, entry))
    objects = [
        _object(object_id, views.get(object_id, []), stored.get(object_id, []), processes)
        for object_id in dict.fromkeys([*views, *stored])
    ]
    groups: dict[str, list[MemoryObject]] = {}
    node_names = {s.node_id.hex(): s.node_address for s in listing.stores}
    for found in objects:
        groups.setdefault(_group_key(found, group_by, node_names), []).append(found)
    report_groups = [_group(key, members, sort_by) for key, members in groups.items()]
    report_groups.sort(key=lambda g: (-g.total_size, g.key))
    return MemoryReport(
        group_by=group_by, sort_by=sort_by, groups=report_groups,
        total_size=sum(g.total_size for g in report_groups),
        total_objects=len(objects),
        stores=[
            NodeStoreStats(
                s.node_id.hex(), s.node_address, s.capacity, s.used, s.spilled, len(s.objects)
            )
            for s in listing.stores
        ],
        actor_handles=handles, problems=problems,
    )


def _object(
    object_id: bytes,
    views: list[tuple[pb.ProcessObjects, pb.ObjectView]],
    stored: list[tuple[pb.NodeStore, pb.StoredObject]],
    processes: dict[str, pb.ProcessObjects],
) -> MemoryObject:
    owner_address = (
        views[0][1].owner_address if views else stored[0][1].owner_address if stored else ""
    )
    owner = processes.get(owner_address)
    owner_view = next((v for p, v in views if p.address == owner_address), None)
    size = owner_view.size if owner_view is not None else -1
    if size < 0:
        size = max((v.size for _, v in views), default=-1)
    if size < 0 and stored:
        size = max(entry.size for _, entry in stored)  # the store's range, rounded up
    holders = [
        Holder(
            pid=p.pid, kind=p.kind, address=p.address, node_id=p.node_id.hex(),
            reference_type=v.reference_type, reasons=list(v.reasons),
            borrowers=[_who(b, processes) for b in v.borrowers],
            pending_tasks=list(v.pending_tasks), captured_in=[c.hex() for c in v.captured_in],
        )
        for p, v in views
    ]
    reasons = {r for h in holders for r in h.reasons}
    if not reasons:
        reasons = {h.reference_type for h in holders} if holders else {STORE_ONLY}
    copies = [
        Copy(s.node_id.hex(), s.node_address, entry.spilled, entry.primary) for s, entry in stored
    ]
    copies += [Copy(p.node_id.hex(), pid=p.pid) for p, v in views if v.in_memory_store]
    call_site = owner_view.call_site if owner_view is not None and owner_view.call_site else UNKNOWN
    return MemoryObject(
        object_id=object_id.hex(), size=size, owner_address=owner_address,
        owner_pid=owner.pid if owner is not None else 0,
        owner_kind=owner.kind if owner is not None else UNKNOWN,
        owner_node=owner.node_id.hex() if owner is not None else "",
        owner_job=owner.job_id.hex() if owner is not None else "",
        call_site=call_site,
        task_status=owner_view.task_status if owner_view is not None else UNKNOWN,
        reasons=[r for r in REASON_ORDER if r in reasons] + sorted(reasons - set(REASON_ORDER)),
        copies=copies, holders=holders,
    )


def _who(address: str, processes: dict[str, pb.ProcessObjects]) -> str:
    process = processes.get(address)
    if process is None:
        return address
    return f"{process.kind.lower()} pid {process.pid} ({address})"


def _group_key(entry: MemoryObject, group_by: str, node_names: dict[str, str]) -> str:
    if group_by == "call_site":
        return entry.call_site
    if group_by == "owner":
        if not entry.owner_pid:
            return f"owner {entry.owner_address or UNKNOWN} (not asked, or gone)"
        return f"{entry.owner_kind.lower()} pid {entry.owner_pid} ({entry.owner_address})"
    if not entry.owner_node:
        return f"node {UNKNOWN}"
    address = node_names.get(entry.owner_node, "")
    return f"node {entry.owner_node[:12]}" + (f" ({address})" if address else "")


def _group(key: str, members: list[MemoryObject], sort_by: str) -> MemoryGroup:
    by_reason: dict[str, list[int]] = {}
    for entry in members:
        for reason in entry.reasons:
            tally = by_reason.setdefault(reason, [0, 0])
            tally[0] += 1
            tally[1] += _known(entry.size)
    members.sort(key=_sort_key(sort_by))
    return MemoryGroup(key, members, sum(_known(e.size) for e in members), by_reason)


def _sort_key(sort_by: str) -> Any:
    if sort_by == "object_id":
        return lambda e: e.object_id
    if sort_by == "pid":
        return lambda e: (e.owner_pid, e.object_id)
    if sort_by == "reference_type":
        return lambda e: (e.reasons[0] if e.reasons else "", -e.size, e.object_id)
    return lambda e: (-e.size, e.object_id)


# ------------------------------------------------------------------------------ as text


def size_text(size: int, units: str) -> str:
    if size < 0:
        return "?"
    unit = units.upper()
    if unit == "B":
        return f"{size} B"
    return f"{size / UNITS[unit]:.2f} {unit}"


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]


def text(report: MemoryReport, units: str = "B", num_entries: int | None = None) -> str:
    """The report as ``ember memory`` prints it: per group a summary line, then its objects."""
    check_options(report.group_by, report.sort_by, units)
    lines = [
        f"======== Objects in the cluster: {report.total_objects} objects, "
        f"{size_text(report.total_size, units)} ========",
        f"Grouped by {report.group_by}, sorted by {report.sort_by}.",
    ]
    for group in report.groups:
        lines += ["", f"--- {group.key}: {len(group.objects)} objects, {size_text(group.total_size, units)} ---"]
        lines.append("    " + ", ".join(
            f"{reason} {count} ({size_text(size, units)})"
            for reason, (count, size) in sorted(group.by_reason.items(), key=lambda kv: _reason_rank(kv[0]))
        ))
        shown = group.objects if num_entries is None else group.objects[:num_entries]
        rows = [["OBJECT ID", "SIZE", "OWNER", "STATUS", "COPIES", "WHY ALIVE", "CALL SITE"]]
        rows += [
            [
                e.object_id, size_text(e.size, units),
                f"{e.owner_kind.lower()} pid {e.owner_pid}" if e.owner_pid else e.owner_address or UNKNOWN,
                e.task_status, ", ".join(c.describe() for c in e.copies) or "-", e.why(), e.call_site,
            ]
            for e in shown
        ]
        lines += ["    " + line for line in _table(rows)]
        if len(shown) < len(group.objects):
            lines.append(f"    ... and {len(group.objects) - len(shown)} more")
    lines += ["", "--- Object stores ---"]
    for store in report.stores:
        lines.append(
            f"node {store.node_id[:12]} ({store.node_address}): {store.objects} objects, "
            f"{size_text(store.used, units)} in memory of {size_text(store.capacity, units)}, "
            f"{size_text(store.spilled, units)} spilled"
        )
    if report.actor_handles:
        lines.append(f"actor handles held: {report.actor_handles}")
    if any(e.call_site == "disabled" for g in report.groups for e in g.objects):
        lines.append(
            "To record where each object was made, set EMBER_RECORD_CALL_SITES=1 where the "
            "program runs."
        )
    for problem in report.problems:
        lines.append(f"warning: {problem}")
    return "\n".join(lines)


def _reason_rank(reason: str) -> tuple[int, str]:
    return (REASON_ORDER.index(reason) if reason in REASON_ORDER else len(REASON_ORDER), reason)
