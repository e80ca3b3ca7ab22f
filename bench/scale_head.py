"""ember's head in this process, with simulated nodes: what each of its handlers costs per
node at sizes no machine here could start as processes (the ``head_tables`` scenario).

The nodes are async generators fed to ``Head.NodeSession`` as an agent's stream would be, and
the head's writes to them are counted, not sent: what is timed is the head's own work, without
gRPC or the network (``nodes`` in ``scale_workloads`` measures those on a live cluster).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from typing import Any

Emit = Callable[[dict[str, Any]], None]


def head_tables(system: str, sizes: list[int], options: dict[str, Any], emit: Emit) -> None:
    """ember's head, in this process, with N simulated nodes: what its handlers cost per node,
    without the network (the live cluster's figures in ``nodes`` add gRPC and the machine).

    Each node registers through ``Head.NodeSession`` as an agent would, then reports; the
    handlers timed are the report's, ``GetClusterView`` (``ember status``), ``GetDemand`` (the
    autoscaler, every second) and the placement a spilled lease asks for (``FindNode``)."""
    import logging
    import shutil
    import tempfile

    from ember.runtime.head.head import Head
    from ember.runtime.wire.protocol import ember_pb2 as pb

    logging.getLogger("ember").setLevel(logging.ERROR)
    for size in sizes:
        scratch = tempfile.mkdtemp(prefix="ember-head-tables-")
        try:
            emit({"size": size, **asyncio.run(_head_tables(Head(scratch), pb, size))})
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


async def _head_tables(head: Any, pb: Any, size: int, reports: int = 5) -> dict[str, float]:
    written = [0]
    gone = [0, 0]  # owners_gone messages the head wrote, and the dead workers they named

    class Context:
        async def write(self, message: Any) -> None:
            written[0] += 1
            if message.HasField("owners_gone"):
                gone[0] += 1
                gone[1] += len(message.owners_gone.addresses)

    def address(i: int) -> str:
        return f"10.{i // 62500}.{i // 250 % 250}.{i % 250}"

    def register(i: int) -> Any:
        return pb.NodeMessage(register=pb.NodeInfo(
            node_id=os.urandom(28), address=f"{address(i)}:7000", host=address(i),
            hostname=f"node-{i}",  # its metrics port comes in its first report, as an agent's
            total=pb.ResourceSet(quantities={
                "CPU": 8.0, "memory": 32e9, "object_store_memory": 8e9, f"node:{address(i)}": 1.0,
            }),
        ))

    def report(i: int) -> Any:
        pending = [pb.ResourceDemand(shape=pb.ResourceSet(quantities={"CPU": 1.0}), count=i % 3)]
        return pb.NodeMessage(report=pb.NodeReport(
            available=pb.ResourceSet(quantities={"CPU": float(i % 8), "memory": 16e9}),
            num_workers=8, num_leases=i % 8, pending=pending if i % 2 else [],
            metrics_port=9000,
        ))

    inboxes: list[asyncio.Queue[Any]] = []

    async def session(i: int) -> None:
        inbox: asyncio.Queue[Any] = asyncio.Queue()
        inboxes.append(inbox)

        async def messages() -> Any:
            yield register(i)
            while (message := await inbox.get()) is not None:
                yield message  # the head handles it before it asks for the next one
                inbox.task_done()

        await head.NodeSession(messages(), Context())  # its writes: the head's orders to it

    start = time.perf_counter()
    sessions = [asyncio.ensure_future(session(i)) for i in range(size)]
    while len(head.nodes) < size:
        await asyncio.sleep(0.001)
    joined = time.perf_counter() - start
    messages = [report(i) for i in range(size)]

    async def report_round() -> float:
        begin = time.perf_counter()
        for inbox, message in zip(inboxes, messages, strict=True):
            inbox.put_nowait(message)
        await asyncio.gather(*(inbox.join() for inbox in inboxes))
        return time.perf_counter() - begin

    first = await report_round()  # each node's first report names its metrics port
    per_report = sum([await report_round() for _ in range(reports)]) / (size * reports)

    async def timed(call: Callable[[], Any], repeat: int = 7) -> tuple[float, Any]:
        times, result = [], None
        for _ in range(repeat):
            begin = time.perf_counter()
            result = await call()
            times.append(time.perf_counter() - begin)
        return sorted(times)[repeat // 2], result

    view_s, view = await timed(lambda: head.GetClusterView(pb.Empty(), None))
    demand_s, demand = await timed(lambda: head.GetDemand(pb.Empty(), None))

    async def place() -> Any:
        return head.place({"CPU": 10_000})

    place_s, _ = await timed(place, 21)
    # A tenth of the nodes report a dead worker (a job ended there): what each report costs.
    reporters = max(1, size // 10)
    start = time.perf_counter()
    for i in range(reporters):
        message = report(i)
        message.report.dead_workers.append(f"{address(i)}:{40000 + i}")
        inboxes[i].put_nowait(message)
    await asyncio.gather(*(inbox.join() for inbox in inboxes[:reporters]))
    head.close()  # what the head still owes the nodes (announced within a second) goes now
    while gone[1] < reporters * (size - 1):
        await asyncio.sleep(0.001)  # the head's writers pass its orders on
    dead_worker = (time.perf_counter() - start) / reporters
    start = time.perf_counter()
    for inbox in inboxes:
        inbox.put_nowait(None)
    await asyncio.gather(*sessions, return_exceptions=True)
    head.close()  # the departures' last rewrite of the metrics targets, owed for up to a second
    left = time.perf_counter() - start
    return {
        "join_us_per_node": joined / size * 1e6,
        "first_report_us_per_node": first / size * 1e6,
        "report_us": per_report * 1e6,
        "view_us_per_node": view_s / size * 1e6,
        "demand_us_per_node": demand_s / size * 1e6,
        "place_us_per_node": place_s / size * 1e6,
        "leave_us_per_node": left / size * 1e6,
        "dead_worker_report_us": dead_worker * 1e6,
        "owners_gone_messages_per_node": gone[0] / size,
        "view_bytes_per_node": view.ByteSize() / size,
        "demand_bytes_per_node": demand.ByteSize() / size,
    }
