"""A Kubernetes API for the operator's scenario tests: kmock's emulator, made a little more
like an API server, and the real kopf operator running against it over HTTP.

What the emulator lacks and kopf needs (see shared/notes/operator-testing.md): a ``uid`` on
every object, a ``resourceVersion`` that moves on every write (kopf's finalizer JSON patch tests
it, and kopf drops stale events by it), ``generateName`` (kopf's events use it), and 422 for a
JSON patch whose test fails. And what a real API server does first of all: a request without a
bearer token it knows is refused with 401, so every scenario also proves that kopf and the
operator's own client both log in (an operator that talked anonymously went unnoticed while
the mock let it). What no mock does — garbage collection, validation, defaulting — is the kind
suite's (tests/e2e).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import logging
import secrets
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
import jsonpatch
import kmock
import kopf
import kubernetes
import yaml

from ember.operator import handlers, operator_main
from ember.operator.cluster_policy import Policy
from ember.operator.kube_objects import GROUP, PLURAL, VERSION, KubeObjects

CLUSTERS = kmock.resource(GROUP, VERSION, PLURAL)
EMBERJOBS = kmock.resource(GROUP, VERSION, "emberjobs")
BATCH_JOBS = kmock.resource("batch", "v1", "jobs")
CONFIG_MAPS = kmock.resource("", "v1", "configmaps")
PODS = kmock.resource("", "v1", "pods")
SERVICES = kmock.resource("", "v1", "services")
SECRETS = kmock.resource("", "v1", "secrets")
EVENTS = kmock.resource("", "v1", "events")
NETWORK_POLICIES = kmock.resource("networking.k8s.io", "v1", "networkpolicies")
NAMESPACE = "ns1"

log = logging.getLogger("tests.operator")


@attrs.define(kw_only=True)
class KubeApi(kmock.KubernetesEmulator):
    """kmock's emulator with bearer tokens, uids, moving resourceVersions, generateName and 422s."""

    # The tokens it accepts (``Authorization: Bearer <token>``, the scheme in any case, as the
    # API server's token authenticator reads it); a test may revoke one and accept another.
    tokens: set[str] = attrs.field(factory=lambda: {secrets.token_urlsafe(16)})
    _versions: itertools.count[int] = attrs.field(factory=lambda: itertools.count(1000), init=False)
    _first_token: str = attrs.field(default="", init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self._first_token = sorted(self.tokens)[0]
        self.resources.load_bundled()
        self.resources[CLUSTERS] = kmock.ResourceInfo(
            kind="Cluster", singular="cluster", namespaced=True, shortnames={"ec"},
            verbs={"get", "list", "watch", "create", "update", "patch", "delete"},
            subresources={"status"},
        )
        self.resources[EMBERJOBS] = kmock.ResourceInfo(
            kind="EmberJob", singular="emberjob", namespaced=True, shortnames={"ej"},
            verbs={"get", "list", "watch", "create", "update", "patch", "delete"},
            subresources={"status"},
        )

    async def _handle(self, request: kmock.Request) -> Any:
        if bearer_token(request) not in self.tokens:
            return await self._render_error(kmock.KubernetesError(
                status=401, reason="Unauthorized", message="Unauthorized"
            ))
        if request.resource is not None:
            stale = self._stale(request)
            if stale:
                return await self._render_error(kmock.KubernetesError(
                    status=409, reason="Conflict", message=stale
                ))
            self._stamp(request)
        try:
            return await super()._handle(request)
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as error:
            return await self._render_error(kmock.KubernetesError(
                status=422, reason="Invalid", message=f"JSON patch failed: {error}"
            ))

    def _stamp(self, request: kmock.Request) -> None:
        """Fill in what an API server would, in place: kmock matches its reactions against
        the very request object it recorded, so the request cannot be replaced."""
        version = str(next(self._versions))
        data = request.data
        if request.action == kmock.action.CREATE and isinstance(data, dict):
            meta = data.setdefault("metadata", {})
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = meta["generateName"] + secrets.token_hex(3)
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
            meta["resourceVersion"] = version
            meta.setdefault("generation", 1)
        elif request.action == kmock.action.UPDATE and isinstance(data, dict):
            meta = data.setdefault("metadata", {}) or {}
            data["metadata"] = meta  # a patch may say "metadata": null
            meta["resourceVersion"] = version
            if "spec" in data and request.subresource != "status":
                meta["generation"] = self._generation(request) + 1
        elif request.action == kmock.action.UPDATE and isinstance(data, list):
            data.append({"op": "replace", "path": "/metadata/resourceVersion", "value": version})

    def _stale(self, request: kmock.Request) -> str:
        """A patch that names the resourceVersion it was computed from is refused once the
        object has moved on, as an API server refuses it (optimistic concurrency)."""
        data = request.data
        if request.action != kmock.action.UPDATE or not isinstance(data, dict):
            return ""
        given = (data.get("metadata") or {}).get("resourceVersion")
        key = (request.resource, request.namespace, request.name)
        if not given or key not in self.objects or self.objects[key].deleted:
            return ""
        current = self.objects[key].raw.get("metadata", {}).get("resourceVersion")
        if str(given) == str(current):
            return ""
        return f"the object has been modified (resourceVersion {given}, now {current})"

    def _generation(self, request: kmock.Request) -> int:
        key = (request.resource, request.namespace, request.name)
        if key in self.objects and not self.objects[key].deleted:
            return int(self.objects[key].raw.get("metadata", {}).get("generation", 1))
        return 0

    # ------------------------------------------------------------------ looking at the state

    def live(self, resource: kmock.resource, namespace: str = NAMESPACE) -> dict[str, dict[str, Any]]:
        """The objects of a resource that exist now, by name."""
        return {
            name: obj.raw
            for (res, ns, name), obj in list(self.objects.items())
            if res == resource and ns == namespace and not obj.deleted
        }

    def pods(self, namespace: str = NAMESPACE) -> dict[str, dict[str, Any]]:
        return self.live(PODS, namespace)

    def cluster(self, name: str, namespace: str = NAMESPACE) -> dict[str, Any]:
        return self.objects[CLUSTERS, namespace, name].raw

    def ejob(self, name: str, namespace: str = NAMESPACE) -> dict[str, Any]:
        return self.objects[EMBERJOBS, namespace, name].raw

    def events(self, namespace: str = NAMESPACE) -> list[tuple[str, str, str]]:
        return [
            (e.get("type", ""), e.get("reason", ""), e.get("message", ""))
            for e in self.live(EVENTS, namespace).values()
        ]

    def calls(self, action: kmock.action, resource: kmock.resource) -> list[kmock.Request]:
        return [r for r in self if r.action == action and r.resource == resource]

    @property
    def token(self) -> str:
        """The token a test's clients log in with (the first one; ``another_user`` adds more)."""
        return self._first_token


    # ------------------------------------------------------------------ what kubelet would do

    def set_pod_status(self, name: str, status: Mapping[str, Any], namespace: str = NAMESPACE) -> None:
        """Write a pod's status as the kubelet would (the operator lists pods, it does not
        watch them, so no watch event is needed)."""
        self.objects[PODS, namespace, name].patch({"status": dict(status)})

    def mark_ready(self, name: str, ip: str = "127.0.0.1", namespace: str = NAMESPACE) -> None:
        self.set_pod_status(name, {
            "phase": "Running",
            "podIP": ip,
            "conditions": [{"type": "Ready", "status": "True"}],
        }, namespace)

    def mark_failed(self, name: str, namespace: str = NAMESPACE) -> None:
        self.set_pod_status(name, {
            "phase": "Failed", "reason": "Evicted",
            "conditions": [{"type": "Ready", "status": "False"}],
        }, namespace)


def bearer_token(request: kmock.Request) -> str | None:
    """The token of the request's ``Authorization: Bearer ...`` header, if it has one."""
    header = next((v for k, v in request.headers.items() if k.lower() == "authorization"), "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


class Client:
    """What ``kubectl`` would do in a test: calls to the mock over HTTP, from a thread (the
    sync client must not block the loop that serves the mock)."""

    def __init__(self, configuration: kubernetes.client.Configuration) -> None:
        self.api = kubernetes.client.ApiClient(configuration)
        self.custom = kubernetes.client.CustomObjectsApi(self.api)
        self.core = kubernetes.client.CoreV1Api(self.api)

    async def apply_cluster(self, body: Mapping[str, Any]) -> None:
        await asyncio.to_thread(
            self.custom.create_namespaced_custom_object, GROUP, VERSION, NAMESPACE, PLURAL, dict(body)
        )

    async def patch_cluster(self, name: str, patch: Mapping[str, Any]) -> None:
        await asyncio.to_thread(
            self.custom.patch_namespaced_custom_object, GROUP, VERSION, NAMESPACE, PLURAL, name,
            dict(patch), _content_type="application/merge-patch+json",
        )

    async def delete_cluster(self, name: str) -> None:
        await asyncio.to_thread(
            self.custom.delete_namespaced_custom_object, GROUP, VERSION, NAMESPACE, PLURAL, name
        )

    async def apply_ejob(self, body: Mapping[str, Any]) -> None:
        await asyncio.to_thread(
            self.custom.create_namespaced_custom_object, GROUP, VERSION, NAMESPACE, "emberjobs", dict(body)
        )

    async def patch_ejob(self, name: str, patch: Mapping[str, Any]) -> None:
        await asyncio.to_thread(
            self.custom.patch_namespaced_custom_object, GROUP, VERSION, NAMESPACE, "emberjobs", name,
            dict(patch), _content_type="application/merge-patch+json",
        )

    async def create(self, body: Mapping[str, Any]) -> None:
        """A Secret or ConfigMap, as ``kubectl apply`` would make it."""
        creators = {"Secret": self.core.create_namespaced_secret, "ConfigMap": self.core.create_namespaced_config_map}
        await asyncio.to_thread(creators[body["kind"]], NAMESPACE, dict(body))

    async def delete_pod(self, name: str) -> None:
        await asyncio.to_thread(self.core.delete_namespaced_pod, name, NAMESPACE)

    def close(self) -> None:
        self.api.close()


def configuration(server: kmock.Server, token: str, directory: Path) -> kubernetes.client.Configuration:
    """The credentials of a workstation whose kubeconfig names the mock and its token, loaded as
    ``ember operator`` loads a kubeconfig outside a pod."""
    path = directory / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "mock", "cluster": {"server": str(server.url).rstrip("/")}}],
        "users": [{"name": "tester", "user": {"token": token}}],
        "contexts": [{"name": "mock", "context": {"cluster": "mock", "user": "tester"}}],
        "current-context": "mock",
    }))
    config = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(config_file=str(path), client_configuration=config)
    return config


