"""Elasticsearch with security on (HTTP TLS, users, tokens): the wrapper and the proxy, live.

The node is a real Elasticsearch from the integ-test zip with x-pack-security enabled, HTTP TLS
with certificates the project generates, the `elastic` password set through the keystore and a
Bearer token from the token service. See tests/support/clusters.py for what cannot be had there
(API keys; OpenSearch security) and why: those tests skip with that reason.
"""

from __future__ import annotations

import logging
import ssl
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge import AsyncRerankingSearch, RerankingSearch
from bridge.devtools import load_sample
from bridge.devtools.localnode.certs import write_ca
from tests.proxy.conftest import StartProxy
from tests.support.clusters import (
    API_KEY_UNAVAILABLE,
    OPENSEARCH_SECURITY_UNAVAILABLE,
    READER,
    SecureNode,
)
from tests.support.proxy_server import ProxyServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]
QUERY = {"match": {"title": "cordless drill"}}


@pytest.fixture(scope="module")
def secure_index(es_secure_node: SecureNode) -> Iterator[str]:
    from elasticsearch import Elasticsearch

    client = Elasticsearch(
        es_secure_node.url,
        ca_certs=str(es_secure_node.ca_file),
        basic_auth=("elastic", es_secure_node.password),
    )
    name = load_sample(client, f"secure-products-{uuid.uuid4().hex[:6]}")
    client.indices.refresh(index=name)
    yield name
    client.indices.delete(index=name)
    client.close()


def _rerank(model: Path) -> dict[str, Any]:
    return {"model": str(model), "fields": ["title"], "window_size": 10, "explain": True}


def _client_auth(node: SecureNode, kind: str) -> dict[str, Any]:
    if kind == "basic_auth":
        return {"basic_auth": ("elastic", node.password)}
    if kind == "bearer_auth":
        return {"bearer_auth": node.bearer_token}
    if node.api_key is None:
        pytest.skip(API_KEY_UNAVAILABLE)
    return {"api_key": node.api_key}


@pytest.mark.parametrize("auth", ["basic_auth", "bearer_auth", "api_key"])
def test_sync_wrapper_reranks_over_tls_with_credentials(
    es_secure_node: SecureNode, secure_index: str, nano_cross_encoder_dir: Path, auth: str
) -> None:
    from elasticsearch import Elasticsearch

    client = Elasticsearch(
        es_secure_node.url,
        ca_certs=str(es_secure_node.ca_file),
        **_client_auth(es_secure_node, auth),
    )
    with RerankingSearch(client) as search:
        answer = search.search(
            index=secure_index, query=QUERY, size=5, rerank=_rerank(nano_cross_encoder_dir)
        )
    client.close()
    assert (answer["rerank"]["status"], len(answer["hits"]["hits"])) == ("ok", 5)


@pytest.mark.parametrize("auth", ["basic_auth", "bearer_auth", "api_key"])
async def test_async_wrapper_reranks_over_tls_with_credentials(
    es_secure_node: SecureNode, secure_index: str, nano_cross_encoder_dir: Path, auth: str
) -> None:
    from elasticsearch import AsyncElasticsearch

    client = AsyncElasticsearch(
        es_secure_node.url,
        ca_certs=str(es_secure_node.ca_file),
        **_client_auth(es_secure_node, auth),
    )
    try:
        answer = await AsyncRerankingSearch(client).search(
            index=secure_index, query=QUERY, size=5, rerank=_rerank(nano_cross_encoder_dir)
        )
    finally:
        await client.close()
    assert (answer["rerank"]["status"], len(answer["hits"]["hits"])) == ("ok", 5)


def test_opensearch_security_is_not_available_locally() -> None:
    pytest.skip(OPENSEARCH_SECURITY_UNAVAILABLE)


# -- the proxy in front of the secured node ---------------------------------------------------


@pytest.fixture
def secure_proxy(
    start_proxy: StartProxy, es_secure_node: SecureNode, nano_cross_encoder_dir: Path
) -> ProxyServer:
    return start_proxy(
        {"url": es_secure_node.url, "ca_file": str(es_secure_node.ca_file)},
        rerank={"model": str(nano_cross_encoder_dir), "fields": ["title"]},
    )


def _authorization(node: SecureNode, scheme: str) -> str:
    if scheme == "Basic":
        return node.basic()
    if scheme == "Bearer":
        return f"Bearer {node.bearer_token}"
    if node.api_key is None:
        pytest.skip(API_KEY_UNAVAILABLE)
    return f"ApiKey {node.api_key}"


@pytest.mark.parametrize("scheme", ["Basic", "Bearer", "ApiKey"])
def test_proxy_passes_authorization_through_and_reranks(
    secure_proxy: ProxyServer, es_secure_node: SecureNode, secure_index: str, scheme: str
) -> None:
    response = httpx.post(
        f"{secure_proxy.url}/{secure_index}/_search",
        json={"query": QUERY, "rerank": {}},
        headers={"Authorization": _authorization(es_secure_node, scheme)},
        timeout=60,
    )
    assert (response.status_code, response.headers["x-rerank-status"]) == (200, "reranked")


