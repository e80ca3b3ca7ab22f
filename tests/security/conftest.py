"""What the security tests share: a local cluster whose processes may open few descriptors, and
a look at a process's memory, threads and descriptors from /proc.

Every test here plays a caller that reaches a port without the cluster's token (or, where said,
with it), on loopback, and checks that the process it targets still serves and stayed within
bounds: no wall-clock assertion, only "still alive", "still answers" and figures read from /proc.
"""

from __future__ import annotations

import os
import resource
import socket
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

import ember
from ember import connection
from ember.runtime.core import context
from ember.runtime.wire.protocol import ember_pb2 as pb
from tests.conftest import wait_until_gone

# The cluster's processes may open this many descriptors: a flood of a few thousand connections
# would exhaust them, and the test process (which keeps its own limit) can open that many.
CLUSTER_DESCRIPTORS = 512


@dataclass(frozen=True)
class Usage:
    rss_kib: int
    peak_kib: int
    threads: int
    descriptors: int


def usage(pid: int) -> Usage:
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            name, _, value = line.partition(":")
            fields[name] = value.split()[0] if value.split() else ""
    return Usage(
        rss_kib=int(fields["VmRSS"]), peak_kib=int(fields["VmHWM"]), threads=int(fields["Threads"]),
        descriptors=len(os.listdir(f"/proc/{pid}/fd")),
    )


def reset_peak(pid: int) -> None:
    """Start ``pid``'s peak resident size (VmHWM) afresh from its current size."""
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def cluster_pids() -> tuple[int, int]:
    """The head's and the node agent's pids, of the cluster ``init`` started."""
    state = connection._state
    assert state is not None and state.processes is not None
    head, agent = state.processes.processes[:2]
    return head.pid, agent.pid


def actor_info(class_name: str, pid: int = 0) -> pb.ActorInfo:
    """The live actor of that class (the one in process ``pid`` when given: an earlier test's
    actor of the same class may still be on its way out, alive for a moment longer)."""
    core = context.require_core()

    async def ask() -> pb.ActorList:
        return await core.channels.head(core.head_address).ListActors(pb.Empty())

    return next(
        a for a in core.io.run(ask()).actors
        if a.class_name == class_name and a.state == pb.ALIVE and (not pid or a.pid == pid)
    )


def split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def flood(address: str, count: int) -> list[socket.socket]:
    """``count`` connections to ``address`` that send nothing (connected in the background: the
    server's backlog decides how many complete)."""
    sockets = []
    for _ in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.connect_ex(split(address))
        sockets.append(sock)
    return sockets


def close_all(sockets: list[socket.socket]) -> None:
    for sock in sockets:
        sock.close()


@pytest.fixture(scope="module")
def few_descriptors() -> Iterator[object]:
    """A local cluster whose head, node agent and workers may each open only
    ``CLUSTER_DESCRIPTORS`` descriptors; this process keeps its own limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (CLUSTER_DESCRIPTORS, hard))
    try:
        ctx = ember.init(num_cpus=2)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    try:
        yield ctx
    finally:
        ember.shutdown()
    assert wait_until_gone(ctx.session_dir) == []
