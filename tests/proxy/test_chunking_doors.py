"""Chunking through the three doors (sync wrapper, async wrapper, proxy) against a real node.

A product description whose drill comes after 100 tokens of plates: cut at ``max_length`` 32 the
model never sees the drill; with ``chunking`` every door scores each window, ranks that product
first, gives the same scores and names the same best window in ``explain``. The proxy's score
cache holds window scores keyed by each window's own text, so an unchunked search after a chunked
one gets the cut score, never the aggregate.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from elasticsearch import AsyncElasticsearch, Elasticsearch

from bridge.chunking import ChunkingConfig
from bridge.scoring import load_scorer
from bridge.search import AsyncRerankingSearch, RerankingSearch
from tests.proxy.conftest import StartProxy
from tests.support.proxy_server import ProxyServer

pytestmark = pytest.mark.integration

PLATES = " ".join(["white porcelain dinner plates with a blue rim"] * 12)
DOCS = [
    f"{PLATES}. DEWALT 20V MAX cordless drill kit with two batteries",
    "cordless screwdriver set",
    "drill bit case, empty",
    f"{PLATES}. matching porcelain soup bowls",
]
QUERY_TEXT = "cordless drill"
BODY = {"query": {"match_all": {}}, "size": 4}
CHUNKING = {"tokens": 24, "stride": 16, "aggregate": "max"}


@pytest.fixture(scope="module")
def index(es_upstream: str) -> Iterator[str]:
    name = f"chunking-{uuid.uuid4().hex[:8]}"
    mapping = {"mappings": {"properties": {"text": {"type": "text"}}}}
    assert httpx.put(f"{es_upstream}/{name}", json=mapping).status_code == 200
    lines = []
    for i, text in enumerate(DOCS):
        lines += [json.dumps({"index": {"_id": str(i)}}), json.dumps({"text": text})]
    bulk = httpx.post(
        f"{es_upstream}/{name}/_bulk?refresh=true",
        content="\n".join(lines) + "\n",
        headers={"Content-Type": "application/x-ndjson"},
    )
    assert not bulk.json()["errors"]
    yield name
    httpx.delete(f"{es_upstream}/{name}")


def rerank(model: Path, **extra: Any) -> dict[str, Any]:
    return {
        "model": str(model),
        "fields": ["text"],
        "query": QUERY_TEXT,
        "window_size": 4,
        "max_length": 32,
        "explain": True,
        "timeout_ms": None,
        **extra,
    }


@pytest.fixture
def proxy(start_proxy: StartProxy, es_upstream: str, homedepot_cross_encoder_dir: Path) -> Any:
    return start_proxy(
        es_upstream, rerank={"model": str(homedepot_cross_encoder_dir), "max_length": 32}
    )


def via_proxy(proxy: ProxyServer, index: str, section: dict[str, Any]) -> httpx.Response:
    section = {k: v for k, v in section.items() if k != "max_length"}  # fixed by the proxy
    return httpx.post(f"{proxy.url}/{index}/_search", json={**BODY, "rerank": section}, timeout=60)


def summary(answer: Any) -> list[tuple[str, float, Any]]:
    """Per hit in answered order: id, model score and the best window's text/span/count."""
    out = []
    for hit in answer["hits"]["hits"]:
        best = hit["_rerank"].get("best_window")
        window = (best["text"], best["tokens"], best["windows"]) if best else None
        out.append((hit["_id"], round(hit["_rerank"]["model_score"], 6), window))
    return out


def test_every_door_ranks_by_windows_and_names_the_same_best_window(
    proxy: ProxyServer, es_upstream: str, index: str, homedepot_cross_encoder_dir: Path
) -> None:
    section = rerank(homedepot_cross_encoder_dir, chunking=CHUNKING)
    with Elasticsearch(es_upstream) as client, RerankingSearch(client) as door:
        sync_answer = door.search(index=index, body=BODY, rerank=section).body
        cut_answer = door.search(index=index, body=BODY, rerank={**section, "chunking": None})

    async def through_async() -> Any:
        async with AsyncElasticsearch(es_upstream) as client:
            door = AsyncRerankingSearch(client)
            return (await door.search(index=index, body=BODY, rerank=section)).body

    async_answer = asyncio.run(through_async())
    proxy_answer = via_proxy(proxy, index, section).json()

    expected = summary(sync_answer)
    assert (summary(async_answer), summary(proxy_answer)) == (expected, expected)
    top_id, _, (text, tokens, windows) = expected[0]
    assert (top_id, "cordless drill" in text) == ("0", True)
    assert (windows > 3, tokens[1] > 100) == (True, True)
    assert cut_answer["hits"]["hits"][0]["_id"] != "0"  # cut at 32 tokens it never saw the drill
    assert sync_answer["rerank"]["chunking"] == {**CHUNKING, "size": None}
    assert proxy_answer["rerank"]["chunking"] == sync_answer["rerank"]["chunking"]


