"""Certificates for tests of TLS: a CA, and one certificate it signed for given names.

A Kubernetes cluster's TLS Secret holds exactly this (``ca.crt``, ``tls.crt``, ``tls.key``):
one certificate, for client and server use, that every pod of the cluster presents.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Certificates:
    ca: bytes  # PEM
    cert: bytes  # PEM, signed by ``ca``
    key: bytes  # PEM (PKCS#8) of ``cert``
    ca_path: Path
    cert_path: Path
    key_path: Path


def issue(directory: Path, dns_names: tuple[str, ...] = ("localhost",),
          ips: tuple[str, ...] = ("127.0.0.1",), ca_name: str = "ember test CA") -> Certificates:
    """A new CA and a certificate it signed for ``dns_names`` and ``ips``, written to
    ``directory`` (ca.pem, node.pem, node.key) and returned as bytes too."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    valid = (now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=1))
    ca_key = ec.generate_private_key(ec.SECP256R1())
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ca_name)])
    ca = (
        x509.CertificateBuilder()
        .subject_name(issuer).issuer_name(issuer).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid[0]).not_valid_after(valid[1])
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName(name) for name in dns_names]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ember node")]))
        .issuer_name(issuer).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid[0]).not_valid_after(valid[1])
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    made = Certificates(
        ca=ca.public_bytes(serialization.Encoding.PEM),
        cert=cert.public_bytes(serialization.Encoding.PEM),
        key=key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
        ca_path=directory / "ca.pem", cert_path=directory / "node.pem", key_path=directory / "node.key",
    )
    made.ca_path.write_bytes(made.ca)
    made.cert_path.write_bytes(made.cert)
    made.key_path.write_bytes(made.key)
    made.key_path.chmod(0o600)
    return made
