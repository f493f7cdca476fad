"""Several upstream nodes: failover, what is retried and what never is, dead-node resurrection.

The nodes here are small fakes because they must fail on demand (refuse connections, answer 503,
die after reading a write); the same behaviour against a real 3-node cluster with a node killed
under load is tests/integration/test_cluster_faults.py.
"""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bridge.errors import ConfigError
from bridge.proxy.settings import settings_from_mapping
from bridge.proxy.upstream_nodes import is_read, lost_a_node
from tests.proxy.conftest import StartProxy
from tests.support.proxy_server import ProxyServer

ES_HEADERS = {"X-Elastic-Product": "Elasticsearch"}


@dataclass
class FakeNode:
    """An engine node that answers 200, or 503 to its first `fail_first` requests.

    The proxy's start-up probe (`GET /_cluster/health`) is answered but neither counted nor failed.
    """

    name: str
    fail_first: int = 0
    partial_first: int = 0  # 200 answers missing a shard: the next ones carry this reason
    partial_reason: str = "node_disconnected_exception"
    gzip_partial: bool = False  # send the partial answers gzip-compressed
    error_first: int = 0  # then 500 errors, as a fetch phase sent to a node that just left
    error_cause: str = "node_not_connected_exception"
    seen: list[tuple[str, str]] = field(default_factory=list)

    def app(self) -> Starlette:
        async def handle(request: Request) -> Response:
            await request.body()
            if request.url.path == "/_cluster/health":
                return JSONResponse({"status": "green"}, headers=ES_HEADERS)
            self.seen.append((request.method, request.url.path))
            if self.fail_first > 0:
                self.fail_first -= 1
                return JSONResponse({"error": "unavailable"}, status_code=503, headers=ES_HEADERS)
            if self.error_first > 0:
                self.error_first -= 1
                return JSONResponse(search_error(self.error_cause), 500, headers=ES_HEADERS)
            if self.partial_first > 0:
                self.partial_first -= 1
                failure = {"shard": 0, "reason": {"type": self.partial_reason}}
                shards = {"total": 2, "successful": 1, "failed": 1, "failures": [failure]}
                body = {"node": self.name, "_shards": shards, "hits": {"hits": []}}
                if self.gzip_partial:
                    packed = gzip.compress(json.dumps(body).encode())
                    headers = {**ES_HEADERS, "Content-Encoding": "gzip"}
                    return Response(packed, media_type="application/json", headers=headers)
                return JSONResponse(body, headers=ES_HEADERS)
            return JSONResponse({"node": self.name, "hits": {"hits": []}}, headers=ES_HEADERS)

        methods = ["GET", "HEAD", "POST", "PUT", "DELETE"]
        return Starlette(routes=[Route("/{path:path}", handle, methods=methods)])


def search_error(cause: str, status: int = 500) -> dict[str, object]:
    """A whole-search error as the engines write it, caused by ``cause``."""
    caused_by = {"type": cause, "reason": "[node-b] Node not connected"}
    error = {
        "root_cause": [caused_by],
        "type": "search_phase_execution_exception",
        "reason": "",
        "phase": "fetch",
        "grouped": True,
        "failed_shards": [],
        "caused_by": caused_by,
    }
    return {"error": error, "status": status}


@pytest.fixture
def fake_nodes() -> Iterator[list[tuple[FakeNode, str]]]:
    nodes = [FakeNode("a"), FakeNode("b")]
    servers = [ProxyServer(node.app()).start() for node in nodes]
    yield [(node, server.url) for node, server in zip(nodes, servers, strict=True)]
    for server in servers:
        server.stop()


@pytest.fixture
def dropping_node() -> Iterator[tuple[list[bytes], str]]:
    """A node that reads a whole request and then closes the connection without answering."""
    received: list[bytes] = []
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                received.append(data)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield received, f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join(timeout=5)
    listener.close()


def test_a_dead_node_is_skipped_and_every_search_succeeds(
    start_proxy: StartProxy, dead_upstream_url: str, fake_nodes: list[tuple[FakeNode, str]]
) -> None:
    (node, url), _ = fake_nodes
    proxy = start_proxy({"urls": [dead_upstream_url, url]})
    statuses = [httpx.post(f"{proxy.url}/idx/_search", json={}).status_code for _ in range(6)]
    assert (statuses, len(node.seen)) == ([200] * 6, 6)


