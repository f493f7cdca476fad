"""Rerank routes against real engines: shape, order, headers, errors and failing open."""

from __future__ import annotations

import gzip
import json
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge.scoring import load_scorer
from tests.proxy.conftest import StartProxy
from tests.support.proxy_server import ProxyServer

pytestmark = pytest.mark.integration

TITLES = [
    "cordless drill 18v lithium",
    "drill bit set titanium",
    "garden hose 50 ft",
    "hammer drill with battery",
    "drill press bench",
    "paint brush set",
    "drill driver combo kit",
]
QUERY = {"match": {"title": "drill"}}


def make_index(upstream: str) -> str:
    index = f"proxy-rerank-{uuid.uuid4().hex[:8]}"
    mapping = {"mappings": {"properties": {"title": {"type": "text"}, "n": {"type": "integer"}}}}
    assert httpx.put(f"{upstream}/{index}", json=mapping).status_code == 200
    lines = []
    for i, title in enumerate(TITLES):
        lines += [json.dumps({"index": {"_id": str(i)}}), json.dumps({"title": title, "n": i})]
    bulk = httpx.post(
        f"{upstream}/{index}/_bulk?refresh=true",
        content="\n".join(lines) + "\n",
        headers={"Content-Type": "application/x-ndjson"},
    )
    assert not bulk.json()["errors"]
    return index


@pytest.fixture(scope="module")
def es_index(es_upstream: str) -> Iterator[str]:
    index = make_index(es_upstream)
    yield index
    httpx.delete(f"{es_upstream}/{index}")


@pytest.fixture
def proxy(start_proxy: StartProxy, es_upstream: str, nano_cross_encoder_dir: Path) -> ProxyServer:
    return start_proxy(
        es_upstream, rerank={"model": str(nano_cross_encoder_dir), "fields": ["title"]}
    )


def search(proxy: ProxyServer, index: str, body: Any, query: str = "") -> httpx.Response:
    return httpx.post(f"{proxy.url}/{index}/_search{query}", json=body, timeout=30)


def ids(response: httpx.Response | dict[str, Any]) -> list[str]:
    body = response.json() if isinstance(response, httpx.Response) else response
    return [hit["_id"] for hit in body["hits"]["hits"]]


def test_reranked_answer_has_exactly_the_engine_keys(
    proxy: ProxyServer, es_upstream: str, es_index: str
) -> None:
    through = search(proxy, es_index, {"query": QUERY, "rerank": {}}).json()
    direct = httpx.post(f"{es_upstream}/{es_index}/_search", json={"query": QUERY}).json()
    shape = (set(through), set(through["hits"]), {k for h in through["hits"]["hits"] for k in h})
    expected = (set(direct), set(direct["hits"]), {k for h in direct["hits"]["hits"] for k in h})
    assert shape == expected


def test_rerank_section_is_stripped_and_search_reranked(proxy: ProxyServer, es_index: str) -> None:
    response = search(proxy, es_index, {"query": QUERY, "rerank": {"window_size": 10}})
    assert (response.status_code, response.headers["x-rerank-status"]) == (200, "reranked")


def test_rerank_url_flag_uses_server_defaults(proxy: ProxyServer, es_index: str) -> None:
    response = search(proxy, es_index, {"query": QUERY}, "?rerank=true")
    assert (response.status_code, response.headers["x-rerank-status"]) == (200, "reranked")


def test_rerank_headers_name_model_and_time(
    proxy: ProxyServer, es_index: str, nano_cross_encoder_dir: Path
) -> None:
    response = search(proxy, es_index, {"query": QUERY, "rerank": {}})
    assert (response.headers["x-rerank-model"], float(response.headers["x-rerank-took"]) > 0) == (
        str(nano_cross_encoder_dir),
        True,
    )


def test_order_follows_the_model_scores(
    proxy: ProxyServer, es_index: str, nano_cross_encoder_dir: Path
) -> None:
    body = search(proxy, es_index, {"query": QUERY, "size": 5, "rerank": {}}).json()
    scorer = load_scorer(nano_cross_encoder_dir)
    titles = [hit["_source"]["title"] for hit in body["hits"]["hits"]]
    expected = scorer.score("drill", titles)
    assert [hit["_score"] for hit in body["hits"]["hits"]] == pytest.approx(
        sorted(expected, reverse=True), abs=1e-5
    )


def test_pages_inside_the_window_do_not_overlap(proxy: ProxyServer, es_index: str) -> None:
    first = ids(search(proxy, es_index, {"query": QUERY, "size": 2, "rerank": {}}))
    second = ids(search(proxy, es_index, {"query": QUERY, "from": 2, "size": 2, "rerank": {}}))
    full = ids(search(proxy, es_index, {"query": QUERY, "size": 4, "rerank": {}}))
    assert first + second == full