def test_proxy_pass_through_reaches_the_engine_as_the_caller(
    secure_proxy: ProxyServer, es_secure_node: SecureNode
) -> None:
    response = httpx.get(
        f"{secure_proxy.url}/_security/_authenticate",
        headers={"Authorization": f"Bearer {es_secure_node.bearer_token}"},
        timeout=60,
    )
    assert (response.status_code, response.json()["username"]) == (200, "elastic")


def test_elasticsearch_client_through_the_proxy_with_basic_auth(
    secure_proxy: ProxyServer, es_secure_node: SecureNode, secure_index: str
) -> None:
    from elasticsearch import Elasticsearch

    client = Elasticsearch(secure_proxy.url, basic_auth=("elastic", es_secure_node.password))
    answer = client.search(index=secure_index, query=QUERY, size=3)
    client.close()
    assert len(answer["hits"]["hits"]) == 3


def test_wrong_password_is_the_engines_own_401(
    secure_proxy: ProxyServer, es_secure_node: SecureNode, secure_index: str
) -> None:
    direct = httpx.post(
        f"{es_secure_node.url}/{secure_index}/_search",
        json={"query": QUERY},
        headers={"Authorization": es_secure_node.basic(password="wrong")},
        verify=ssl.create_default_context(cafile=str(es_secure_node.ca_file)),
    )
    proxied = httpx.post(
        f"{secure_proxy.url}/{secure_index}/_search",
        json={"query": QUERY, "rerank": {}},
        headers={"Authorization": es_secure_node.basic(password="wrong")},
    )
    assert (proxied.status_code, proxied.json(), proxied.headers["www-authenticate"]) == (
        401,
        direct.json(),
        direct.headers["www-authenticate"],
    )


def test_missing_privilege_is_the_engines_own_403(
    secure_proxy: ProxyServer, es_secure_node: SecureNode, secure_index: str
) -> None:
    reader = es_secure_node.basic(READER, es_secure_node.reader_password)
    direct = httpx.post(
        f"{es_secure_node.url}/{secure_index}/_search",
        json={"query": QUERY},
        headers={"Authorization": reader},
        verify=ssl.create_default_context(cafile=str(es_secure_node.ca_file)),
    )
    proxied = httpx.post(
        f"{secure_proxy.url}/{secure_index}/_search",
        json={"query": QUERY, "rerank": {}},
        headers={"Authorization": reader},
    )
    assert (direct.status_code, proxied.status_code, proxied.json()) == (403, 403, direct.json())


@pytest.mark.parametrize("trust", ["system", "other_ca"])
def test_untrusted_certificate_is_a_502_naming_tls(
    start_proxy: StartProxy, es_secure_node: SecureNode, tmp_path: Path, trust: str
) -> None:
    upstream: dict[str, Any] = {"url": es_secure_node.url}
    if trust == "other_ca":
        upstream["ca_file"] = str(write_ca(tmp_path, "other"))
    proxy = start_proxy(upstream)
    response = httpx.get(
        f"{proxy.url}/_cluster/health", headers={"Authorization": es_secure_node.basic()}
    )
    reason = response.json()["error"]["reason"]
    assert (
        response.status_code,
        "TLS handshake failed" in reason,
        "CERTIFICATE_VERIFY_FAILED" in reason,
    ) == (
        502,
        True,
        True,
    )


def test_no_credential_in_logs_metrics_or_errors_after_authenticated_load(
    start_proxy: StartProxy,
    es_secure_node: SecureNode,
    secure_index: str,
    nano_cross_encoder_dir: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    good = start_proxy(
        {"url": es_secure_node.url, "ca_file": str(es_secure_node.ca_file)},
        rerank={"model": str(nano_cross_encoder_dir), "fields": ["title"]},
    )
    untrusted = start_proxy({"url": es_secure_node.url, "ca_file": str(write_ca(tmp_path))})
    secrets = [es_secure_node.password, es_secure_node.bearer_token, "wr0ng-pass-word"]
    headers = [
        es_secure_node.basic(),
        f"Bearer {es_secure_node.bearer_token}",
        es_secure_node.basic(password="wr0ng-pass-word"),
    ]
    if es_secure_node.api_key is not None:
        secrets.append(es_secure_node.api_key)
        headers.append(f"ApiKey {es_secure_node.api_key}")
    secrets += [h.split(" ", 1)[1] for h in headers]  # base64 forms too
    bodies: list[str] = []
    for proxy in (good, untrusted):
        with httpx.Client(base_url=proxy.url, timeout=60) as client:
            for authorization in headers * 5:
                auth = {"Authorization": authorization}
                for answer in (
                    client.post(
                        f"/{secure_index}/_search",
                        json={"query": QUERY, "rerank": {}},
                        headers=auth,
                    ),
                    client.post(f"/{secure_index}/_search", json={"query": QUERY}, headers=auth),
                    client.get(f"/{secure_index}/_doc/nope", headers=auth),
                    client.get("/_bridge/health", headers=auth),
                ):
                    bodies.append(answer.text)
                    bodies.append(str(answer.headers))
            bodies.append(client.get("/_bridge/metrics").text)
    seen = "\n".join([caplog.text, *bodies])
    leaked = [s for s in secrets if s in seen]
    looked_at = (len(bodies) > 100, '"path":' in caplog.text, "rerank_bridge_requests" in seen)
    assert (looked_at, leaked) == ((True, True, True), [])