def test_the_proxy_never_serves_a_chunked_score_to_an_unchunked_search(
    proxy: ProxyServer, index: str, homedepot_cross_encoder_dir: Path
) -> None:
    chunked = via_proxy(proxy, index, rerank(homedepot_cross_encoder_dir, chunking=CHUNKING))
    cut = via_proxy(proxy, index, rerank(homedepot_cross_encoder_dir))
    again = via_proxy(proxy, index, rerank(homedepot_cross_encoder_dir, chunking=CHUNKING))
    scorer = load_scorer(homedepot_cross_encoder_dir, max_length=32, cache_size=0)
    fresh = dict(zip(map(str, range(len(DOCS))), scorer.score(QUERY_TEXT, DOCS), strict=True))
    cut_scores = {h["_id"]: h["_rerank"]["model_score"] for h in cut.json()["hits"]["hits"]}
    assert cut_scores == pytest.approx(fresh, abs=1e-5)
    assert summary(again.json()) == summary(chunked.json())
    assert chunked.json()["hits"]["hits"][0]["_rerank"]["model_score"] > cut_scores["0"] + 0.2


def test_msearch_chunks_only_the_searches_that_ask(
    proxy: ProxyServer, index: str, homedepot_cross_encoder_dir: Path
) -> None:
    lines = []
    for chunking in (CHUNKING, None):
        section = rerank(homedepot_cross_encoder_dir, chunking=chunking)
        section.pop("max_length")
        lines += [json.dumps({"index": index}), json.dumps({**BODY, "rerank": section})]
    response = httpx.post(
        f"{proxy.url}/_msearch",
        content="\n".join(lines) + "\n",
        headers={"Content-Type": "application/x-ndjson"},
        timeout=60,
    )
    first, second = response.json()["responses"]
    assert first["hits"]["hits"][0]["_id"] == "0"
    assert "best_window" in first["hits"]["hits"][0]["_rerank"]
    assert all("best_window" not in h["_rerank"] for h in second["hits"]["hits"])


@pytest.mark.parametrize(
    ("chunking", "field"),
    [
        ({"tokens": 0}, "rerank.chunking.tokens"),
        ({"tokens": 16, "stride": 32}, "rerank.chunking.stride"),
        ({"aggregate": "median"}, "rerank.chunking.aggregate"),
        ({"size": -1}, "rerank.chunking.size"),
        ({"max_chunk_size": 300}, "rerank.chunking.max_chunk_size"),
        ("max", "rerank.chunking"),
    ],
)
def test_bad_chunking_is_400_naming_the_field(
    proxy: ProxyServer, index: str, chunking: Any, field: str
) -> None:
    response = via_proxy(proxy, index, {"chunking": chunking})
    error = response.json()["error"]
    assert (response.status_code, error["type"], f"[{field}]" in error["reason"]) == (
        400,
        "illegal_argument_exception",
        True,
    )


def test_bad_chunking_is_a_config_error_in_the_wrapper(
    es_upstream: str, index: str, homedepot_cross_encoder_dir: Path
) -> None:
    from bridge.errors import ConfigError

    section = rerank(homedepot_cross_encoder_dir, chunking={"stride": 0})
    with (
        Elasticsearch(es_upstream) as client,
        RerankingSearch(client) as door,
        pytest.raises(ConfigError) as caught,
    ):
        door.search(index=index, body=BODY, rerank=section)
    assert caught.value.field == "rerank.chunking.stride"


def test_a_bi_encoder_reranks_by_its_best_window_through_the_wrapper(
    es_upstream: str, index: str, bi_encoder_dir: Path
) -> None:
    section = rerank(bi_encoder_dir, chunking=CHUNKING)
    with Elasticsearch(es_upstream) as client, RerankingSearch(client) as door:
        answer = door.search(index=index, body=BODY, rerank=section).body
    scorer = load_scorer(bi_encoder_dir, max_length=32)
    chunked = scorer.score_chunked(QUERY_TEXT, DOCS, ChunkingConfig(tokens=24, stride=16))
    got = {h["_id"]: h["_rerank"]["model_score"] for h in answer["hits"]["hits"]}
    assert got == pytest.approx(dict(zip(map(str, range(4)), chunked.scores, strict=True)))
    assert answer["rerank"]["status"] == "ok"
