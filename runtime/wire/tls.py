"""TLS for every connection between a cluster's processes, when certificates are given.

Set ``EMBER_TLS_CERT``, ``EMBER_TLS_KEY`` and ``EMBER_TLS_CA`` to files (as a Kubernetes Secret
mounts them): every gRPC server then listens with TLS and asks its callers for a certificate
signed by the same CA (mutual TLS: inside a cluster every process is both server and client),
and task channels are wrapped the same way. The processes ember starts inherit the variables.

Certificates are checked against the CA and the host name a process dials. Inside Kubernetes a
certificate is usually issued for a service name while processes dial pod IPs; then set
``EMBER_TLS_SERVER_NAME`` to the name the certificate carries, and it is checked against that.
"""

from __future__ import annotations

import functools
import os
import ssl
from dataclasses import dataclass

import grpc

ENV_CERT = "EMBER_TLS_CERT"
ENV_KEY = "EMBER_TLS_KEY"
ENV_CA = "EMBER_TLS_CA"
ENV_SERVER_NAME = "EMBER_TLS_SERVER_NAME"


class TlsConfigError(Exception):
    pass


@dataclass(frozen=True)
class TlsConfig:
    cert: bytes
    key: bytes
    ca: bytes
    cert_path: str
    key_path: str
    ca_path: str
    server_name: str = ""

    def server_credentials(self) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials(
            [(self.key, self.cert)], root_certificates=self.ca, require_client_auth=True
        )

    def channel_credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca, private_key=self.key, certificate_chain=self.cert
        )

    def channel_options(self) -> list[tuple[str, str]]:
        return [("grpc.ssl_target_name_override", self.server_name)] if self.server_name else []

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_path, self.key_path)
        context.load_verify_locations(self.ca_path)
        context.verify_mode = ssl.CERT_REQUIRED
        return context

    def client_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_cert_chain(self.cert_path, self.key_path)
        context.load_verify_locations(self.ca_path)
        return context


@functools.cache
def current() -> TlsConfig | None:
    """This process's TLS settings, from its environment; None when TLS is off."""
    paths = {name: os.environ.get(name, "") for name in (ENV_CERT, ENV_KEY, ENV_CA)}
    given = [name for name, path in paths.items() if path]
    if not given:
        return None
    if len(given) != 3:
        missing = sorted(set(paths) - set(given))
        raise TlsConfigError(f"TLS needs {ENV_CERT}, {ENV_KEY} and {ENV_CA}; missing {', '.join(missing)}")
    contents = {}
    for name, path in paths.items():
        try:
            with open(path, "rb") as f:
                contents[name] = f.read()
        except OSError as error:
            raise TlsConfigError(f"{name}={path}: {error}") from None
    return TlsConfig(
        cert=contents[ENV_CERT],
        key=contents[ENV_KEY],
        ca=contents[ENV_CA],
        cert_path=paths[ENV_CERT],
        key_path=paths[ENV_KEY],
        ca_path=paths[ENV_CA],
        server_name=os.environ.get(ENV_SERVER_NAME, ""),
    )


@functools.cache
def shared_client_context(config: TlsConfig) -> ssl.SSLContext:
    """One client context per configuration, made once (loading the files costs milliseconds)
    and made anew when the configuration changes (a test's new certificates)."""
    return config.client_context()