def another_user(api: KubeApi, config: kubernetes.client.Configuration) -> kubernetes.client.Configuration:
    """The credentials of someone else using the same API (a person with kubectl), with a token
    of their own: their requests are told apart from the operator's by it."""
    token = secrets.token_urlsafe(16)
    api.tokens.add(token)
    other = copy.copy(config)
    other.refresh_api_key_hook = None  # the kubeconfig loader's hook would put the first token back
    other.api_key = {key: f"Bearer {token}" for key in config.api_key}
    return other


@contextlib.asynccontextmanager
async def mock_api() -> AsyncIterator[tuple[KubeApi, kubernetes.client.Configuration]]:
    with tempfile.TemporaryDirectory(prefix="ember-kube-") as directory:
        async with KubeApi() as api, kmock.Server(api) as server:
            yield api, configuration(server, api.token, Path(directory))


@contextlib.asynccontextmanager
async def running_operator(
    config: kubernetes.client.Configuration, head_grace_seconds: float = 60.0,
    policy: Policy | None = None,
) -> AsyncIterator[None]:
    """The real kopf operator with ember's handlers, until the block ends.

    Enter it in the test body, not in a fixture: kopf cancels, when it stops, the tasks created
    after it started."""
    settings = operator_main.settings(priority=1)
    settings.scanning.disabled = True  # kmock answers /api/v1/namespaces with a 500
    settings.peering.standalone = True
    settings.watching.reconnect_backoff = 0.1
    settings.posting.level = logging.DEBUG
    kube = KubeObjects(config)
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(kopf.operator(
        registry=handlers.registry,
        settings=settings,
        memo=operator_main.memo(kube, head_grace_seconds, policy),
        namespaces=[NAMESPACE],
        stop_flag=stop,
        ready_flag=ready,
    ))
    try:
        await asyncio.wait_for(ready.wait(), timeout=30)
        yield
    finally:
        stop.set()
        try:
            await asyncio.wait_for(task, timeout=30)
        finally:
            kube.close()


async def eventually(
    check: Callable[[], object] | Callable[[], Awaitable[object]],
    what: str,
    timeout: float = 45.0,  # a few of the operator's 10 s timer passes, on a loaded machine
    api: KubeApi | None = None,
) -> None:
    """Wait until ``check`` holds (returns truthy without raising AssertionError); on a timeout
    the message shows the pods, phase and events of the mock, when given."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return
        except AssertionError as error:
            last = error
        await asyncio.sleep(0.1)
    seen = ""
    if api is not None:
        pods = {n: (p.get("status") or {}).get("phase") for n, p in api.pods().items()}
        clusters = {n: c.get("status", {}).get("phase") for n, c in api.live(CLUSTERS).items()}
        seen = f"; pods {pods}, clusters {clusters}, events {api.events()}"
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}: {last or 'not yet'}{seen}")