def test_health_names_the_dead_node(
    start_proxy: StartProxy, dead_upstream_url: str, fake_nodes: list[tuple[FakeNode, str]]
) -> None:
    (_node, url), _ = fake_nodes
    proxy = start_proxy({"urls": [dead_upstream_url, url]})
    for _ in range(3):
        httpx.get(f"{proxy.url}/_cat/indices")
    nodes = httpx.get(f"{proxy.url}/_bridge/health").json()["upstream"]["nodes"]
    assert {n["url"]: n["healthy"] for n in nodes} == {dead_upstream_url: False, url: True}


def test_a_search_answered_503_is_retried_on_another_node(
    start_proxy: StartProxy, fake_nodes: list[tuple[FakeNode, str]]
) -> None:
    (first, first_url), (_second, second_url) = fake_nodes
    first.fail_first = 100
    proxy = start_proxy({"urls": [first_url, second_url]})
    answers = [httpx.post(f"{proxy.url}/idx/_search", json={}) for _ in range(3)]
    assert ({(r.status_code, r.json()["node"]) for r in answers}, len(first.seen)) == (
        {(200, "b")},
        1,
    )


@pytest.mark.parametrize("compressed", [False, True])
def test_a_search_missing_a_shard_of_a_vanished_node_is_resent(
    start_proxy: StartProxy, fake_nodes: list[tuple[FakeNode, str]], compressed: bool
) -> None:
    (first, first_url), (second, second_url) = fake_nodes
    first.partial_first = second.partial_first = 1
    first.gzip_partial = second.gzip_partial = compressed
    proxy = start_proxy({"urls": [first_url, second_url]})
    answer = httpx.post(f"{proxy.url}/idx/_search", json={}).json()
    assert ("_shards" in answer, len(first.seen) + len(second.seen)) == (False, 3)


@pytest.mark.parametrize("path", ["/idx/_search", "/_msearch"])
def test_a_search_failed_by_a_node_that_just_left_is_resent(
    start_proxy: StartProxy, fake_nodes: list[tuple[FakeNode, str]], path: str
) -> None:
    (first, first_url), (second, second_url) = fake_nodes
    proxy = start_proxy({"urls": [first_url, second_url]})
    # idle connections to both nodes: `_search` now takes the relay (`_msearch` never does)
    for _ in range(4):
        httpx.post(f"{proxy.url}{path}", json={})
    first.error_first = second.error_first = 1
    response = httpx.post(f"{proxy.url}{path}", json={})
    assert (response.status_code, len(first.seen) + len(second.seen)) == (200, 4 + 3)


def test_a_search_failed_for_another_reason_is_answered_as_is(
    start_proxy: StartProxy, fake_nodes: list[tuple[FakeNode, str]]
) -> None:
    (first, first_url), (second, second_url) = fake_nodes
    for node in (first, second):
        node.error_first, node.error_cause = 1, "illegal_argument_exception"
    proxy = start_proxy({"urls": [first_url, second_url]})
    response = httpx.post(f"{proxy.url}/idx/_search", json={})
    assert (response.status_code, len(first.seen) + len(second.seen)) == (500, 1)


def test_a_search_missing_a_shard_for_another_reason_is_answered_as_is(
    start_proxy: StartProxy, fake_nodes: list[tuple[FakeNode, str]]
) -> None:
    (first, first_url), (second, second_url) = fake_nodes
    for node in (first, second):
        node.partial_first, node.partial_reason = 1, "query_shard_exception"
    proxy = start_proxy({"urls": [first_url, second_url]})
    answer = httpx.post(f"{proxy.url}/idx/_search", json={}).json()
    assert (answer["_shards"]["failed"], len(first.seen) + len(second.seen)) == (1, 1)


# In the write tests the other node refuses connections, so whichever node the pool picks
# first, the write reaches the faulty node exactly once.


def test_a_write_answered_503_is_not_resent(
    start_proxy: StartProxy, dead_upstream_url: str, fake_nodes: list[tuple[FakeNode, str]]
) -> None:
    (node, url), _ = fake_nodes
    node.fail_first = 100
    proxy = start_proxy({"urls": [url, dead_upstream_url]})
    response = httpx.put(f"{proxy.url}/idx/_doc/1", json={"title": "x"})
    assert (response.status_code, len(node.seen)) == (503, 1)


