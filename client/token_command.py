"""``ember token CLUSTER [-n NAMESPACE]``: print a cluster's token, read from its Secret.

The operator keeps each cluster's token in the Secret ``<cluster>-token`` (key ``token``) of
the cluster's namespace; a driver on a laptop needs it to connect (``EMBER_TOKEN``). This reads
it with the user's kubeconfig, as ``kubectl`` would, so nobody has to copy it out by hand with
``kubectl get secret ... | base64 -d``.

The ``kubernetes`` package is imported inside ``read`` only: ``import ember`` on a laptop
never loads it.
"""

from __future__ import annotations

import base64
import binascii
import sys
from collections.abc import Mapping

SECRET_SUFFIX = "-token"
KEY = "token"


class TokenNotFound(Exception):
    """The Secret, or the token in it, is missing or unreadable; the message says which."""


def secret_name(cluster: str) -> str:
    return f"{cluster}{SECRET_SUFFIX}"


def token_from_secret(data: Mapping[str, str | bytes] | None, cluster: str, namespace: str) -> str:
    """The token in a Secret's ``data`` (base64, as the API serves it)."""
    where = f"Secret {secret_name(cluster)} in namespace {namespace}"
    encoded = (data or {}).get(KEY)
    if not encoded:
        raise TokenNotFound(f"{where} has no {KEY!r} key")
    try:
        token = base64.b64decode(encoded, validate=True).decode("utf-8").strip()
    except (binascii.Error, UnicodeDecodeError) as error:
        raise TokenNotFound(f"{where}: its {KEY!r} is not base64 of a text token ({error})") from None
    if not token:
        raise TokenNotFound(f"{where}: its {KEY!r} is empty")
    return token


def read(cluster: str, namespace: str | None) -> str:
    """The token of ``cluster``, through the current kubeconfig context (or, in a pod, its
    service account); the namespace defaults to the context's."""
    from kubernetes import client, config
    from kubernetes.client.rest import ApiException
    from kubernetes.config.config_exception import ConfigException
    from urllib3.exceptions import HTTPError

    try:
        config.load_kube_config()
        if namespace is None:
            _, active = config.list_kube_config_contexts()
            namespace = (active or {}).get("context", {}).get("namespace") or "default"
    except ConfigException as error:
        try:
            config.load_incluster_config()
        except ConfigException:
            raise TokenNotFound(f"no Kubernetes configuration to read the token with: {error}") from None
        if namespace is None:
            namespace = "default"
    name = secret_name(cluster)
    try:
        secret = client.CoreV1Api().read_namespaced_secret(name, namespace)
    except ApiException as error:
        if error.status == 404:
            raise TokenNotFound(
                f"no Secret {name} in namespace {namespace}: is {cluster!r} a Cluster there? "
                f"(kubectl get clusters.ember.dev -n {namespace})"
            ) from None
        if error.status in (401, 403):
            raise TokenNotFound(
                f"not allowed to read Secret {name} in namespace {namespace} ({error.status} {error.reason})"
            ) from None
        raise TokenNotFound(f"reading Secret {name} in namespace {namespace} failed: {error.status} {error.reason}") from None
    except (HTTPError, OSError) as error:
        raise TokenNotFound(f"cannot reach the Kubernetes API to read Secret {name}: {error}") from None
    return token_from_secret(secret.data, cluster, namespace)


def run(cluster: str, namespace: str | None) -> int:
    try:
        token = read(cluster, namespace)
    except TokenNotFound as error:
        print(f"ember token: {error}", file=sys.stderr)
        return 1
    print(token)
    return 0
