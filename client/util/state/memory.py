"""``memory_report`` and ``memory_summary``: where the cluster's memory went, object by object
(``ray memory``'s answer, and ``ray._private.internal_api.memory_summary``'s text).

    from ember.util.state import memory_report, memory_summary
    print(memory_summary(group_by="owner", units="MB"))
    report = memory_report(group_by="call_site")
    report.groups[0].key, report.groups[0].total_size

Every driver and worker is asked what it holds and why, and every node's store what it holds,
when the call is made (``list_objects``' question); ``memory_report.build`` joins the answers.
A process or node that cannot be asked is named in ``report.problems`` (and warned about in
the text) rather than failing the call: memory is what people look at when things go wrong.
"""

from __future__ import annotations

from ember.runtime.objects import memory_report as report_module
from ember.runtime.objects.memory_report import MemoryReport
from ember.runtime.wire.protocol import ember_pb2 as pb
from ember.util.state import head_query

DEFAULT_TIMEOUT = 30


def memory_report(
    address: str | None = None,
    group_by: str = "node",
    sort_by: str = "size",
    timeout: float = DEFAULT_TIMEOUT,
) -> MemoryReport:
    """Every live object (size, owner, copies, why it is alive, call site), grouped by
    ``group_by`` (``node``: the owner's node, ``owner``, or ``call_site``) and sorted by
    ``sort_by`` (``size``, largest first; ``object_id``; ``pid`` of the owner;
    ``reference_type``), with totals per group and overall. Ray's names (``NODE_ADDRESS``,
    ``STACK_TRACE``, ``OBJECT_SIZE``, ``PID``, ``REFERENCE_TYPE``) are taken too."""
    group_by, sort_by = report_module.option(group_by), report_module.option(sort_by)
    report_module.check_options(group_by, sort_by)
    reply: pb.ClusterObjects = head_query.ask("ListObjects", pb.Empty(), address, timeout)
    return report_module.build(reply, group_by, sort_by)


def memory_summary(
    address: str | None = None,
    group_by: str = "node",
    sort_by: str = "size",
    units: str = "B",
    num_entries: int | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> str:
    """``memory_report`` as the text ``ember memory`` prints; sizes in ``units`` (B, KB, MB,
    GB: powers of 1000), at most ``num_entries`` objects per group."""
    group_by, sort_by = report_module.option(group_by), report_module.option(sort_by)
    report_module.check_options(group_by, sort_by, units)
    if num_entries is not None and num_entries < 0:
        raise report_module.MemoryReportError(f"num_entries must be 0 or more, not {num_entries}")
    return report_module.text(memory_report(address, group_by, sort_by, timeout), units, num_entries)
