"""One request, three doors (sync wrapper, async wrapper, proxy): the same explain fields.

All three drive the same sans-I/O flow, so a reranked search explains itself identically whichever
door it came through: the summary's keys, its timings (engine included) and each hit's details.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from elasticsearch import AsyncElasticsearch, Elasticsearch

from bridge.search import AsyncRerankingSearch, RerankingSearch
from tests.proxy.conftest import StartProxy
from tests.proxy.test_rerank_routes import QUERY, make_index

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def index(es_upstream: str) -> Iterator[str]:
    name = make_index(es_upstream)
    yield name
    httpx.delete(f"{es_upstream}/{name}")


def explain_keys(answer: Any) -> tuple[list[str], list[str], list[list[str]]]:
    summary = answer["rerank"]
    hits = answer["hits"]["hits"]
    return sorted(summary), sorted(summary["timings_ms"]), [sorted(h["_rerank"]) for h in hits]


def test_explain_keys_are_identical_through_all_three_doors(
    start_proxy: StartProxy, es_upstream: str, index: str, nano_cross_encoder_dir: Path
) -> None:
    rerank = {
        "model": str(nano_cross_encoder_dir),
        "fields": ["title"],
        "window_size": 5,
        "explain": True,
        "timeout_ms": None,
    }
    body = {"query": QUERY, "size": 5}
    with Elasticsearch(es_upstream) as client, RerankingSearch(client) as door:
        sync_answer = door.search(index=index, body=body, rerank=rerank).body

    async def through_async() -> Any:
        async with AsyncElasticsearch(es_upstream) as client:
            return (
                await AsyncRerankingSearch(client).search(index=index, body=body, rerank=rerank)
            ).body

    async_answer = asyncio.run(through_async())
    proxy = start_proxy(es_upstream, rerank={"model": str(nano_cross_encoder_dir)})
    proxy_answer = httpx.post(
        f"{proxy.url}/{index}/_search", json={**body, "rerank": rerank}, timeout=30
    ).json()
    keys = {explain_keys(a) == explain_keys(sync_answer) for a in (async_answer, proxy_answer)}
    assert (keys, "engine" in sync_answer["rerank"]["timings_ms"]) == ({True}, True)
