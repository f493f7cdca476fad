"""TLS material for a local node with security on: a throwaway CA and a server certificate.

Built with `cryptography` (the `node` extra), never by hand: a CA certificate (the file clients
pass as ``ca_certs`` / ``upstream.ca_file``) and a certificate for 127.0.0.1, ::1 and localhost
signed by it, with the extensions strict verifiers ask for (key usage, key identifiers). The keys
are unencrypted PEM readable only by their owner; they exist only for a test or dev node.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.errors import NodeError

DEFAULT_HOSTS = ("127.0.0.1", "::1", "localhost")
_KEY_BITS = 2048


@dataclass(frozen=True)
class NodeCertificates:
    """Where the PEM files are: the CA certificate, the node certificate and its private key."""

    ca_cert: Path
    cert: Path
    key: Path


def _crypto() -> Any:
    try:
        from cryptography import x509
    except ImportError:
        raise NodeError(
            "a node with security on needs the `cryptography` package: "
            "pip install 'rerank-bridge[node]'"
        ) from None
    return x509


def _new_key() -> Any:
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=_KEY_BITS)


def _name(common_name: str) -> Any:
    x509 = _crypto()
    from cryptography.x509.oid import NameOID

    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "rerank-bridge local node"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _san(hosts: Sequence[str]) -> Any:
    x509 = _crypto()
    names: list[Any] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def make_ca(common_name: str = "rerank-bridge local CA", *, days: int = 30) -> tuple[Any, Any]:
    """A self-signed CA: (certificate, private key)."""
    x509 = _crypto()
    from cryptography.hazmat.primitives import hashes

    key = _new_key()
    now = datetime.datetime.now(datetime.timezone.utc)
    name = _name(common_name)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    return builder.sign(key, hashes.SHA256()), key


def make_server_cert(
    ca_cert: Any, ca_key: Any, hosts: Sequence[str] = DEFAULT_HOSTS, *, days: int = 30
) -> tuple[Any, Any]:
    """A server (and client) certificate for ``hosts`` signed by the CA: (certificate, key)."""
    x509 = _crypto()
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID

    key = _new_key()
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(_san(hosts), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
    )
    return builder.sign(ca_key, hashes.SHA256()), key


def _key_usage(*, ca: bool) -> Any:
    x509 = _crypto()
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=not ca,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def cert_pem(cert: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    pem: bytes = cert.public_bytes(serialization.Encoding.PEM)
    return pem


def key_pem(key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    pem: bytes = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return pem


def write_ca(directory: Path, name: str = "ca") -> Path:
    """Only a CA certificate (its key is thrown away): e.g. a CA that signed nothing you trust."""
    cert, _key = make_ca(f"rerank-bridge {name}")
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.crt"
    path.write_bytes(cert_pem(cert))
    return path


def write_node_certificates(
    directory: Path, hosts: Sequence[str] = DEFAULT_HOSTS, *, days: int = 30
) -> NodeCertificates:
    """Write ca.crt, node.crt and node.key (mode 0600) into ``directory``."""
    ca_cert, ca_key = make_ca(days=days)
    cert, key = make_server_cert(ca_cert, ca_key, hosts, days=days)
    directory.mkdir(parents=True, exist_ok=True)
    paths = NodeCertificates(
        ca_cert=directory / "ca.crt", cert=directory / "node.crt", key=directory / "node.key"
    )
    paths.ca_cert.write_bytes(cert_pem(ca_cert))
    paths.cert.write_bytes(cert_pem(cert))
    fd = os.open(paths.key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key_pem(key))
    return paths
