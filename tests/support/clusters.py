"""Fixtures for the special nodes: Elasticsearch with security on, and 3-node clusters.

Each is started once per test session, only when a selected test needs it, and stopped at the
end (finalizer plus atexit). They are local nodes from the Maven Central integ-test zips with a
512 MB heap each; the time each took to start is printed in the test report header's place
(pytest -rA shows it in the fixture's setup section).
"""

from __future__ import annotations

import atexit
import base64
import json
import secrets
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bridge.devtools.localnode import LocalCluster, LocalNode

# the integ-test zip lacks the analysis-common module, whose `pattern_capture` filter and
# `uax_url_email` tokenizer the `.security` index mapping needs: API keys (and native users)
# live in that index, so they cannot be created there
API_KEY_UNAVAILABLE = (
    "API keys cannot be created on Elasticsearch's integ-test zip: the `.security` index they "
    "are stored in needs the analysis-common module (`pattern_capture` filter), which that "
    "distribution leaves out ('Unknown filter type [pattern_capture] for [email]')"
)
OPENSEARCH_SECURITY_UNAVAILABLE = (
    "OpenSearch's security plugin is not published on Maven Central for OpenSearch 3.5/3.6, "
    "so a local OpenSearch node cannot have security on"
)
READER = "reader"  # a file-realm user with no privilege on test indices (for the 403 tests)


@dataclass
class SecureNode:
    """A running Elasticsearch node with security on and the credentials to reach it."""

    url: str
    ca_file: Path
    password: str
    reader_password: str
    bearer_token: str
    api_key: str | None  # None: see API_KEY_UNAVAILABLE

    def request(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        """A REST call as `elastic` (set-up only; tests go through the code under test)."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"{self.url}{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json", "Authorization": self.basic()},
        )
        context = ssl.create_default_context(cafile=str(self.ca_file))
        with urllib.request.urlopen(request, context=context, timeout=60) as response:
            payload: dict[str, Any] = json.loads(response.read() or b"{}")
            return payload

    def basic(self, user: str = "elastic", password: str | None = None) -> str:
        secret = self.password if password is None else password
        return "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()


def _api_key(node: SecureNode) -> str | None:
    try:
        answer = node.request("POST", "/_security/api_key", {"name": "rerank-bridge-test"})
        return str(answer["encoded"])
    except urllib.error.HTTPError as exc:
        if b"pattern_capture" in exc.read():
            return None
        raise


@pytest.fixture(scope="session")
def es_secure_node() -> Iterator[SecureNode]:
    """Elasticsearch with security on: HTTP TLS, `elastic` password, a Bearer token."""
    reader_password = secrets.token_urlsafe(12)
    node = LocalNode(
        "elasticsearch",
        security=True,
        file_users={READER: (reader_password, ["monitoring_user"])},
    )
    atexit.register(node.stop)
    started = time.monotonic()
    try:
        url = node.start()
        assert node.ca_file is not None
        assert node.password is not None
        secure = SecureNode(url, node.ca_file, node.password, reader_password, "", None)
        token = secure.request(
            "POST",
            "/_security/oauth2/token",
            {"grant_type": "password", "username": "elastic", "password": node.password},
        )
        secure.bearer_token = str(token["access_token"])
        secure.api_key = _api_key(secure)
        print(f"\nsecured Elasticsearch node started in {time.monotonic() - started:.0f} s")
        yield secure
    finally:
        node.stop()


def _cluster(engine: str) -> Iterator[LocalCluster]:
    cluster = LocalCluster(engine, nodes=3, heap_mb=512)
    atexit.register(cluster.stop)
    started = time.monotonic()
    try:
        cluster.start()
        print(f"\n3-node {engine} cluster formed in {time.monotonic() - started:.0f} s")
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def es_cluster() -> Iterator[LocalCluster]:
    """Three Elasticsearch nodes forming one cluster on loopback (512 MB heap each)."""
    yield from _cluster("elasticsearch")


@pytest.fixture(scope="session")
def os_cluster() -> Iterator[LocalCluster]:
    """Three OpenSearch nodes forming one cluster on loopback (512 MB heap each)."""
    yield from _cluster("opensearch")
