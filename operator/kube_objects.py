"""Every Kubernetes API call the operator makes, in one place, as plain dicts.

The reconcile reads like the life story of a ``Cluster`` only if the plumbing is elsewhere:
this module reads a cluster's children, creates and deletes them, and patches the Cluster's
spec and status. It uses the official ``kubernetes`` client, whose calls block, so each runs in
a thread (``asyncio.to_thread``) and never stalls kopf's event loop. Objects travel as the
JSON the API server speaks (camelCase dicts, ``_preload_content=False``): that is what the pure
``render.plan`` reads and writes, with no model classes in between.

The operator logs in to kopf with the same credentials (``connection_info``), so the process
has one notion of "the cluster it talks to", whether in a pod, from a kubeconfig, or in tests.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from typing import Any, cast

import kopf
import kubernetes
import urllib3

GROUP = "ember.dev"
VERSION = "v1alpha1"
PLURAL = "clusters"
JOB_PLURAL = "emberjobs"
CLUSTER_LABEL = "ember.dev/cluster"
JOB_LABEL = "ember.dev/job"
MERGE_PATCH = "application/merge-patch+json"

log = logging.getLogger("ember.operator.kube")


class KubeError(Exception):
    """An API call failed for a reason a retry may cure; the message names the object."""


class KubeRefused(KubeError):
    """The API server refused to create an object for what it is (validation or admission:
    400, 403, 422); no retry changes that."""


def load_configuration() -> kubernetes.client.Configuration:
    """The credentials of this process: the pod's service account in a cluster, else the
    current kubeconfig context (an operator run from a workstation)."""
    configuration = kubernetes.client.Configuration()
    try:
        kubernetes.config.load_incluster_config(client_configuration=configuration)
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config(client_configuration=configuration)
    return configuration


def connection_info(configuration: kubernetes.client.Configuration) -> kopf.ConnectionInfo:
    """What kopf needs to reach the same API server, with the same credentials, as
    ``KubeObjects`` does.

    The token is the ``Authorization`` header the client itself would send, read from
    ``auth_settings()`` by where it goes (the header), not by the name the client files it
    under: that name changed between client releases ("authorization", then "BearerToken"),
    and reading the old one made every kopf request anonymous. ``auth_settings()`` also runs
    the in-cluster loader's refresh hook, so a login after a 401 (kopf logs in again then)
    picks up a service-account token the kubelet has rotated.
    """
    header = bearer_header(configuration)
    scheme, _, token = header.partition(" ")
    if not token:  # a bare token, with no scheme in front of it
        scheme, token = "", scheme
    return kopf.ConnectionInfo(
        server=configuration.host,
        ca_path=configuration.ssl_ca_cert or None,
        insecure=not configuration.verify_ssl,
        scheme=scheme or None,
        token=token or None,
        certificate_path=configuration.cert_file or None,
        private_key_path=configuration.key_file or None,
        username=configuration.username or None,
        password=configuration.password or None,
    )


def bearer_header(configuration: kubernetes.client.Configuration) -> str:
    """The value of the ``Authorization`` header the client sends ("" when it sends none)."""
    settings = cast(Mapping[str, Mapping[str, Any]], configuration.auth_settings())
    for setting in settings.values():
        if setting.get("in") == "header" and str(setting.get("key", "")).lower() == "authorization":
            return str(setting.get("value") or "")
    return ""


def has_labels(obj: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    found = obj.get("metadata", {}).get("labels") or {}
    return all(found.get(key) == value for key, value in labels.items())


class KubeObjects:
    """The API calls of the reconcile; all async, all raising ``KubeError`` naming the object."""

    def __init__(self, configuration: kubernetes.client.Configuration) -> None:
        self.configuration = configuration
        self.api_client = kubernetes.client.ApiClient(configuration)
        self.core = kubernetes.client.CoreV1Api(self.api_client)
        self.networking = kubernetes.client.NetworkingV1Api(self.api_client)
        self.custom = kubernetes.client.CustomObjectsApi(self.api_client)
        self.batch = kubernetes.client.BatchV1Api(self.api_client)

    def close(self) -> None:
        self.api_client.close()

    # ------------------------------------------------------------------ reading

    async def read_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The Secret, or None when it does not exist."""
        try:
            return await self._call(
                f"reading Secret {namespace}/{name}", self.core.read_namespaced_secret, name, namespace
            )
        except kubernetes.client.ApiException as error:
            if error.status == 404:
                return None
            raise KubeError(f"reading Secret {namespace}/{name}: {_reason(error)}") from None

    async def read_cluster(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The Cluster, or None when it is gone."""
        what = f"reading cluster {namespace}/{name}"
        try:
            return await self._call(
                what, self.custom.get_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, name
            )
        except kubernetes.client.ApiException as error:
            if error.status == 404:
                return None
            raise KubeError(f"{what}: {_reason(error)}") from None

    async def read_config_map(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The ConfigMap (an EmberJob's working_dir), or None when it does not exist."""
        what = f"reading ConfigMap {namespace}/{name}"
        try:
            return await self._call(what, self.core.read_namespaced_config_map, name, namespace)
        except kubernetes.client.ApiException as error:
            if error.status == 404:
                return None
            raise KubeError(f"{what}: {_reason(error)}") from None

    async def read_batch_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The batch/v1 Job (an EmberJob's submitter), or None when it does not exist."""
        what = f"reading Job {namespace}/{name}"
        try:
            return await self._call(what, self.batch.read_namespaced_job, name, namespace)
        except kubernetes.client.ApiException as error:
            if error.status == 404:
                return None
            raise KubeError(f"{what}: {_reason(error)}") from None

    async def list_job_children(self, namespace: str, job: str, kind: str) -> tuple[dict[str, Any], ...]:
        """The Clusters or submitter Jobs labelled ``ember.dev/job=<job>`` (every attempt's)."""
        selector = f"{JOB_LABEL}={job}"
        what = f"listing the {kind}s of EmberJob {namespace}/{job}"
        try:
            if kind == "Cluster":
                found = await self._call(
                    what, self.custom.list_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL,
                    label_selector=selector,
                )
            else:
                found = await self._call(what, self.batch.list_namespaced_job, namespace, label_selector=selector)
        except kubernetes.client.ApiException as error:
            raise KubeError(f"{what}: {_reason(error)}") from None
        return tuple(item for item in found.get("items", ()) if has_labels(item, {JOB_LABEL: job}))

    async def patch_job_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        """Write an EmberJob's ``.status`` through its status subresource."""
        what = f"patching the status of EmberJob {namespace}/{name}"
        try:
            await self._call(
                what, self.custom.patch_namespaced_custom_object_status, GROUP, VERSION, namespace,
                JOB_PLURAL, name, {"status": dict(status)}, _content_type=MERGE_PATCH,
            )
        except kubernetes.client.ApiException as error:
            if error.status == 404:
                return  # the EmberJob is being deleted
            raise KubeError(f"{what}: {_reason(error)}") from None

    async def list_children(self, namespace: str, cluster: str, kind: str) -> tuple[dict[str, Any], ...]:
        """The Services, Pods, PersistentVolumeClaims or NetworkPolicies labelled
        ``ember.dev/cluster=<cluster>``.

        The label selector goes to the server, and the answer is filtered again here: a server
        (or a mock) that ignores the selector must not make another cluster's pods ours.
        """
        listers = {
            "Service": self.core.list_namespaced_service,
            "Pod": self.core.list_namespaced_pod,
            "PersistentVolumeClaim": self.core.list_namespaced_persistent_volume_claim,
            "NetworkPolicy": self.networking.list_namespaced_network_policy,
        }
        what = f"listing the {kind}s of cluster {namespace}/{cluster}"
        try:
            found = await self._call(
                what, listers[kind], namespace, label_selector=f"{CLUSTER_LABEL}={cluster}"
            )
        except kubernetes.client.ApiException as error:
            raise KubeError(f"{what}: {_reason(error)}") from None
        mine = {CLUSTER_LABEL: cluster}
        return tuple(item for item in found.get("items", ()) if has_labels(item, mine))

    # ------------------------------------------------------------------ writing

    async def create(self, namespace: str, obj: Mapping[str, Any]) -> bool:
        """Create the object; False when one of that name exists already (409), which a
        level-based reconcile takes as done: the next pass sees it."""
        kind = obj.get("kind", "")
        name = obj.get("metadata", {}).get("name", "")
        creators = {
            "Secret": self.core.create_namespaced_secret,
            "Service": self.core.create_namespaced_service,
            "Pod": self.core.create_namespaced_pod,
            "PersistentVolumeClaim": self.core.create_namespaced_persistent_volume_claim,
            "NetworkPolicy": self.networking.create_namespaced_network_policy,
            # An EmberJob's Cluster and submitter.
            "Cluster": lambda ns, body, **kw: self.custom.create_namespaced_custom_object(
                GROUP, VERSION, ns, PLURAL, body, **kw),
            "Job": self.batch.create_namespaced_job,
        }
        if kind not in creators:
            raise KubeError(f"creating {kind} {namespace}/{name}: the operator creates no {kind}s")
        try:
            await self._call(f"creating {kind} {namespace}/{name}", creators[kind], namespace, dict(obj))
        except kubernetes.client.ApiException as error:
            if error.status == 409:
                return False
            if error.status in (400, 403, 422):
                raise KubeRefused(f"creating {kind} {namespace}/{name}: {_reason(error)}") from None
            raise KubeError(f"creating {kind} {namespace}/{name}: {_reason(error)}") from None
        return True

    async def delete(self, namespace: str, kind: str, name: str) -> bool:
        """Delete the object; False when it was gone already (404). Secrets and volumes are
        never the operator's to delete: they go with their Cluster (garbage collection). A
        Cluster is deleted only when an EmberJob made it."""
        deleters = {
            "Pod": self.core.delete_namespaced_pod,
            "Service": self.core.delete_namespaced_service,
            "NetworkPolicy": self.networking.delete_namespaced_network_policy,
            # An EmberJob's own Cluster (its children go with it) and submitter (its pods too:
            # the API's default for a Job would leave them).
            "Cluster": lambda name, ns, **kw: self.custom.delete_namespaced_custom_object(
                GROUP, VERSION, ns, PLURAL, name, **kw),
            "Job": lambda name, ns, **kw: self.batch.delete_namespaced_job(
                name, ns, propagation_policy="Background", **kw),
        }
        if kind not in deleters:
            raise KubeError(f"deleting {kind} {namespace}/{name}: the operator deletes no {kind}s")
        try:
            await self._call(f"deleting {kind} {namespace}/{name}", deleters[kind], name, namespace)
        except kubernetes.client.ApiException as error:
            if error.status == 404:
                return False
            raise KubeError(f"deleting {kind} {namespace}/{name}: {_reason(error)}") from None
        return True

    async def patch(self, namespace: str, obj: Mapping[str, Any]) -> None:
        """A JSON merge patch of a child with the whole desired object (lists are replaced
        whole, so a shortened list stays short). Only the NetworkPolicy is patched: replacing
        it would leave the pods unprotected in between."""
        kind = obj.get("kind", "")
        name = obj.get("metadata", {}).get("name", "")
        patchers = {"NetworkPolicy": self.networking.patch_namespaced_network_policy}
        if kind not in patchers:
            raise KubeError(f"patching {kind} {namespace}/{name}: the operator patches no {kind}s")
        what = f"patching {kind} {namespace}/{name}"
        try:
            await self._call(what, patchers[kind], name, namespace, dict(obj), _content_type=MERGE_PATCH)
        except kubernetes.client.ApiException as error:
            raise KubeError(f"{what}: {_reason(error)}") from None

    async def patch_cluster(self, namespace: str, name: str, patch: Mapping[str, Any]) -> None:
        """A JSON merge patch of the Cluster itself (its spec: lists are replaced whole)."""
        await self._patch_cluster(namespace, name, patch, status=False)

    async def patch_cluster_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        """Write ``.status`` through the status subresource (what the RBAC grants for it)."""
        await self._patch_cluster(namespace, name, {"status": dict(status)}, status=True)

    async def _patch_cluster(
        self, namespace: str, name: str, body: Mapping[str, Any], status: bool
    ) -> None:
        call = (
            self.custom.patch_namespaced_custom_object_status if status
            else self.custom.patch_namespaced_custom_object
        )
        what = f"patching the {'status' if status else 'spec'} of cluster {namespace}/{name}"
        try:
            await self._call(
                what, call, GROUP, VERSION, namespace, PLURAL, name, dict(body),
                _content_type=MERGE_PATCH,
            )
        except kubernetes.client.ApiException as error:
            if error.status == 404:
                return  # the Cluster is being deleted: nothing left to report to
            raise KubeError(f"{what}: {_reason(error)}") from None

    # ------------------------------------------------------------------ plumbing

    async def _call(self, what: str, method: Any, *args: Any, **kwargs: Any) -> Any:
        """Run a blocking client call in a thread and return the JSON it answered."""

        def call() -> Any:
            response = method(*args, _preload_content=False, **kwargs)
            try:
                data = response.data
            finally:
                response.release_conn()
            return json.loads(data) if data else {}

        try:
            return await asyncio.to_thread(call)
        except kubernetes.client.ApiException:
            raise
        except (OSError, ValueError, urllib3.exceptions.HTTPError) as error:  # unreachable, bad JSON
            raise KubeError(f"{what}: {error}") from None


def _reason(error: kubernetes.client.ApiException) -> str:
    """The API server's message, not the whole HTTP dump the client puts in ``str(error)``."""
    try:
        body = json.loads(error.body or "{}")
    except ValueError:
        body = {}
    message = body.get("message") if isinstance(body, dict) else None
    return f"{error.status} {error.reason}: {message or error.body or ''}".strip()
