"""The operator's conversation with a cluster's head: drain a worker pod before deleting it,
and submit, follow and stop an EmberJob's job (``Jobs``), uploading its ConfigMap working_dir.

The operator is a client of the head like any other (``ember drain`` does the same), so it
speaks only the wire protocol (``ember.runtime.wire.protocol``), never the runtime's internals, and
presents the cluster's token from its Secret. When the cluster runs TLS (``spec.tls.secretName``)
the operator dials its head with the cluster's own TLS material, read from that Secret through
the API: the CA to check the head by, and the certificate and key every pod of the cluster
presents (the head asks each caller for one: mutual TLS, see ``ember.runtime.wire.tls``). Without
TLS the token crosses the pod network in clear on every pass; the cluster's NetworkPolicy
limits who can see it. Worker pods start their node agent with the labels
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

from ember.operator.children import TLS_CA_KEY, TLS_CERT_KEY, TLS_KEY_KEY
from ember.operator.cluster_spec import ClusterSpec
from ember.runtime.wire import auth, package_transfer, stream_status
from ember.runtime.wire.protocol import ember_pb2 as pb
from ember.runtime.wire.protocol import ember_pb2_grpc as rpc

POD_LABEL = "ember.dev/pod"
# The runtime checks ``authorization: Bearer <token>`` on every call (ember.runtime.wire.auth).
TOKEN_METADATA_KEY = "authorization"
CALL_TIMEOUT = 5.0
# Running tasks get this long on a drained node, then stop and are retried on other nodes: a
# roll or a scale-down must end even when a task never does.
DRAIN_DEADLINE_SECONDS = 300.0
DEFAULT_CLIENT_PORT = 10001
# What a pod's processes check the head's certificate against (pod_template sets it); a head
# template may set its own value, which its certificate then carries.
TLS_SERVER_NAME_ENV = "EMBER_TLS_SERVER_NAME"

log = logging.getLogger("ember.operator.head")


class HeadUnreachable(Exception):
    """The head did not answer (down, starting, suspended, or refusing our token)."""


class HeadRefused(Exception):
    """The head answered, and refused what was asked (a job it cannot take), saying why."""


# Answers that no retry changes: the request itself is wrong.
REFUSALS = (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION,
            grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.PERMISSION_DENIED)


@dataclass(frozen=True)
class HeadTls:
    """The cluster's TLS material as its pods have it, for a channel to its head."""

    ca: bytes  # the CA the head's certificate is checked against
    cert: bytes  # the certificate (and key) presented to the head, which requires one
    key: bytes
    server_name: str  # the name the head's certificate carries (the operator dials a pod IP)

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca, private_key=self.key, certificate_chain=self.cert
        )

    def options(self) -> list[tuple[str, str]]:
        return [("grpc.ssl_target_name_override", self.server_name)]


@dataclass(frozen=True)
class DrainState:
    drained: frozenset[str]  # pods whose node is drained, or that are no live node of the head
    draining: frozenset[str]  # pods whose node is live and not drained (yet)


class HeadClient:
    """One connection to one cluster's head, for one reconcile pass (``async with``)."""

    def __init__(
        self, cluster: str, address: str, token: str, timeout: float = CALL_TIMEOUT,
        tls: HeadTls | None = None,
    ) -> None:
        self.cluster = cluster  # "namespace/name", for messages
        self.address = address
        self.timeout = timeout
        self.tls = tls
        self._token = token
        self._metadata = ((TOKEN_METADATA_KEY, f"Bearer {token}"),) if token else ()
        self._channel: aio.Channel | None = None
        self._head: rpc.HeadStub | None = None
        self._jobs: rpc.JobsStub | None = None

    async def __aenter__(self) -> HeadClient:
        self._channel = (
            aio.secure_channel(self.address, self.tls.credentials(), options=self.tls.options())
            if self.tls is not None
            else aio.insecure_channel(self.address)
        )
        self._head = rpc.HeadStub(self._channel)
        self._jobs = rpc.JobsStub(self._channel)
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

    async def set_node_types(
        self, shapes: Iterable[Mapping[str, float]], labels: Iterable[Mapping[str, str]] = ()
    ) -> None:
        """The shapes of node the autoscaler may add (and the labels each starts with): work
        that fits one waits instead of failing as infeasible."""
        await self._ask("SetNodeTypes", pb.NodeTypes(
            shapes=[pb.ResourceSet(quantities=dict(shape)) for shape in shapes],
            labels=[pb.NodeLabels(labels=dict(entry)) for entry in labels],
        ))

    # ------------------------------------------------------------------ jobs (EmberJob)

    async def get_job(self, submission_id: str) -> pb.JobInfo | None:
        """The head's record of a submission, or None when it has none."""
        try:
            return await self._job_call("GetJob", pb.JobRef(submission_id=submission_id))
        except HeadRefused:
            return None

    async def submit_job(self, request: pb.JobSubmission) -> pb.JobInfo:
        """Submit; a submission the head has already (an earlier pass submitted it and the
        operator restarted before it said so) is that one. ``HeadRefused`` says why not."""
        try:
            return await self._job_call("SubmitJob", request)
        except _Exists:
            found = await self.get_job(request.submission_id)
            if found is None:
                raise HeadRefused(f"job {request.submission_id} exists and does not") from None
            return found

    async def stop_job(self, submission_id: str) -> bool:
        reply = await self._job_call("StopJob", pb.StopJobRequest(submission_id=submission_id))
        return bool(reply.stopping)

    async def upload(self, data: bytes) -> str:
        """Put a code package (a ConfigMap's working_dir) on the head; its URI."""
        assert self._channel is not None, "use HeadClient in 'async with'"
        channel = stream_status.channel(
            auth.TokenChannel(self._channel, self._token) if self._token else self._channel
        )
        try:
            return await package_transfer.upload(rpc.PackagesStub(channel), data, timeout=60)
        except aio.AioRpcError as error:
            raise self._failure("UploadPackage", error) from None

    async def _job_call(self, method: str, request: object) -> Any:
        assert self._jobs is not None, "use HeadClient in 'async with'"
        try:
            return await getattr(self._jobs, method)(request, timeout=self.timeout, metadata=self._metadata)
        except aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.ALREADY_EXISTS:
                raise _Exists(error.details()) from None
            if error.code() == grpc.StatusCode.NOT_FOUND or error.code() in REFUSALS:
                raise HeadRefused(error.details() or error.code().name) from None
            raise self._failure(method, error) from None

    def _failure(self, method: str, error: aio.AioRpcError) -> Exception:
        if error.code() in REFUSALS:
            return HeadRefused(error.details() or error.code().name)
        return HeadUnreachable(
            f"the head of cluster {self.cluster} at {self.address} answered {method} with "
            f"{error.code().name}: {error.details()}"
        )

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


