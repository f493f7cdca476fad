"""The thin hop (bridge.proxy.hop, bridge.proxy.h1_pool) against a real engine: what the proxy
does not rerank goes through exactly as the engine answers it; what it must rerank still is."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import Iterator
from pathlib import Path

import httpcore
import httpx
import pytest

from bridge.proxy.h1_pool import H1Pool
from tests.proxy import test_rerank_routes as routes
from tests.proxy.conftest import StartProxy
from tests.support.proxy_server import ProxyServer

pytestmark = pytest.mark.integration
QUERY = routes.QUERY
es_index = routes.es_index  # the rerank routes' fixtures: a small index, a proxy with a model
proxy = routes.proxy


def post(url: str, body: bytes, **headers: str) -> httpx.Response:
    merged = {"content-type": "application/json", **headers}
    return httpx.post(url, content=body, headers=merged, timeout=30)


def test_search_without_rerank_is_the_engine_answer(
    proxy: ProxyServer, es_upstream: str, es_index: str
) -> None:
    body = json.dumps({"query": QUERY, "size": 3}).encode()
    via = post(f"{proxy.url}/{es_index}/_search", body)
    direct = post(f"{es_upstream}/{es_index}/_search", body)
    assert via.status_code == 200
    assert via.headers["x-rerank-status"] == "passthrough"
    assert [h["_id"] for h in via.json()["hits"]["hits"]] == [
        h["_id"] for h in direct.json()["hits"]["hits"]
    ]


def test_rerank_only_as_a_value_goes_through_unreranked(
    proxy: ProxyServer, es_upstream: str, es_index: str
) -> None:
    body = json.dumps({"query": {"match": {"title": "rerank drill"}}, "size": 3}).encode()
    via = post(f"{proxy.url}/{es_index}/_search", body)
    assert via.headers["x-rerank-status"] == "passthrough"
    direct = post(f"{es_upstream}/{es_index}/_search", body)
    assert via.json()["hits"]["hits"] == direct.json()["hits"]["hits"]


def test_an_escaped_rerank_key_is_reranked(proxy: ProxyServer, es_index: str) -> None:
    body = b'{"query": {"match": {"title": "drill"}}, "\\u0072eran\\u006B": {}}'
    answer = post(f"{proxy.url}/{es_index}/_search", body)
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-rerank-status"] == "reranked"


def test_a_gzipped_search_without_rerank_goes_through(proxy: ProxyServer, es_index: str) -> None:
    body = gzip.compress(json.dumps({"query": QUERY, "size": 2}).encode())
    answer = post(f"{proxy.url}/{es_index}/_search", body, **{"content-encoding": "gzip"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-rerank-status"] == "passthrough"
    assert len(answer.json()["hits"]["hits"]) == 2


def test_policy_always_reranks_a_search_without_rerank(
    start_proxy: StartProxy, es_upstream: str, es_index: str, nano_cross_encoder_dir: Path
) -> None:
    proxy = start_proxy(
        es_upstream,
        rerank={"model": str(nano_cross_encoder_dir), "fields": ["title"]},
        indices={es_index: {"rerank": "always"}},
    )
    body = json.dumps({"query": QUERY}).encode()
    assert post(f"{proxy.url}/{es_index}/_search", body).headers["x-rerank-status"] == "reranked"


def test_count_head_and_writes_go_through(
    proxy: ProxyServer, es_upstream: str, es_index: str
) -> None:
    body = json.dumps({"query": QUERY}).encode()
    assert (
        post(f"{proxy.url}/{es_index}/_count", body).json()["count"]
        == post(f"{es_upstream}/{es_index}/_count", body).json()["count"]
    )
    head = httpx.head(f"{proxy.url}/{es_index}", timeout=10)  # HEAD: no body despite its length
    assert head.status_code == 200
    assert httpx.head(f"{proxy.url}/{es_index}-missing", timeout=10).status_code == 404

    def chunks() -> Iterator[bytes]:  # a body streamed without a length: sent on chunked
        yield b'{"title": '
        yield b'"streamed chunked body"}'

    doc = httpx.put(
        f"{proxy.url}/{es_index}/_doc/streamed?refresh=true",
        content=chunks(),
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert doc.status_code in (200, 201), doc.text
    got = httpx.get(f"{es_upstream}/{es_index}/_doc/streamed", timeout=10).json()
    assert got["_source"] == {"title": "streamed chunked body"}
    httpx.delete(f"{es_upstream}/{es_index}/_doc/streamed?refresh=true", timeout=10)


def test_a_large_answer_is_relayed_whole(
    proxy: ProxyServer, es_upstream: str, es_index: str
) -> None:
    # an answer far past the pool's 256 KiB read-ahead (reading pauses and resumes)
    docs = {"docs": [{"_index": es_index, "_id": str(i % 7)} for i in range(6000)]}
    mget = json.dumps(docs).encode()
    via = post(f"{proxy.url}/_mget", mget)
    direct = post(f"{es_upstream}/_mget", mget)
    assert len(direct.content) > 512 * 1024
    assert via.content == direct.content


def test_the_pool_keeps_one_connection_for_sequential_requests(es_upstream: str) -> None:
    host, port = es_upstream.split("//")[1].rsplit(":", 1)

    async def run() -> tuple[int, int]:
        pool = H1Pool(host, int(port), max_connections=4)
        for _ in range(5):
            answer = await pool.request(
                b"GET", b"/_cluster/health", [(b"host", b"es")], None, {"read": 10}
            )
            assert answer.status == 200
            assert json.loads(b"".join([c async for c in answer.stream]))["cluster_name"]
        opened = pool._count
        await pool.aclose()
        return opened, pool._count

    assert asyncio.run(run()) == (1, 0)


async def _serve_once(reply: bytes) -> tuple[asyncio.AbstractServer, int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(reply)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (b"", httpcore.RemoteProtocolError),  # closed without an answer
        (b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc", httpcore.ReadError),  # cut short
        (b"garbage\r\n\r\n", httpcore.RemoteProtocolError),
    ],
)
def test_a_broken_answer_is_a_transport_error_and_frees_the_slot(
    reply: bytes, error: type[Exception]
) -> None:
    async def run() -> None:
        server, port = await _serve_once(reply)
        pool = H1Pool("127.0.0.1", port, max_connections=1)

        async def fetch() -> bytes:
            answer = await pool.request(b"GET", b"/", [(b"host", b"x")], None, {"read": 5})
            return b"".join([chunk async for chunk in answer.stream])

        with pytest.raises(error):
            await fetch()
        assert pool._count == 0  # the one slot is free again
        server.close()
        await server.wait_closed()

    asyncio.run(run())


def test_a_stalled_answer_is_a_read_timeout() -> None:
    async def run() -> None:
        async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await asyncio.sleep(5)

        server = await asyncio.start_server(stall, "127.0.0.1", 0)
        pool = H1Pool("127.0.0.1", server.sockets[0].getsockname()[1])
        with pytest.raises(httpcore.ReadTimeout):
            await pool.request(b"GET", b"/", [(b"host", b"x")], None, {"read": 0.2})
        server.close()

    asyncio.run(run())


def test_a_full_pool_waits_then_times_out() -> None:
    async def run() -> None:
        server, port = await _serve_once(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        pool = H1Pool("127.0.0.1", port, max_connections=1)
        first = await pool.request(b"GET", b"/", [(b"host", b"x")], None, {"read": 5})
        with pytest.raises(httpcore.PoolTimeout):  # the one connection is still lent out
            await pool.request(b"GET", b"/", [(b"host", b"x")], None, {"pool": 0.2})
        assert b"".join([c async for c in first.stream]) == b"ok"
        server.close()

    asyncio.run(run())


def test_a_refused_connection_is_a_connect_error() -> None:
    async def run() -> None:
        server, port = await _serve_once(b"")
        server.close()
        await server.wait_closed()
        pool = H1Pool("127.0.0.1", port)
        with pytest.raises(httpcore.ConnectError):
            await pool.request(b"GET", b"/", [(b"host", b"x")], None, {"connect": 2})
        assert pool._count == 0

    asyncio.run(run())
