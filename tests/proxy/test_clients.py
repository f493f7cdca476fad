"""Unmodified elasticsearch-py 9 and opensearch-py clients pointed at the proxy, real nodes behind.

Everything here goes through the pass-through path (no `rerank` anywhere), so each answer must be
what the engine itself would give.
"""

from __future__ import annotations

import gzip
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from elasticsearch import Elasticsearch
from opensearchpy import OpenSearch

from tests.proxy.conftest import StartProxy
from tests.support.proxy_server import ProxyServer

pytestmark = pytest.mark.integration

DOCS = [
    {"title": "cordless drill 18v", "brand": "Ryobi", "price": 99.0},
    {"title": "drill bit set, titanium", "brand": "DeWalt", "price": 24.5},
    {"title": "garden hose 50 ft", "brand": "Flexzilla", "price": 39.99},
    {"title": "hammer drill with battery", "brand": "Makita", "price": 189.0},
]


@dataclass
class Setup:
    engine: str
    upstream: str
    proxy: ProxyServer
    client: Any  # Elasticsearch or OpenSearch, talking to the proxy
    index: str


@pytest.fixture(params=["elasticsearch", "opensearch"])
def setup(request: pytest.FixtureRequest, start_proxy: StartProxy) -> Iterator[Setup]:
    engine = request.param
    upstream = request.getfixturevalue(
        "es_upstream" if engine == "elasticsearch" else "os_upstream"
    )
    proxy = start_proxy(upstream)
    client: Any = Elasticsearch(proxy.url) if engine == "elasticsearch" else OpenSearch([proxy.url])
    index = f"proxy-clients-{uuid.uuid4().hex[:8]}"
    yield Setup(engine, upstream, proxy, client, index)
    httpx.delete(f"{upstream}/{index}")
    client.close()


def load(setup: Setup) -> None:
    setup.client.indices.create(
        index=setup.index,
        body={
            "mappings": {"properties": {"title": {"type": "text"}, "brand": {"type": "keyword"}}}
        },
    )
    operations: list[dict[str, Any]] = []
    for i, doc in enumerate(DOCS):
        operations += [{"index": {"_index": setup.index, "_id": str(i)}}, doc]
    result = setup.client.bulk(body=operations, refresh=True)
    assert not result["errors"]


def test_create_index_and_bulk_load(setup: Setup) -> None:
    load(setup)
    assert setup.client.count(index=setup.index)["count"] == len(DOCS)


def test_index_exists_answers_head(setup: Setup) -> None:
    load(setup)
    assert (
        bool(setup.client.indices.exists(index=setup.index)),
        bool(setup.client.indices.exists(index=setup.index + "-missing")),
    ) == (True, False)


def test_get_returns_the_document(setup: Setup) -> None:
    load(setup)
    assert setup.client.get(index=setup.index, id="2")["_source"] == DOCS[2]


def test_update_changes_the_document(setup: Setup) -> None:
    load(setup)
    setup.client.update(index=setup.index, id="1", body={"doc": {"price": 19.0}}, refresh=True)
    assert setup.client.get(index=setup.index, id="1")["_source"]["price"] == 19.0


def test_delete_removes_the_document(setup: Setup) -> None:
    load(setup)
    setup.client.delete(index=setup.index, id="0", refresh=True)
    assert setup.client.count(index=setup.index)["count"] == len(DOCS) - 1


def test_search_matches_the_engine_directly(setup: Setup) -> None:
    load(setup)
    body = {"query": {"match": {"title": "drill"}}}
    through = setup.client.search(index=setup.index, body=body)
    direct = httpx.post(f"{setup.upstream}/{setup.index}/_search", json=body).json()
    assert [h["_id"] for h in through["hits"]["hits"]] == [h["_id"] for h in direct["hits"]["hits"]]


def test_msearch_answers_every_search(setup: Setup) -> None:
    load(setup)
    result = setup.client.msearch(
        body=[
            {"index": setup.index},
            {"query": {"match": {"title": "drill"}}},
            {"index": setup.index},
            {"query": {"match": {"title": "hose"}}},
        ]
    )
    assert [len(r["hits"]["hits"]) for r in result["responses"]] == [3, 1]


def test_scroll_pages_through_every_hit(setup: Setup) -> None:
    load(setup)
    page = setup.client.search(index=setup.index, body={"size": 1}, scroll="1m")
    seen = [h["_id"] for h in page["hits"]["hits"]]
    while True:
        page = setup.client.scroll(scroll_id=page["_scroll_id"], scroll="1m")
        if not page["hits"]["hits"]:
            break
        seen += [h["_id"] for h in page["hits"]["hits"]]
    setup.client.clear_scroll(scroll_id=page["_scroll_id"])
    assert sorted(seen) == ["0", "1", "2", "3"]


def test_missing_document_is_the_engine_404(setup: Setup) -> None:
    load(setup)
    response = httpx.get(f"{setup.proxy.url}/{setup.index}/_doc/nope")
    direct = httpx.get(f"{setup.upstream}/{setup.index}/_doc/nope")
    assert (response.status_code, response.content) == (direct.status_code, direct.content)


def test_documents_written_through_the_proxy_read_back_byte_identical(setup: Setup) -> None:
    load(setup)
    # odd spacing, key order, unicode and number formats the engine stores verbatim
    raw = '{ "zeta":1.10, "alpha" : "Bohrmaschine – 18 V ✓", "n":[3,2,1], "e":1e3 }'.encode()
    put = httpx.put(
        f"{setup.proxy.url}/{setup.index}/_doc/raw?refresh=true",
        content=raw,
        headers={"Content-Type": "application/json"},
    )
    assert put.status_code == 201
    direct = httpx.get(f"{setup.upstream}/{setup.index}/_source/raw")
    assert direct.content == raw


def test_gzip_request_body_reaches_the_engine(setup: Setup) -> None:
    load(setup)
    raw = b'{"title": "compressed chisel"}'
    put = httpx.put(
        f"{setup.proxy.url}/{setup.index}/_doc/gz?refresh=true",
        content=gzip.compress(raw),
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert (put.status_code, httpx.get(f"{setup.upstream}/{setup.index}/_source/gz").content) == (
        201,
        raw,
    )


def test_gzip_answer_is_passed_through_compressed(setup: Setup) -> None:
    load(setup)
    with httpx.stream(
        "GET",
        f"{setup.proxy.url}/{setup.index}/_doc/0",
        headers={"Accept-Encoding": "gzip"},
    ) as response:
        raw = b"".join(response.iter_raw())
        encoding = response.headers.get("content-encoding")
    assert (encoding, b'"_id":"0"' in gzip.decompress(raw)) == ("gzip", True)


def test_identity_client_gets_an_uncompressed_answer(setup: Setup) -> None:
    load(setup)
    response = httpx.get(
        f"{setup.proxy.url}/{setup.index}/_doc/0", headers={"Accept-Encoding": "identity"}
    )
    assert "content-encoding" not in response.headers


def test_product_header_passes_through(es_upstream: str, start_proxy: StartProxy) -> None:
    proxy = start_proxy(es_upstream)
    response = httpx.get(f"{proxy.url}/_cluster/health")
    assert response.headers.get("x-elastic-product") == "Elasticsearch"


def test_search_without_rerank_is_flagged_passthrough(setup: Setup) -> None:
    load(setup)
    response = httpx.post(f"{setup.proxy.url}/{setup.index}/_search", json={"size": 1})
    assert response.headers["x-rerank-status"] == "passthrough"