class _Exists(Exception):
    pass


def head_of(
    cluster: str,
    spec: Mapping[str, Any],
    pods: Iterable[Mapping[str, Any]],
    secret: Mapping[str, Any] | None,
    tls: HeadTls | None = None,
) -> HeadClient:
    """A client of the cluster's head at its pod's IP (the operator runs in the cluster, and a
    pod IP needs no DNS), with the token of the cluster's Secret, over TLS when ``tls`` is
    given (``head_tls``: a cluster with ``spec.tls.secretName`` refuses plain text)."""
    head_pods = [
        p for p in pods
        if (p.get("metadata", {}).get("labels") or {}).get("ember.dev/node-type") == "head"
        and not p.get("metadata", {}).get("deletionTimestamp")
    ]
    ip = (head_pods[0].get("status") or {}).get("podIP") if head_pods else None
    if not ip:
        raise HeadUnreachable(f"cluster {cluster} has no running head pod")
    port = ((spec.get("head") or {}).get("ports") or {}).get("client", DEFAULT_CLIENT_PORT)
    return HeadClient(cluster, f"{ip}:{port}", token_of(secret), tls=tls)


def head_tls(spec: ClusterSpec, secret: Mapping[str, Any] | None) -> HeadTls:
    """The cluster's TLS Secret (``spec.tls.secretName``, as the API returned it) read into
    what a channel to its head needs. Raises ``HeadUnreachable`` naming the Secret, and the
    keys it lacks, when it cannot be used: the head cannot be asked anything without it."""
    where = f"TLS Secret {spec.tls_secret} (spec.tls.secretName) of cluster {spec.namespace}/{spec.name}"
    if secret is None:
        raise HeadUnreachable(f"{where} does not exist")
    data = secret.get("data") or {}
    material: dict[str, bytes] = {}
    for key in (TLS_CA_KEY, TLS_CERT_KEY, TLS_KEY_KEY):
        try:
            material[key] = base64.b64decode(data.get(key) or "", validate=True)
        except binascii.Error:
            material[key] = b""
    missing = [key for key, value in material.items() if not value]
    if missing:
        raise HeadUnreachable(f"{where} has no {', '.join(missing)}")
    return HeadTls(
        ca=material[TLS_CA_KEY], cert=material[TLS_CERT_KEY], key=material[TLS_KEY_KEY],
        server_name=tls_server_name(spec),
    )


def tls_server_name(spec: ClusterSpec) -> str:
    """The name the cluster's certificate carries, as its pods check it: the head template's
    own ``EMBER_TLS_SERVER_NAME`` when it sets one (the head's node agent dials the head by it,
    so the certificate must carry it), else the head Service's name the operator gives pods."""
    for variable in (spec.head.get("template") or {}).get("env") or []:
        if variable.get("name") == TLS_SERVER_NAME_ENV and variable.get("value"):
            return str(variable["value"])
    return spec.service_host


def token_of(secret: Mapping[str, Any] | None) -> str:
    """The ``token`` key of the cluster's Secret ("" when absent or unreadable)."""
    data = (secret or {}).get("data") or {}
    try:
        return base64.b64decode(data.get("token", "")).decode().strip()
    except (binascii.Error, UnicodeDecodeError):
        return ""
