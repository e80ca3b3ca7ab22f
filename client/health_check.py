"""``ember health``: is what ``ember start`` runs here alive and answering? Exit 0 or 1.

A container's health check (Docker's ``HEALTHCHECK``, a Kubernetes exec probe) needs a command
that fails when the node is wedged, not only when its process is gone: a head or node agent
whose event loop is stuck still holds its port open, so a TCP probe would pass. This asks each
of them one cheap authenticated RPC (the head its cluster view, the agent its store info),
with a deadline, and checks that every process ``ember start`` recorded still runs. A node
agent that answers but whose object store is broken (``object_store.py``) is unhealthy too:
it can no longer store what its tasks return.
"""

from __future__ import annotations

import asyncio
import glob
import json
import os
from dataclasses import dataclass, field

import grpc

from ember.runtime import session
from ember.runtime.objects import ids
from ember.runtime.wire import rpc
from ember.runtime.wire.protocol import ember_pb2 as pb


@dataclass
class Target:
    """What one ``ember start`` left running here (from its record), or what was named."""

    source: str
    head: str = ""
    agent: str = ""
    pids: list[int] = field(default_factory=list)


@dataclass
class Finding:
    ok: bool
    text: str


def recorded_targets() -> list[Target]:
    """The heads and node agents ``ember start`` (and ``ember up``) recorded on this machine."""
    targets = []
    for path in sorted(glob.glob(os.path.join(session.started_dir(), "*.json"))):
        try:
            with open(path) as f:
                record = json.load(f)
        except (OSError, ValueError):
            continue
        targets.append(Target(
            source=path,
            head=str(record.get("address", "")).removeprefix("ember://"),
            agent=str(record.get("agent_address", "")),
            pids=[int(pid) for pid in record.get("pids", [])],
        ))
    return targets


def check(targets: list[Target], timeout: float) -> list[Finding]:
    """One finding per process and server; all run at once, each within ``timeout``."""
    return asyncio.run(_check(targets, timeout))


async def _check(targets: list[Target], timeout: float) -> list[Finding]:
    channels = rpc.Channels()
    try:
        asks = []
        findings = []
        for target in targets:
            for pid in target.pids:
                alive = _running(pid)
                findings.append(Finding(alive, f"process {pid} ({target.source}) "
                                               f"{'runs' if alive else 'is gone'}"))
            if target.head:
                asks.append(_ask_head(channels, target.head, timeout))
            if target.agent:
                asks.append(_ask_agent(channels, target.agent, timeout))
        return findings + list(await asyncio.gather(*asks))
    finally:
        await channels.close()


async def _ask_head(channels: rpc.Channels, address: str, timeout: float) -> Finding:
    try:
        view = await channels.head(address).GetClusterView(pb.Empty(), timeout=timeout)
    except grpc.aio.AioRpcError as error:
        return Finding(False, f"head {address} does not answer: {_why(error, timeout)}")
    alive = sum(1 for node in view.nodes if node.alive)
    return Finding(True, f"head {address} answers ({alive} node{'s' if alive != 1 else ''} alive)")


async def _ask_agent(channels: rpc.Channels, address: str, timeout: float) -> Finding:
    try:
        info = await channels.node_agent(address).GetStoreInfo(pb.Empty(), timeout=timeout)
    except grpc.aio.AioRpcError as error:
        return Finding(False, f"node agent {address} does not answer: {_why(error, timeout)}")
    if info.broken:
        return Finding(False, f"node {ids.short(info.node_id)} (node agent {address}): its object "
                              f"store is broken and takes no new objects: {info.broken}")
    return Finding(True, f"node agent {address} answers")


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return False


def _why(error: grpc.aio.AioRpcError, timeout: float) -> str:
    if error.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
        return f"no answer within {timeout:g}s"
    if error.code() == grpc.StatusCode.UNAUTHENTICATED:
        return "the token was refused (set EMBER_TOKEN or EMBER_TOKEN_FILE to the cluster's)"
    return f"{error.code().name}: {error.details()}"