def test_a_write_whose_node_died_after_reading_it_is_not_resent(
    start_proxy: StartProxy, dead_upstream_url: str, dropping_node: tuple[list[bytes], str]
) -> None:
    received, dropping_url = dropping_node
    proxy = start_proxy({"urls": [dropping_url, dead_upstream_url]})
    response = httpx.post(f"{proxy.url}/idx/_doc", json={"title": "once"})
    writes = [r for r in received if r.startswith(b"POST ")]
    assert (response.status_code, len(writes)) == (502, 1)


def test_a_read_whose_node_died_mid_request_is_resent(
    start_proxy: StartProxy,
    dropping_node: tuple[list[bytes], str],
    fake_nodes: list[tuple[FakeNode, str]],
) -> None:
    received, dropping_url = dropping_node
    (other, other_url), _ = fake_nodes
    # no rest for a failed node: the start-up probe must not keep it out of this test
    proxy = start_proxy({"urls": [dropping_url, other_url], "dead_node_backoff_s": 0})
    statuses = [httpx.post(f"{proxy.url}/idx/_search", json={}).status_code for _ in range(3)]
    reads = [r for r in received if r.startswith(b"POST ")]
    assert (statuses, len(reads) >= 1, len(other.seen)) == ([200] * 3, True, 3)


def test_a_write_to_a_node_refusing_connections_goes_to_another(
    start_proxy: StartProxy, dead_upstream_url: str, fake_nodes: list[tuple[FakeNode, str]]
) -> None:
    (node, url), _ = fake_nodes
    proxy = start_proxy({"urls": [dead_upstream_url, url]})
    response = httpx.put(f"{proxy.url}/idx/_doc/1", json={"title": "x"})
    assert (response.status_code, node.seen) == (200, [("PUT", "/idx/_doc/1")])


def test_a_dead_node_gets_requests_again_after_its_backoff(
    start_proxy: StartProxy, fake_nodes: list[tuple[FakeNode, str]]
) -> None:
    (first, first_url), (_second, second_url) = fake_nodes
    first.fail_first = 1
    proxy = start_proxy({"urls": [first_url, second_url], "dead_node_backoff_s": 3.0})
    for _ in range(4):  # the first request fails on `a`, which rests for 3 s
        httpx.get(f"{proxy.url}/_cat/indices")
    resting = len(first.seen)
    time.sleep(3.5)
    for _ in range(4):
        httpx.get(f"{proxy.url}/_cat/indices")
    assert (resting, len(first.seen) > resting) == (1, True)


def test_retries_stop_after_max_retries(
    start_proxy: StartProxy, fake_nodes: list[tuple[FakeNode, str]]
) -> None:
    (first, first_url), (second, second_url) = fake_nodes
    first.fail_first = second.fail_first = 100
    proxy = start_proxy({"urls": [first_url, second_url], "max_retries": 2})
    response = httpx.get(f"{proxy.url}/_cat/indices")
    assert (response.status_code, len(first.seen) + len(second.seen)) == (503, 3)


@pytest.mark.parametrize(
    ("method", "path", "read"),
    [
        ("GET", b"/idx/_doc/1", True),
        ("HEAD", b"/idx", True),
        ("POST", b"/idx/_search", True),
        ("POST", b"/_msearch", True),
        ("POST", b"/idx/_search/template", True),
        ("POST", b"/idx/_count", True),
        ("POST", b"/_mget", True),
        ("POST", b"/idx/_doc", False),
        ("POST", b"/_bulk", False),
        ("PUT", b"/idx/_doc/1", False),
        ("DELETE", b"/idx", False),
        ("POST", b"/_search/scroll", False),
        ("GET", b"/_search/scroll", False),
        ("POST", b"/idx/_update/1", False),
    ],
)
def test_which_requests_count_as_reads(method: str, path: bytes, read: bool) -> None:
    assert is_read(method, path) is read


@dataclass
class ReadAnswer:
    """An upstream answer read in full, as lost_a_node sees it."""

    content: bytes
    headers: list[tuple[bytes, bytes]]


def es_answer(answer: dict[str, object], *, compressed: bool) -> ReadAnswer:
    """``answer`` written as the engines write it: compact JSON, keys in their order."""
    raw = json.dumps(answer, separators=(",", ":")).encode()
    if compressed:
        return ReadAnswer(gzip.compress(raw), [(b"Content-Encoding", b"gzip")])
    return ReadAnswer(raw, [(b"content-type", b"application/json")])


