"""The operator's conversation with a cluster's head: drain a worker pod before deleting it.

The operator is a client of the head like any other (``ember drain`` does the same), so it
speaks only the wire protocol (``ember.runtime.protocol``), never the runtime's internals, and
presents the cluster's token from its Secret. Worker pods start their node agent with the labels
``{"ember.dev/pod": <pod>, "ember.dev/group": <group>}``; that is how a pod name becomes a node
of the head's view.

A pod is *drained* once the head reports its node DRAINED, or once the node is no longer a live
member (it left, or never joined): either way nothing on it can be lost by deleting the pod.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import grpc
from grpc import aio

from ember.runtime.protocol import ember_pb2 as pb
from ember.runtime.protocol import ember_pb2_grpc as rpc

POD_LABEL = "ember.dev/pod"
# The runtime checks ``authorization: Bearer <token>`` on every call (ember.runtime.auth).
TOKEN_METADATA_KEY = "authorization"
CALL_TIMEOUT = 5.0
# Running tasks get this long on a drained node, then stop and are retried on other nodes: a
# roll or a scale-down must end even when a task never does.
DRAIN_DEADLINE_SECONDS = 300.0
DEFAULT_CLIENT_PORT = 10001

log = logging.getLogger("ember.operator.head")


class HeadUnreachable(Exception):
    """The head did not answer (down, starting, suspended, or refusing our token)."""


@dataclass(frozen=True)
class DrainState:
    drained: frozenset[str]  # pods whose node is drained, or that are no live node of the head
    draining: frozenset[str]  # pods whose node is live and not drained (yet)


class HeadClient:
    """One connection to one cluster's head, for one reconcile pass (``async with``)."""

    def __init__(self, cluster: str, address: str, token: str, timeout: float = CALL_TIMEOUT) -> None:
        self.cluster = cluster  # "namespace/name", for messages
        self.address = address
        self.timeout = timeout
        self._metadata = ((TOKEN_METADATA_KEY, f"Bearer {token}"),) if token else ()
        self._channel: aio.Channel | None = None
        self._head: rpc.HeadStub | None = None

    async def __aenter__(self) -> HeadClient:
        self._channel = aio.insecure_channel(self.address)
        self._head = rpc.HeadStub(self._channel)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._channel is not None:
            await self._channel.close()

    async def nodes_of(self, pods: set[str] | frozenset[str]) -> dict[str, pb.NodeView]:
        """The head's node for each pod that is (or was) one; a live node wins over a dead one
        that had the same pod name (a pod restarted in place)."""
        view = await self._ask("GetClusterView", pb.Empty())
        found: dict[str, pb.NodeView] = {}
        for node in view.nodes:
            pod = node.info.labels.get(POD_LABEL, "")
            if pod in pods and (pod not in found or node.alive or not found[pod].alive):
                found[pod] = node
        return found

    async def drain_state(self, pods: set[str] | frozenset[str]) -> DrainState:
        nodes = await self.nodes_of(pods)
        drained = {
            pod for pod in pods
            if pod not in nodes or not nodes[pod].alive or nodes[pod].drain_state == pb.DRAINED
        }
        return DrainState(drained=frozenset(drained), draining=frozenset(set(pods) - drained))

    async def drain(self, pod: str, reason: str) -> bool:
        """Ask the head to drain the pod's node; True when this call started the drain (False:
        it was draining already, or it is no live node, so there is nothing to drain)."""
        node = (await self.nodes_of({pod})).get(pod)
        if node is None or not node.alive:
            return False
        reply = await self._ask("DrainNode", pb.DrainRequest(
            node_id=node.info.node_id, deadline_seconds=DRAIN_DEADLINE_SECONDS, reason=reason,
        ))
        if not reply.accepted:  # the node died meanwhile: nothing left to drain
            log.info("cluster %s: the head did not drain pod %s: %s", self.cluster, pod,
                     reply.rejection_reason)
            return False
        return not reply.already_draining

    async def demand(self) -> pb.Demand:
        """What waits for resources, what was requested, and every live node's load."""
        return await self._ask("GetDemand", pb.Empty())

    async def set_node_types(self, shapes: Iterable[Mapping[str, float]]) -> None:
        """The shapes of node the autoscaler may add: work that fits one waits instead of
        failing as infeasible."""
        await self._ask("SetNodeTypes", pb.NodeTypes(
            shapes=[pb.ResourceSet(quantities=dict(shape)) for shape in shapes]
        ))

    async def _ask(self, method: str, request: object) -> Any:
        assert self._head is not None, "use HeadClient in 'async with'"
        try:
            return await getattr(self._head, method)(
                request, timeout=self.timeout, metadata=self._metadata
            )
        except aio.AioRpcError as error:
            raise HeadUnreachable(
                f"the head of cluster {self.cluster} at {self.address} answered {method} with "
                f"{error.code().name}: {error.details()}"
            ) from None
        except grpc.RpcError as error:  # pragma: no cover - aio raises AioRpcError
            raise HeadUnreachable(
                f"the head of cluster {self.cluster} at {self.address}: {error}"
            ) from None


def head_of(
    cluster: str,
    spec: Mapping[str, Any],
    pods: Iterable[Mapping[str, Any]],
    secret: Mapping[str, Any] | None,
) -> HeadClient:
    """A client of the cluster's head at its pod's IP (the operator runs in the cluster, and a
    pod IP needs no DNS), with the token of the cluster's Secret."""
    head_pods = [
        p for p in pods
        if (p.get("metadata", {}).get("labels") or {}).get("ember.dev/node-type") == "head"
        and not p.get("metadata", {}).get("deletionTimestamp")
    ]
    ip = (head_pods[0].get("status") or {}).get("podIP") if head_pods else None
    if not ip:
        raise HeadUnreachable(f"cluster {cluster} has no running head pod")
    port = ((spec.get("head") or {}).get("ports") or {}).get("client", DEFAULT_CLIENT_PORT)
    return HeadClient(cluster, f"{ip}:{port}", token_of(secret))


def token_of(secret: Mapping[str, Any] | None) -> str:
    """The ``token`` key of the cluster's Secret ("" when absent or unreadable)."""
    data = (secret or {}).get("data") or {}
    try:
        return base64.b64decode(data.get("token", "")).decode().strip()
    except (binascii.Error, UnicodeDecodeError):
        return ""
