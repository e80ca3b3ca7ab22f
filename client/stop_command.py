"""``ember stop`` and ``ember down``: stop what ``ember start`` and ``ember up`` left running on
this machine, and say what that was — which cluster, its head, how many nodes.

Each ``ember start`` and ``ember up`` left a record (``ember.runtime.session``): the processes to
signal, which of them is a head, and the nodes (``ember up`` keeps its list current as the
autoscaler adds and removes nodes). ``ember up`` is stopped through its own process, which stops
its nodes; whatever of a record still runs after that (an ``ember up`` that was killed) is
stopped directly, so nothing is left behind.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from ember.runtime import launcher, session

LEFTOVER_WAIT = 2.0  # seconds for processes that outlived what stopped them


@dataclass
class Stopped:
    """What stopping one record did."""

    text: str
    heads: int = 0
    nodes: int = 0


def run(grace_period: float) -> int:
    records = session.started_records()
    results = []
    for path, record in records:
        results.append(stop_record(record, grace_period))
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
    try:
        os.unlink(session.current_cluster_file())
    except FileNotFoundError:
        pass
    if not results:
        print("Nothing to stop: ember start and ember up left nothing running here.")
        return 0
    for result in results:
        print(result.text)
    if sum(1 for r in results if r.heads or r.nodes) > 1:
        heads = sum(r.heads for r in results)
        nodes = sum(r.nodes for r in results)
        print(f"In all: {_count(heads, 'head')} and {_count(nodes, 'node')}.")
    return 0


def stop_record(record: dict[str, Any], grace_period: float) -> Stopped:
    """Stop what one record names; a line saying what it was, with the heads and nodes that
    were running."""
    nodes = [
        (str(node.get("name", "")), [int(pid) for pid in node.get("pids", [])])
        for node in record.get("nodes", [])
    ]
    head_pids = [int(pid) for pid in record.get("head_pids", [])]
    signalled = [int(pid) for pid in record.get("pids", [])]
    head_ran = bool(launcher.running(head_pids))
    nodes_ran = [name for name, pids in nodes if launcher.running(pids)]
    stopped = launcher.stop_pids(signalled, timeout=grace_period)
    leftovers = [pid for _, pids in nodes for pid in pids] + head_pids
    launcher.stop_pids(leftovers, timeout=LEFTOVER_WAIT)

    kind = record.get("kind", "")
    address = record.get("address", "")
    if kind == "up":
        subject = f"cluster {record.get('name', '')!r} at {address} (ember up)"
    elif kind == "head":
        subject = f"the cluster at {address} (ember start --head)"
    elif kind == "agent":
        subject = f"a node that had joined {record.get('joined', 'a head')} (ember start --address)"
    else:  # a record written before records said what they hold
        count = len(stopped)
        if not count:
            return Stopped(f"The processes of {record.get('session_dir', 'a session')} had "
                           "already stopped.")
        return Stopped(f"Stopped {count} ember process{'es' if count != 1 else ''} of "
                       f"{record.get('session_dir', 'a session')}.")
    if not stopped and not head_ran and not nodes_ran:
        return Stopped(f"{subject[0].upper()}{subject[1:]} had already stopped.")
    parts = []
    if head_ran:
        parts.append("its head")
    if nodes_ran:
        parts.append(f"{_count(len(nodes_ran), 'node')} ({', '.join(nodes_ran)})")
    what = " and ".join(parts) or _count(len(stopped), "process")
    return Stopped(f"Stopped {subject}: {what}.", int(head_ran), len(nodes_ran))


def _count(n: int, noun: str) -> str:
    plural = noun + ("es" if noun.endswith("s") else "s")
    return f"{n} {noun if n == 1 else plural}"