def shards(failed: int, reason: str = "node_disconnected_exception") -> dict[str, object]:
    failures = [{"shard": 0, "index": "i", "node": "n1", "reason": {"type": reason}}]
    stats = {"total": 2, "successful": 2 - failed, "skipped": 0, "failed": failed}
    return {**stats, "failures": failures} if failed else stats


HIT_NAMING_A_LOST_NODE = {"_id": "1", "_source": {"title": "node_disconnected_exception"}}


@pytest.mark.parametrize("compressed", [False, True])
@pytest.mark.parametrize(
    ("answer", "lost"),
    [
        ({"took": 3, "timed_out": False, "_shards": shards(0), "hits": {"hits": []}}, False),
        ({"count": 7, "_shards": shards(0)}, False),
        ({"took": 3, "timed_out": False, "_shards": shards(1), "hits": {"hits": []}}, True),
        ({"count": 7, "_shards": shards(1)}, True),
        ({"took": 3, "timed_out": False, "_shards": shards(1, "query_shard_exception")}, False),
        # a clean answer whose documents name the failure: only `_shards.failures` counts
        (
            {
                "took": 3,
                "timed_out": False,
                "_shards": shards(0),
                "hits": {"hits": [HIT_NAMING_A_LOST_NODE]},
            },
            False,
        ),
        # not the usual start (fields first, `_msearch`): read the long way, same answers
        ({"took": 3, "timed_out": False, "num_reduce_phases": 2, "_shards": shards(1)}, True),
        ({"took": 3, "responses": [{"_shards": shards(0)}, {"_shards": shards(1)}]}, True),
        ({"took": 3, "responses": [{"_shards": shards(0)}, {"_shards": shards(0)}]}, False),
        # the whole search failed: a 5xx caused by a lost node, not a 4xx or another cause
        (search_error("node_not_connected_exception"), True),
        (search_error("node_not_connected_exception", status=400), False),
        (search_error("circuit_breaking_exception"), False),
        ({"took": 3, "responses": [search_error("node_closed_exception")]}, True),
        ({"took": 3, "responses": [{"_shards": shards(0)}, search_error("x_exception")]}, False),
    ],
)
def test_a_partial_answer_is_told_from_a_complete_one(
    answer: dict[str, object], lost: bool, compressed: bool
) -> None:
    assert lost_a_node(es_answer(answer, compressed=compressed)) is lost


def test_a_pretty_printed_partial_answer_is_still_seen() -> None:
    raw = json.dumps({"took": 3, "timed_out": False, "_shards": shards(1)}, indent=2).encode()
    assert lost_a_node(ReadAnswer(raw, [])) is True


def test_several_urls_make_one_node_list() -> None:
    settings = settings_from_mapping({"upstream": {"urls": ["http://a:9200", "http://b:9200/"]}})
    assert (settings.upstream.url, settings.upstream.urls) == (
        "http://a:9200",
        ("http://a:9200", "http://b:9200"),
    )


def test_repeated_upstream_option_overrides_the_file() -> None:
    settings = settings_from_mapping(
        {"upstream": {"url": "http://a:9200"}}, upstream=["http://b:9200", "http://c:9200"]
    )
    assert settings.upstream.urls == ("http://b:9200", "http://c:9200")


@pytest.mark.parametrize(
    ("upstream", "field_name"),
    [
        ({"urls": []}, "upstream.urls"),
        ({"urls": "http://a:9200"}, "upstream.urls"),
        ({"urls": ["http://a:9200", "ftp://b"]}, "upstream.urls[1]"),
        ({"urls": ["http://a:9200", "http://a:9200"]}, "upstream.urls"),
        ({"url": "http://a:9200", "urls": ["http://b:9200"]}, "upstream.url"),
        ({"url": "https://elastic:secret@a:9200"}, "upstream.url"),
        ({"url": "http://a:9200", "max_retries": -1}, "upstream.max_retries"),
    ],
)
def test_bad_node_lists_are_refused_naming_the_field(
    upstream: dict[str, object], field_name: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from_mapping({"upstream": upstream})
    assert (caught.value.field, "secret" in str(caught.value)) == (field_name, False)
