"""The TLS material a secured local node gets: a CA and a server certificate it signed."""

from __future__ import annotations

import socket
import ssl
import stat
import threading
from pathlib import Path

import pytest

from bridge.devtools.localnode.certs import NodeCertificates, write_ca, write_node_certificates


def _handshake(certs: NodeCertificates, ca_file: Path, host: str) -> str:
    """Serve one TLS handshake with the node certificate; connect as a strict client."""
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(certs.cert, certs.key)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def serve() -> None:
        conn, _ = listener.accept()
        try:
            with server.wrap_socket(conn, server_side=True) as tls:
                tls.recv(1)
        except (ssl.SSLError, OSError):
            pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client = ssl.create_default_context(cafile=str(ca_file))
    client.verify_flags |= ssl.VERIFY_X509_STRICT
    try:
        with (
            socket.create_connection(listener.getsockname()) as raw,
            client.wrap_socket(raw, server_hostname=host) as tls,
        ):
            tls.send(b"x")
            return str(tls.version())
    finally:
        thread.join(timeout=5)
        listener.close()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_a_strict_client_trusting_the_ca_accepts_the_node(tmp_path: Path, host: str) -> None:
    certs = write_node_certificates(tmp_path)
    assert _handshake(certs, certs.ca_cert, host).startswith("TLS")


def test_a_client_trusting_another_ca_refuses_the_node(tmp_path: Path) -> None:
    certs = write_node_certificates(tmp_path)
    with pytest.raises(ssl.SSLCertVerificationError, match="CERTIFICATE_VERIFY_FAILED"):
        _handshake(certs, write_ca(tmp_path, "other"), "127.0.0.1")


def test_the_private_key_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    certs = write_node_certificates(tmp_path)
    assert stat.S_IMODE(certs.key.stat().st_mode) == 0o600
