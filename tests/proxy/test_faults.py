"""Faults the proxy itself answers for, each in the Elasticsearch error shape with its status."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.proxy.conftest import StartProxy


def es_error(response: httpx.Response) -> tuple[int, str]:
    body = response.json()
    assert body["error"]["root_cause"][0]["type"] == body["error"]["type"]
    return body["status"], body["error"]["type"]


def test_upstream_down_is_502(start_proxy: StartProxy, dead_upstream_url: str) -> None:
    proxy = start_proxy(dead_upstream_url)
    response = httpx.get(f"{proxy.url}/_cat/indices")
    assert (response.status_code, es_error(response)) == (
        502,
        (502, "rerank_upstream_exception"),
    )


def test_upstream_slower_than_timeout_is_504(
    start_proxy: StartProxy, slow_upstream_url: str
) -> None:
    proxy = start_proxy({"url": slow_upstream_url, "timeout_s": 0.3})
    response = httpx.get(f"{proxy.url}/_cluster/health", timeout=10)
    assert (response.status_code, es_error(response)) == (
        504,
        (504, "rerank_upstream_timeout_exception"),
    )


def test_declared_body_over_limit_is_413(start_proxy: StartProxy, dead_upstream_url: str) -> None:
    proxy = start_proxy(dead_upstream_url, limits={"max_body_bytes": 1000})
    response = httpx.put(f"{proxy.url}/idx/_doc/1", content=b"x" * 1001)
    assert (response.status_code, es_error(response)[1]) == (413, "content_too_long_exception")


def test_chunked_body_over_limit_is_413(start_proxy: StartProxy, slow_upstream_url: str) -> None:
    proxy = start_proxy(slow_upstream_url, limits={"max_body_bytes": 1000})

    def chunks() -> Iterator[bytes]:
        for _ in range(20):
            yield b"y" * 100

    response = httpx.put(f"{proxy.url}/idx/_doc/1", content=chunks(), timeout=10)
    assert response.status_code == 413


def test_search_body_over_limit_is_413(start_proxy: StartProxy, dead_upstream_url: str) -> None:
    proxy = start_proxy(dead_upstream_url, limits={"max_body_bytes": 100})
    response = httpx.post(f"{proxy.url}/idx/_search", json={"query": {"match": {"t": "z" * 200}}})
    assert response.status_code == 413


@pytest.mark.parametrize("sent", [None, "wrong"])
def test_missing_or_wrong_api_key_is_401(
    start_proxy: StartProxy, dead_upstream_url: str, sent: str | None
) -> None:
    proxy = start_proxy(dead_upstream_url, auth={"api_key": "s3cret"})
    headers = {"X-Bridge-Api-Key": sent} if sent else {}
    response = httpx.get(f"{proxy.url}/_cat/indices", headers=headers)
    assert (response.status_code, es_error(response)[1]) == (401, "security_exception")


def test_right_api_key_reaches_the_upstream(
    start_proxy: StartProxy, dead_upstream_url: str
) -> None:
    proxy = start_proxy(dead_upstream_url, auth={"api_key": "s3cret"})
    response = httpx.get(f"{proxy.url}/_cat/indices", headers={"X-Bridge-Api-Key": "s3cret"})
    assert response.status_code == 502  # got past the key check to the (dead) upstream


def test_health_needs_no_api_key(start_proxy: StartProxy, dead_upstream_url: str) -> None:
    proxy = start_proxy(dead_upstream_url, auth={"api_key": "s3cret"})
    response = httpx.get(f"{proxy.url}/_bridge/health")
    assert (response.status_code, response.json()["upstream"]["reachable"]) == (503, False)


def test_metrics_count_upstream_failures(start_proxy: StartProxy, dead_upstream_url: str) -> None:
    proxy = start_proxy(dead_upstream_url)
    httpx.get(f"{proxy.url}/_cat/indices")
    text = httpx.get(f"{proxy.url}/_bridge/metrics").text
    assert 'rerank_bridge_upstream_errors_total{kind="unreachable"} 1.0' in text


def test_rerank_route_errors_carry_the_rerank_headers(
    start_proxy: StartProxy, dead_upstream_url: str
) -> None:
    proxy = start_proxy(dead_upstream_url)
    response = httpx.post(
        f"{proxy.url}/idx/_search?rerank=true", json={"query": {"match": {"title": "drill"}}}
    )
    assert (response.status_code, response.headers["x-rerank-status"]) == (502, "skipped")


def test_rerank_search_slower_than_timeout_is_504(
    start_proxy: StartProxy, slow_upstream_url: str
) -> None:
    proxy = start_proxy({"url": slow_upstream_url, "timeout_s": 0.3})
    response = httpx.post(
        f"{proxy.url}/idx/_search",
        json={"query": {"match": {"title": "drill"}}, "rerank": {}},
        timeout=10,
    )
    assert (response.status_code, es_error(response)[1]) == (
        504,
        "rerank_upstream_timeout_exception",
    )
