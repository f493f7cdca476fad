"""The proxy exports its scorers' caches (hits, misses, evictions, bytes) and tokenization time."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.proxy.conftest import StartProxy
from tests.proxy.test_rerank_routes import QUERY, make_index
from tests.support.proxy_server import ProxyServer


@pytest.fixture
def es_index(es_upstream: str) -> Iterator[str]:
    index = make_index(es_upstream)
    yield index
    httpx.delete(f"{es_upstream}/{index}")


def _metric(text: str, name: str, cache: str) -> float:
    found = re.search(rf'^{name}\{{cache="{cache}",model="[^"]+"\}} (\S+)$', text, re.MULTILINE)
    assert found is not None, f"{name}{{cache={cache}}} missing from /metrics"
    return float(found.group(1))


def _search_twice(proxy: ProxyServer, index: str) -> str:
    for _ in range(2):
        body = {"query": QUERY, "rerank": {}}
        assert httpx.post(f"{proxy.url}/{index}/_search", json=body, timeout=30).status_code == 200
    return httpx.get(f"{proxy.url}/_bridge/metrics").text


def test_metrics_show_score_cache_hits_on_a_repeated_search(
    start_proxy: StartProxy, es_upstream: str, es_index: str, nano_cross_encoder_dir: Path
) -> None:
    proxy = start_proxy(
        es_upstream, rerank={"model": str(nano_cross_encoder_dir), "fields": ["title"]}
    )
    text = _search_twice(proxy, es_index)
    misses = _metric(text, "rerank_bridge_cache_misses_total", "score")
    assert (_metric(text, "rerank_bridge_cache_hits_total", "score"), misses > 0) == (misses, True)


def test_metrics_show_token_cache_hits_with_the_score_cache_off(
    start_proxy: StartProxy, es_upstream: str, es_index: str, nano_cross_encoder_dir: Path
) -> None:
    proxy = start_proxy(
        es_upstream,
        rerank={"model": str(nano_cross_encoder_dir), "fields": ["title"]},
        scorer={"cache_size": 0},
    )
    text = _search_twice(proxy, es_index)
    hits = _metric(text, "rerank_bridge_cache_hits_total", "token")
    assert (hits > 0, _metric(text, "rerank_bridge_cache_bytes", "token") > 0) == (True, True)
    assert "rerank_bridge_tokenize_seconds_total" in text


def test_a_score_cache_full_in_bytes_evicts_and_says_so_in_metrics(
    start_proxy: StartProxy, es_upstream: str, es_index: str, nano_cross_encoder_dir: Path
) -> None:
    bound = 1_500  # a few (query, title) entries of about 250 bytes each
    proxy = start_proxy(
        es_upstream,
        rerank={"model": str(nano_cross_encoder_dir), "fields": ["title"]},
        scorer={"cache_bytes": bound},
    )
    for words in ("drill", "cordless drill", "drill bit", "hammer drill", "drill press"):
        body = {"query": {"match": {"title": words}}, "rerank": {}}
        assert (
            httpx.post(f"{proxy.url}/{es_index}/_search", json=body, timeout=30).status_code == 200
        )
    text = httpx.get(f"{proxy.url}/_bridge/metrics").text
    held = _metric(text, "rerank_bridge_cache_bytes", "score")
    evicted = _metric(text, "rerank_bridge_cache_evictions_total", "score")
    assert (0 < held <= bound, evicted > 0) == (True, True)
    assert _metric(text, "rerank_bridge_cache_entries", "score") < _metric(
        text, "rerank_bridge_cache_misses_total", "score"
    )