def test_explain_adds_rerank_details(proxy: ProxyServer, es_index: str) -> None:
    body = search(proxy, es_index, {"query": QUERY, "rerank": {"explain": True}}).json()
    assert ("rerank" in body, "_rerank" in body["hits"]["hits"][0]) == (True, True)


def test_malformed_json_is_400_parse_exception(proxy: ProxyServer, es_index: str) -> None:
    response = httpx.post(
        f"{proxy.url}/{es_index}/_search?rerank=true",
        content=b'{"query": {"match": ',
        headers={"Content-Type": "application/json"},
    )
    error = response.json()["error"]
    assert (response.status_code, error["type"], error["reason"].startswith("[body]")) == (
        400,
        "parse_exception",
        True,
    )


def test_bad_rerank_value_is_400_naming_the_field(proxy: ProxyServer, es_index: str) -> None:
    response = search(proxy, es_index, {"query": QUERY, "rerank": {"window_size": -3}})
    error = response.json()["error"]
    assert (response.status_code, error["type"], "rerank.window_size" in error["reason"]) == (
        400,
        "illegal_argument_exception",
        True,
    )


def test_unknown_rerank_field_is_400_naming_it(proxy: ProxyServer, es_index: str) -> None:
    response = search(proxy, es_index, {"query": QUERY, "rerank": {"windowsize": 3}})
    assert (response.status_code, "rerank.windowsize" in response.json()["error"]["reason"]) == (
        400,
        True,
    )


def test_bad_rerank_flag_is_400(proxy: ProxyServer, es_index: str) -> None:
    response = search(proxy, es_index, {"query": QUERY}, "?rerank=maybe")
    assert (response.status_code, response.json()["error"]["reason"].startswith("[rerank]")) == (
        400,
        True,
    )


def test_window_over_the_server_limit_is_400(
    start_proxy: StartProxy, es_upstream: str, es_index: str, nano_cross_encoder_dir: Path
) -> None:
    proxy = start_proxy(
        es_upstream,
        limits={"max_window": 5},
        rerank={"model": str(nano_cross_encoder_dir), "window_size": 5},
    )
    response = search(proxy, es_index, {"query": QUERY, "rerank": {"window_size": 50}})
    assert response.status_code == 400


def test_model_failure_keeps_engine_order_and_says_skipped(
    start_proxy: StartProxy, es_upstream: str, es_index: str, tmp_path: Path
) -> None:
    proxy = start_proxy(es_upstream, rerank={"model": str(tmp_path / "no-such-model")})
    response = search(proxy, es_index, {"query": QUERY})  # nothing asked: engine order reference
    reranked = search(proxy, es_index, {"query": QUERY, "rerank": {}})
    assert (reranked.status_code, reranked.headers["x-rerank-status"], ids(reranked)) == (
        200,
        "skipped",
        ids(response),
    )


def test_model_slower_than_timeout_fails_open(
    start_proxy: StartProxy, es_upstream: str, es_index: str, nano_cross_encoder_dir: Path
) -> None:
    real = load_scorer(nano_cross_encoder_dir)

    class Slow:  # fault injection: the real model, made slow
        max_length = real.max_length
        cache = None

        def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
            time.sleep(0.5)
            return real.score_pairs(pairs)

    proxy = start_proxy(es_upstream, loader=lambda model, length: Slow(), rerank={"model": "slow"})
    reranked = search(proxy, es_index, {"query": QUERY, "rerank": {"timeout_ms": 50}})
    assert (reranked.status_code, reranked.headers["x-rerank-status"]) == (200, "skipped")


def test_model_failure_with_on_failure_error_is_an_error(
    start_proxy: StartProxy, es_upstream: str, es_index: str, tmp_path: Path
) -> None:
    proxy = start_proxy(es_upstream, rerank={"model": str(tmp_path / "no-such-model")})
    response = search(proxy, es_index, {"query": QUERY, "rerank": {"on_failure": "error"}})
    assert response.json()["error"]["type"].startswith("rerank_model")


def test_scroll_with_rerank_is_passed_through_unreranked(proxy: ProxyServer, es_index: str) -> None:
    response = search(proxy, es_index, {"query": QUERY, "size": 2, "rerank": {}}, "?scroll=1m")
    assert (
        response.status_code,
        response.headers["x-rerank-status"],
        "_scroll_id" in response.json(),
    ) == (
        200,
        "skipped",
        True,
    )


def test_index_settings_choose_the_model(
    start_proxy: StartProxy, es_upstream: str, es_index: str, nano_cross_encoder_dir: Path
) -> None:
    proxy = start_proxy(
        es_upstream,
        rerank={"model": str(nano_cross_encoder_dir)},
        indices={"proxy-rerank-*": {"model": "per-index-model-that-does-not-exist"}},
    )
    response = search(proxy, es_index, {"query": QUERY, "rerank": {}})
    assert response.headers["x-rerank-model"] == "per-index-model-that-does-not-exist"


def test_gzip_request_with_rerank_is_reranked(proxy: ProxyServer, es_index: str) -> None:
    response = httpx.post(
        f"{proxy.url}/{es_index}/_search",
        content=gzip.compress(json.dumps({"query": QUERY, "rerank": {}}).encode()),
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert response.headers["x-rerank-status"] == "reranked"


def test_msearch_reranks_only_searches_asking_for_it(proxy: ProxyServer, es_index: str) -> None:
    lines = [
        {"index": es_index},
        {"query": QUERY, "rerank": {"explain": True}},
        {"index": es_index},
        {"query": QUERY},
    ]
    response = httpx.post(
        f"{proxy.url}/_msearch",
        content="\n".join(json.dumps(line) for line in lines) + "\n",
        headers={"Content-Type": "application/x-ndjson"},
    )
    first, second = response.json()["responses"]
    assert ("rerank" in first, "rerank" in second, response.headers["x-rerank-status"]) == (
        True,
        False,
        "reranked",
    )


def test_msearch_bad_rerank_names_the_search(proxy: ProxyServer, es_index: str) -> None:
    lines = [{"index": es_index}, {"query": QUERY}, {}, {"query": QUERY, "rerank": {"fusion": 3}}]
    response = httpx.post(
        f"{proxy.url}/{es_index}/_msearch",
        content="\n".join(json.dumps(line) for line in lines) + "\n",
        headers={"Content-Type": "application/x-ndjson"},
    )
    assert (response.status_code, "searches[1]" in response.json()["error"]["reason"]) == (
        400,
        True,
    )


def test_elasticsearch_client_reads_reranked_answers(proxy: ProxyServer, es_index: str) -> None:
    from elasticsearch import Elasticsearch

    with Elasticsearch(proxy.url, http_compress=True) as client:
        result = client.search(index=es_index, body={"query": QUERY, "rerank": {}})
    assert result.meta.headers["x-rerank-status"] == "reranked"


def test_opensearch_client_reads_reranked_answers(
    start_proxy: StartProxy, os_upstream: str, nano_cross_encoder_dir: Path
) -> None:
    from opensearchpy import OpenSearch

    index = make_index(os_upstream)
    proxy = start_proxy(os_upstream, rerank={"model": str(nano_cross_encoder_dir)})
    client = OpenSearch([proxy.url])
    try:
        body = {"query": QUERY, "size": 3, "rerank": {"fields": ["title"], "explain": True}}
        result = client.search(index=index, body=body)
    finally:
        client.close()
        httpx.delete(f"{os_upstream}/{index}")
    assert [hit["_rerank"]["status"] for hit in result["hits"]["hits"]] == ["reranked"] * 3


def test_msearch_reranked_answers_keep_the_engine_keys(
    proxy: ProxyServer, es_upstream: str, es_index: str
) -> None:
    lines = [{"index": es_index}, {"query": QUERY, "rerank": {}}]
    content = "\n".join(json.dumps(line) for line in lines) + "\n"
    headers = {"Content-Type": "application/x-ndjson"}
    through = httpx.post(f"{proxy.url}/_msearch", content=content, headers=headers).json()
    plain = "\n".join(json.dumps(line) for line in [lines[0], {"query": QUERY}]) + "\n"
    direct = httpx.post(f"{es_upstream}/_msearch", content=plain, headers=headers).json()
    got, expected = through["responses"][0], direct["responses"][0]
    assert (set(through), set(got), {k for h in got["hits"]["hits"] for k in h}) == (
        set(direct),
        set(expected),
        {k for h in expected["hits"]["hits"] for k in h},
    )


def test_metrics_count_reranks_and_batches(proxy: ProxyServer, es_index: str) -> None:
    # a query text of its own: pairs the process-wide score cache has not seen need a model run
    search(proxy, es_index, {"query": QUERY, "rerank": {"query": f"drill {uuid.uuid4().hex}"}})
    text = httpx.get(f"{proxy.url}/_bridge/metrics").text
    assert ('status="reranked"' in text, "rerank_bridge_batch_pairs_count" in text) == (True, True)


def test_health_lists_the_loaded_model(
    proxy: ProxyServer, es_index: str, nano_cross_encoder_dir: Path
) -> None:
    body = httpx.get(f"{proxy.url}/_bridge/health").json()
    assert (body["status"], body["models"]) == (
        "ok",
        {str(nano_cross_encoder_dir): {"state": "loaded"}},
    )


def test_request_cannot_load_an_arbitrary_model_path(
    proxy: ProxyServer, es_index: str, tmp_path: Path
) -> None:
    response = search(proxy, es_index, {"query": QUERY, "rerank": {"model": str(tmp_path)}})
    assert (response.status_code, "rerank.model" in response.json()["error"]["reason"]) == (
        400,
        True,
    )


def test_search_without_hits_counts_as_reranked(proxy: ProxyServer, es_index: str) -> None:
    response = search(proxy, es_index, {"query": {"match": {"title": "zzzz"}}, "rerank": {}})
    assert (response.json()["hits"]["hits"], response.headers["x-rerank-status"]) == (
        [],
        "reranked",
    )


def test_reranked_answer_is_gzipped_for_clients_that_accept_it(
    proxy: ProxyServer, es_index: str
) -> None:
    response = httpx.post(
        f"{proxy.url}/{es_index}/_search",
        json={"query": QUERY, "rerank": {"explain": True}},  # explain: well over 1 KiB
        headers={"Accept-Encoding": "gzip"},
    )
    assert (response.headers.get("content-encoding"), len(response.json()["hits"]["hits"])) == (
        "gzip",
        5,
    )


def test_reranked_answer_is_plain_for_clients_without_gzip(
    proxy: ProxyServer, es_index: str
) -> None:
    response = httpx.post(
        f"{proxy.url}/{es_index}/_search",
        json={"query": QUERY, "rerank": {}},
        headers={"Accept-Encoding": "identity"},
    )
    assert "content-encoding" not in response.headers


def test_engine_error_on_a_rerank_search_is_the_engine_answer(
    proxy: ProxyServer, es_upstream: str
) -> None:
    missing = f"proxy-missing-{uuid.uuid4().hex[:6]}"
    through = search(proxy, missing, {"query": QUERY, "rerank": {}})
    direct = httpx.post(f"{es_upstream}/{missing}/_search", json={"query": QUERY})
    assert (
        through.status_code,
        through.json()["error"]["type"],
        through.headers["x-rerank-status"],
    ) == (
        direct.status_code,
        direct.json()["error"]["type"],
        "skipped",
    )


def test_filter_path_applies_to_the_reranked_answer(proxy: ProxyServer, es_index: str) -> None:
    response = search(
        proxy, es_index, {"query": QUERY, "size": 2}, "?rerank=true&filter_path=hits.hits._id"
    )
    assert (response.headers["x-rerank-status"], list(response.json()), len(ids(response))) == (
        "reranked",
        ["hits"],
        2,
    )


def test_concurrent_searches_each_get_their_own_ranking(
    start_proxy: StartProxy, es_upstream: str, es_index: str, bi_encoder_dir: Path
) -> None:
    import asyncio

    # fp32 model: int8 models quantize activations per run, so their scores shift a little
    # with the batch they are in; a long wait so that the concurrent searches share runs
    proxy = start_proxy(
        es_upstream,
        rerank={"model": str(bi_encoder_dir), "fields": ["title"]},
        batching={"max_wait_ms": 50},
        scorer={"cache_size": 0},  # every pair scored again, in the shared runs
    )
    terms = ["drill", "drill set", "hammer drill", "drill kit", "bench drill", "drill battery"]
    bodies = [{"query": {"match": {"title": term}}, "rerank": {}} for term in terms]
    alone = [search(proxy, es_index, body).json()["hits"]["hits"] for body in bodies]

    async def together() -> list[Any]:
        async with httpx.AsyncClient(timeout=30) as client:
            answers = await asyncio.gather(
                *(client.post(f"{proxy.url}/{es_index}/_search", json=body) for body in bodies)
            )
        return [answer.json()["hits"]["hits"] for answer in answers]

    shared = asyncio.run(together())
    metrics = httpx.get(f"{proxy.url}/_bridge/metrics").text
    runs = next(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("rerank_bridge_batch_requests_count")
    )
    # the alone pass made one run per search; the shared pass must have needed fewer
    assert runs < 2 * len(terms)
    assert [h["_score"] for hits in shared for h in hits] == pytest.approx(
        [h["_score"] for hits in alone for h in hits], abs=1e-4
    )


def test_request_cannot_choose_its_own_max_length(proxy: ProxyServer, es_index: str) -> None:
    response = search(proxy, es_index, {"query": QUERY, "rerank": {"max_length": 77}})
    assert (response.status_code, "rerank.max_length" in response.json()["error"]["reason"]) == (
        400,
        True,
    )
