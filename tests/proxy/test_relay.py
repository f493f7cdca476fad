"""The relay in the server protocol (bridge.proxy.relay): which requests take it, and that it
answers as the app would, with keep-alive, pipelining, large and chunked answers, faults.

Requests to the real engine show the relay is taken (``rerank_bridge_relayed_requests_total``
counts only requests it answered); the faults need a scripted upstream (answers cut off, stalled,
close-delimited), a small socket server below.
"""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from bridge.proxy.relay import HEAD_KEY, read_request, relay_of
from bridge.proxy.settings import settings_from_mapping
from tests.proxy.conftest import StartProxy
from tests.support.proxy_server import ProxyServer

LARGE = 3 * 1024 * 1024
# chunked answers the relay frames itself or hands to httptools, each sent in these pieces
# (a pause between them: separate reads on the proxy's side)
CHUNKED_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
)
CHUNKED_DATA = b'{"took":1,"timed_out":false,"chunks":2}'


def one_chunk(data: bytes, extension: bytes = b"") -> bytes:
    """``data`` as a chunked body: one chunk (with ``extension`` after its size) and the last."""
    return b"%x%s\r\n%s\r\n0\r\n\r\n" % (len(data), extension, data)


CHUNKED_PIECES: dict[bytes, list[bytes]] = {
    # one chunk and the last, all in one read with the head
    b"one": [CHUNKED_HEAD + one_chunk(CHUNKED_DATA)],
    # two chunks and the last in one read (Elasticsearch 9's gzip search answers: the deflate
    # data, then the gzip trailer)
    b"two": [
        CHUNKED_HEAD
        + b"%x\r\n%s\r\n" % (len(CHUNKED_DATA) - 8, CHUNKED_DATA[:-8])
        + one_chunk(CHUNKED_DATA[-8:])
    ],
    # split inside a size line, a chunk's data, its CRLF and the last chunk
    b"split": [
        CHUNKED_HEAD + b"1",
        b"0\r\n" + CHUNKED_DATA[:10],
        CHUNKED_DATA[10:16] + b"\r",
        b"\n%x\r\n%s\r\n0\r" % (len(CHUNKED_DATA) - 16, CHUNKED_DATA[16:]),
        b"\n\r\n",
    ],
    # a chunk extension and a trailer field: httptools reads those
    b"extension": [CHUNKED_HEAD + one_chunk(CHUNKED_DATA, b";name=value")],
    b"trailer": [
        CHUNKED_HEAD + b"%x\r\n%s\r\n0\r\n" % (len(CHUNKED_DATA), CHUNKED_DATA),
        b"x-trailer: 1\r\n\r\n",
    ],
    b"bad-size": [CHUNKED_HEAD + b"zz\r\n%s\r\n0\r\n\r\n" % CHUNKED_DATA],
    # sizes Python's int(_, 16) reads but HTTP does not: a sign, a 0x prefix, an underscore
    b"signed-size": [CHUNKED_HEAD + b"+%x\r\n%s\r\n0\r\n\r\n" % (len(CHUNKED_DATA), CHUNKED_DATA)],
    b"prefixed-size": [
        CHUNKED_HEAD + b"0x%x\r\n%s\r\n0\r\n\r\n" % (len(CHUNKED_DATA), CHUNKED_DATA)
    ],
    b"underscored-size": [CHUNKED_HEAD + b"2_7\r\n%s\r\n0\r\n\r\n" % CHUNKED_DATA],
}
# a search answer missing the shard of a node that went away, then a whole one: gzip, chunked
LOST_SHARD = json.dumps(
    {
        "took": 2,
        "timed_out": False,
        "_shards": {
            "total": 2,
            "successful": 1,
            "failed": 1,
            "failures": [{"shard": 1, "reason": {"type": "node_not_connected_exception"}}],
        },
        "hits": {"hits": []},
    }
).encode()
WHOLE = b'{"took":2,"timed_out":false,"_shards":{"total":2,"successful":2,"failed":0},"hits":{}}'
OK_BODY = b'{"took":1,"timed_out":false,"_shards":{"total":1,"successful":1,"failed":0},"n":1}'


def relayed(proxy: ProxyServer, headers: dict[str, str] | None = None) -> float:
    """The proxy's count of requests the relay answered."""
    text = httpx.get(f"{proxy.url}/_bridge/metrics", headers=headers).text
    for line in text.splitlines():
        if line.startswith("rerank_bridge_relayed_requests_total "):
            return float(line.split()[1])
    raise AssertionError("no relayed_requests metric")


def read_by_protocol(proxy: ProxyServer) -> int:
    """Relayed requests the server protocol read itself (its fast path, no uvicorn parser)."""
    relay = relay_of(proxy._server.config.app)
    assert relay is not None
    return relay.read_by_protocol


# -- scripted upstream ---------------------------------------------------------------------------


@dataclass
class Scripted:
    """A socket HTTP/1.1 server answering by path; counts connections and requests."""

    connections: int = 0
    requests: list[tuple[bytes, bytes]] = field(default_factory=list)  # (request line, body)
    heads: list[bytes] = field(default_factory=list)  # each request's head, as it came
    url: str = ""

    def answer(self, conn: socket.socket, path: bytes) -> bool:
        """Send the answer for ``path``; False when the connection must close after it."""
        if path.startswith(b"/slow"):
            time.sleep(1.0)
        if path.startswith(b"/lost-shard"):  # the first answer misses a shard, later ones not
            lost = sum(line.split(b" ")[1].startswith(b"/lost-shard") for line, _ in self.requests)
            packed = gzip.compress(LOST_SHARD if lost == 1 else WHOLE)
            head = (
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-encoding: gzip\r\n"
            )
            conn.sendall(head + b"transfer-encoding: chunked\r\n\r\n" + one_chunk(packed))
            return True
        if path.startswith(b"/chunked-"):
            for piece in CHUNKED_PIECES[path.removeprefix(b"/chunked-")]:
                conn.sendall(piece)
                time.sleep(0.05)
            return True
        if path.startswith(b"/chunked"):
            pieces = [b'{"took":1,', b'"timed_out":false,', b'"chunks":3}']
            framed = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces)
            head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
            conn.sendall(head + b"transfer-encoding: chunked\r\n\r\n" + framed + b"0\r\n\r\n")
            return True
        if path.startswith(b"/large"):
            conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % LARGE)
            block = b"x" * 65536
            for _ in range(LARGE // len(block)):
                conn.sendall(block)
            return True
        if path.startswith(b"/cut"):  # promises 1000 bytes, sends 10, closes
            conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n0123456789")
            return False
        if path.startswith(b"/long-length"):  # a Content-Length no int64 holds
            conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: " + b"1" * 5000 + b"\r\n\r\n{}")
            return False
        if path.startswith(b"/eof"):  # no framing: the body ends with the connection
            conn.sendall(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n" + OK_BODY)
            return False
        head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-upstream: scripted\r\n"
        conn.sendall(head + b"content-length: %d\r\n\r\n" % len(OK_BODY) + OK_BODY)
        return True

    def serve(self, conn: socket.socket) -> None:
        data = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                head, data = data.split(b"\r\n\r\n", 1)
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(data) < length:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                body, data = data[:length], data[length:]
                request_line = head.split(b"\r\n", 1)[0]
                self.requests.append((request_line, body))
                self.heads.append(head)
                try:
                    if not self.answer(conn, request_line.split(b" ")[1]):
                        return
                except OSError:
                    return


@pytest.fixture
def scripted() -> Iterator[Scripted]:
    with scripted_server() as server:
        yield server


@contextmanager
def scripted_server() -> Iterator[Scripted]:
    server = Scripted()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.2)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            server.connections += 1
            threading.Thread(target=server.serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    try:
        yield server
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


def raw_exchange(url: str, payload: bytes, answers: int, timeout_s: float = 10.0) -> bytes:
    """Send ``payload`` on one socket, read until ``answers`` complete answers are in."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout_s) as sock:
        sock.sendall(payload)
        return read_answers(sock, answers)


def read_answers(sock: socket.socket, answers: int) -> bytes:
    """Read from ``sock`` until ``answers`` complete answers are in (or the peer closes)."""
    data = b""
    while data.count(b"HTTP/1.1 ") < answers or not _complete(data, answers):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def _complete(data: bytes, answers: int) -> bool:
    """Whether ``data`` holds ``answers`` whole Content-Length-framed answers."""
    rest = data
    for _ in range(answers):
        if b"\r\n\r\n" not in rest:
            return False
        head, rest = rest.split(b"\r\n\r\n", 1)
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        if len(rest) < length:
            return False
        rest = rest[length:]
    return True


# -- which requests take the relay (real engine) -----------------------------------------------


def test_plain_reads_take_the_relay(start_proxy: StartProxy, es_upstream: str) -> None:
    proxy = start_proxy(es_upstream)
    with httpx.Client() as client:
        client.get(f"{proxy.url}/_cluster/health")  # leaves an idle upstream connection
        before = relayed(proxy)
        fast = read_by_protocol(proxy)
        search = client.post(f"{proxy.url}/_search", json={"size": 1})
        count = client.post(f"{proxy.url}/_count", json={"query": {"match_all": {}}})
        health = client.get(f"{proxy.url}/_cluster/health")
        direct = httpx.post(f"{es_upstream}/_count", json={"query": {"match_all": {}}})
    assert [search.status_code, count.status_code, health.status_code] == [200, 200, 200]
    assert search.headers["x-rerank-status"] == "passthrough"
    assert "x-rerank-status" not in count.headers
    assert count.json()["count"] == direct.json()["count"]
    assert relayed(proxy) - before == 3
    assert read_by_protocol(proxy) - fast == 3  # none went through uvicorn's parser


def test_what_the_app_must_see_does_not_take_the_relay(
    start_proxy: StartProxy, es_upstream: str
) -> None:
    proxy = start_proxy(es_upstream)
    with httpx.Client() as client:
        client.get(f"{proxy.url}/_cluster/health")
        before = relayed(proxy)
        answers = [
            client.post(f"{proxy.url}/_search", json={"size": 1, "rerank": {"enabled": False}}),
            client.post(f"{proxy.url}/_search?rerank=false", json={"size": 1}),
            client.head(f"{proxy.url}/_cluster/health"),
            client.post(f"{proxy.url}/_msearch", content=b'{}\n{"size":0}\n'),
            client.put(f"{proxy.url}/rerank-bridge-relay-missing/_doc/1/_missing_endpoint"),
            client.post(f"{proxy.url}/_count", content=b"{}", headers={"Expect": "100-continue"}),
            client.post(
                f"{proxy.url}/_count", content=b"{}", headers={"X-Forwarded-For": "10.0.0.1"}
            ),
        ]
    assert all(answer.status_code < 500 for answer in answers), [a.text for a in answers]
    assert relayed(proxy) - before == 0


def test_proxy_auth_is_checked_before_the_relay(start_proxy: StartProxy, es_upstream: str) -> None:
    proxy = start_proxy(es_upstream, auth={"api_key": "s3cret"})
    key = {"X-Bridge-Api-Key": "s3cret"}
    with httpx.Client() as client:
        client.get(f"{proxy.url}/_cluster/health", headers=key)
        before = relayed(proxy, key)
        fast = read_by_protocol(proxy)
        refused = client.post(f"{proxy.url}/_count", json={})
        wrong = client.post(f"{proxy.url}/_count", json={}, headers={"X-Bridge-Api-Key": "no"})
    with httpx.Client() as client:  # a new connection (the 401s came before their bodies)
        allowed = client.post(f"{proxy.url}/_count", json={}, headers=key)
    assert [refused.status_code, wrong.status_code, allowed.status_code] == [401, 401, 200]
    assert relayed(proxy, key) - before == 1
    assert read_by_protocol(proxy) - fast == 1  # the refused ones went to the app (its 401)


def test_a_draining_proxy_answers_through_the_app(
    start_proxy: StartProxy, es_upstream: str
) -> None:
    proxy = start_proxy(es_upstream)
    app = proxy._server.config.app
    with httpx.Client() as client:
        client.get(f"{proxy.url}/_cluster/health")
        before = relayed(proxy)
        app.state.proxy.drain.start()  # type: ignore[attr-defined]
        answer = client.post(f"{proxy.url}/_count", json={})
    assert (answer.status_code, answer.headers.get("connection")) == (200, "close")
    assert relayed(proxy) - before == 0


# -- connection handling (scripted upstream) ---------------------------------------------------


def test_keep_alive_reuses_one_upstream_connection(
    start_proxy: StartProxy, scripted: Scripted
) -> None:
    proxy = start_proxy(scripted.url)
    with httpx.Client() as client:
        answers = [client.post(f"{proxy.url}/idx/_search", json={"n": i}) for i in range(20)]
    assert {a.status_code for a in answers} == {200}
    assert all(a.content == OK_BODY and a.headers["x-upstream"] == "scripted" for a in answers)
    assert scripted.connections == 1  # the start-up probe's, kept alive throughout
    assert relayed(proxy) == 20
    assert [json.loads(body) for _, body in scripted.requests[-20:]] == [
        {"n": i} for i in range(20)
    ]


def test_pipelined_requests_are_answered_in_order(
    start_proxy: StartProxy, scripted: Scripted
) -> None:
    proxy = start_proxy(scripted.url)
    httpx.get(f"{proxy.url}/warm")
    one = b'{"q":1}'
    payload = (
        b"POST /a/_search HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n%s" % (len(one), one)
        + b"GET /slow/_count HTTP/1.1\r\nhost: x\r\n\r\n"
        + b"GET /c HTTP/1.1\r\nhost: x\r\n\r\n"
    )
    data = raw_exchange(proxy.url, payload, 3)
    assert data.count(b"HTTP/1.1 200 OK") == 3
    assert data.count(OK_BODY) == 3
    assert data.index(b"x-rerank-status: passthrough") < data.index(OK_BODY)  # the search first
    paths = [line.split(b" ")[1] for line, _ in scripted.requests[-3:]]
    assert paths == [b"/a/_search", b"/slow/_count", b"/c"]
    assert relayed(proxy) >= 3


def test_a_large_answer_arrives_whole(start_proxy: StartProxy, scripted: Scripted) -> None:
    proxy = start_proxy(scripted.url)
    with httpx.Client() as client:
        client.get(f"{proxy.url}/warm")
        before = relayed(proxy)
        answer = client.get(f"{proxy.url}/large")
    assert (answer.status_code, len(answer.content)) == (200, LARGE)
    assert answer.content == b"x" * LARGE
    assert relayed(proxy) - before == 1


def test_a_chunked_answer_is_relayed_chunked(start_proxy: StartProxy, scripted: Scripted) -> None:
    proxy = start_proxy(scripted.url)
    httpx.get(f"{proxy.url}/warm")
    data = raw_exchange(proxy.url, b"GET /chunked HTTP/1.1\r\nhost: x\r\n\r\n", 1, 5.0)
    head, body = data.split(b"\r\n\r\n", 1)
    assert b"transfer-encoding: chunked" in head.lower()
    assert body.endswith(b"0\r\n\r\n")
    assert httpx.get(f"{proxy.url}/chunked").json() == {
        "took": 1,
        "timed_out": False,
        "chunks": 3,
    }
    assert relayed(proxy) == 3  # the warm-up too


@pytest.mark.parametrize("kind", ["one", "two", "split", "extension", "trailer"])
def test_a_chunked_answer_in_any_shape_is_relayed_whole(
    kind: str, start_proxy: StartProxy, scripted: Scripted
) -> None:
    proxy = start_proxy(scripted.url)
    with httpx.Client() as client:
        client.get(f"{proxy.url}/warm")
        before = relayed(proxy)
        answers = [client.get(f"{proxy.url}/chunked-{kind}") for _ in range(2)]
        after = client.get(f"{proxy.url}/warm")  # the upstream connection stays usable
    assert [a.content for a in answers] == [CHUNKED_DATA, CHUNKED_DATA]
    assert answers[0].headers["transfer-encoding"] == "chunked"
    assert after.status_code == 200
    assert relayed(proxy) - before == 3
    assert scripted.connections == 1


@pytest.mark.parametrize("kind", ["bad", "signed", "prefixed", "underscored"])
def test_a_bad_chunk_size_is_a_502_not_a_relayed_answer(
    kind: str, start_proxy: StartProxy, scripted: Scripted
) -> None:
    assert len(CHUNKED_DATA) == 0x27  # "2_7" above
    proxy = start_proxy({"url": scripted.url, "max_retries": 0})
    with httpx.Client() as client:
        client.get(f"{proxy.url}/warm")
        before = relayed(proxy)
        bad = client.get(f"{proxy.url}/chunked-{kind}-size")
        after = client.get(f"{proxy.url}/warm")
    assert bad.status_code == 502, bad.text
    assert bad.json()["error"]["type"]
    assert after.status_code == 200
    assert relayed(proxy) - before <= 1  # only the warm request after it


@pytest.mark.parametrize("retries", [0, 1])
def test_a_gzipped_search_missing_a_lost_nodes_shard_is_resent(
    retries: int, start_proxy: StartProxy, scripted: Scripted
) -> None:
    proxy = start_proxy({"url": scripted.url, "max_retries": retries, "retry_backoff_s": 0.01})
    with httpx.Client() as client:
        client.get(f"{proxy.url}/warm")
        answer = client.post(f"{proxy.url}/lost-shard/_search", json={"size": 0})
    sent = [line for line, _ in scripted.requests if b"/lost-shard" in line]
    assert answer.status_code == 200
    if retries:  # the relay's answer was partial: the app resent it, the client got it whole
        assert (answer.content, len(sent)) == (WHOLE, 2)
    else:  # no retries allowed: the partial answer, as the engine gave it
        assert (answer.content, len(sent)) == (LOST_SHARD, 1)


def test_one_head_relayed_to_two_nodes_carries_each_nodes_own_host(
    start_proxy: StartProxy,
) -> None:
    with scripted_server() as first, scripted_server() as second:
        proxy = start_proxy({"urls": [first.url, second.url]})
        with httpx.Client() as client:
            for _ in range(4):  # through the app: leaves idle connections to both nodes
                client.get(f"{proxy.url}/warm")
            before = relayed(proxy)
            answers = [client.get(f"{proxy.url}/idx/_count").status_code for _ in range(8)]
        assert answers == [200] * 8
        assert relayed(proxy) - before == 8
        for server in (first, second):
            hosts = {
                line.split(b":", 1)[1].strip()
                for head in server.heads
                if head.startswith(b"GET /idx/_count ")
                for line in head.split(b"\r\n")[1:]
                if line.lower().startswith(b"host:")
            }
            assert hosts == {server.url.removeprefix("http://").encode()}, (server.url, hosts)


def test_a_remembered_head_follows_drain_and_a_settings_reload(
    start_proxy: StartProxy, es_upstream: str, nano_cross_encoder_dir: Path
) -> None:
    sections = {"rerank": {"model": str(nano_cross_encoder_dir), "fields": ["title"]}}
    proxy = start_proxy(es_upstream, **sections)
    state = proxy._server.config.app.state.proxy  # type: ignore[attr-defined]
    url = f"{proxy.url}/rerank-bridge-relay-policy/_search?size=0"
    with httpx.Client() as client:
        client.get(f"{proxy.url}/_cluster/health")
        before = relayed(proxy)
        first = [client.get(url).status_code for _ in range(2)]  # one head, read and remembered
        assert relayed(proxy) - before == 2
        always = {"rerank-bridge-relay-*": {"rerank": "always"}}
        state.apply_settings(
            settings_from_mapping({"upstream": es_upstream, **sections, "indices": always})
        )
        reloaded = client.get(url)  # an `always` policy: the app decides
        assert relayed(proxy) - before == 2
        state.apply_settings(settings_from_mapping({"upstream": es_upstream, **sections}))
        client.get(url)
        assert relayed(proxy) - before == 3
        state.drain.start()
        drained = client.get(url)
    assert first == [404, 404]
    assert reloaded.status_code == 404
    assert drained.headers.get("connection") == "close"
    assert relayed(proxy) - before == 3


def test_a_close_delimited_answer_is_relayed(start_proxy: StartProxy, scripted: Scripted) -> None:
    proxy = start_proxy(scripted.url)
    with httpx.Client() as client:
        client.get(f"{proxy.url}/warm")
        before = relayed(proxy)
        answer = client.get(f"{proxy.url}/eof")
        again = client.get(f"{proxy.url}/warm")  # a new upstream connection, through the app
    assert (answer.status_code, answer.content) == (200, OK_BODY)
    assert again.status_code == 200
    assert relayed(proxy) - before >= 1


def test_an_answer_cut_off_is_a_502_without_retries(
    start_proxy: StartProxy, scripted: Scripted
) -> None:
    proxy = start_proxy({"url": scripted.url, "max_retries": 0})
    with httpx.Client() as client:
        client.get(f"{proxy.url}/warm")
        answer = client.get(f"{proxy.url}/cut")
        after = client.get(f"{proxy.url}/warm")
    assert answer.status_code == 502
    assert answer.json()["error"]["type"] == "rerank_bridge_exception" or answer.json()["error"]
    assert after.status_code == 200
    metrics = httpx.get(f"{proxy.url}/_bridge/metrics").text
    assert 'rerank_bridge_upstream_errors_total{kind="unreachable"} 1.0' in metrics
    cut = [line for line, _ in scripted.requests if line.startswith(b"GET /cut")]
    assert len(cut) == 1


def test_an_answer_cut_off_is_resent_as_the_retries_allow(
    start_proxy: StartProxy, scripted: Scripted
) -> None:
    proxy = start_proxy({"url": scripted.url, "max_retries": 2, "retry_backoff_s": 0.01})
    with httpx.Client() as client:
        client.get(f"{proxy.url}/warm")
        answer = client.get(f"{proxy.url}/cut")
    assert answer.status_code == 502
    cut = [line for line, _ in scripted.requests if line.startswith(b"GET /cut")]
    assert len(cut) == 3  # the relay's attempt and two retries through the app, no more


def test_a_stalled_answer_is_a_504(start_proxy: StartProxy, scripted: Scripted) -> None:
    proxy = start_proxy({"url": scripted.url, "timeout_s": 0.3})
    with httpx.Client() as client:
        client.get(f"{proxy.url}/warm")
        answer = client.get(f"{proxy.url}/slow")
    assert answer.status_code == 504
    slow = [line for line, _ in scripted.requests if line.startswith(b"GET /slow")]
    assert len(slow) == 1  # a slow engine is never resent


def test_a_client_gone_mid_relay_leaves_the_proxy_and_its_pool_fine(
    start_proxy: StartProxy, scripted: Scripted
) -> None:
    proxy = start_proxy(scripted.url)
    httpx.get(f"{proxy.url}/warm")
    host, port = proxy.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n")
        time.sleep(0.2)  # the request is upstream: leave before its answer
    time.sleep(1.2)  # the answer came and was dropped
    with httpx.Client() as client:
        answers = [client.get(f"{proxy.url}/after") for _ in range(3)]
    assert {a.status_code for a in answers} == {200}
    assert scripted.connections == 1  # the upstream connection went back to the pool
    assert relayed(proxy) == 5  # warm, the dropped answer, three after


# -- the protocol's fast path: requests read without uvicorn's parser ---------------------------


def test_read_request_takes_only_whole_simple_requests() -> None:
    body = b'{"size":1}'
    whole = b"POST /i/_search?q=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n" + body
    parsed = read_request(whole + b"GET / HTTP/1.1\r\n", ("1.2.3.4", 5))
    assert parsed is not None
    scope, end = parsed
    assert (end, scope["content_length"], whole[end - 10 : end]) == (len(whole), 10, body)
    assert (scope["method"], scope["path"], scope["raw_path"]) == (
        "POST",
        "/i/_search",
        b"/i/_search",
    )
    assert scope["query_string"] == b"q=1"
    assert scope["headers"] == [(b"host", b"x"), (b"content-length", b"10")]
    waiting = read_request(whole[:-1], None)  # the body not all in: the head is read
    assert waiting is not None
    assert waiting[1] == len(whole)
    for odd in [
        whole[:20],  # head not all in
        whole.replace(b"HTTP/1.1", b"HTTP/1.0"),
        whole.replace(b"POST", b"PUT"),
        whole.replace(b"/i/_search", b"/i%2F/_search"),
        whole.replace(b"Host: x\r\n", b"Host: x\r\n folded\r\n"),
        whole.replace(b"Host: x\r\n", b"Host: x\r\nContent-Length: 10\r\n"),
        whole.replace(b"Host: x\r\n", b"Host: x\r\nTransfer-Encoding: chunked\r\n"),
        whole.replace(b"Host: x\r\n", b"Host: x\r\nConnection: close\r\n"),
        whole.replace(b"Host: x\r\n", b"Host: x\x01\r\n"),
        whole.replace(b"\r\nContent", b"\nContent"),
        whole.replace(b"Content-Length: 10", b"Content-Length: +10"),
        whole.replace(b"Content-Length: 10", b"Content-Length: " + b"1" * 5000),
    ]:
        assert read_request(odd, None) is None, odd
        assert read_request(odd, None) is None, odd  # remembered as refused


def test_read_request_remembers_a_head_and_gives_each_request_its_own_scope() -> None:
    whole = b"POST /i/_search HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
    first = read_request(whole, ("1.2.3.4", 5))
    again = read_request(whole, ("5.6.7.8", 9))
    assert first is not None
    assert again is not None
    assert first[0] is not again[0]
    assert (first[0]["client"], again[0]["client"]) == (("1.2.3.4", 5), ("5.6.7.8", 9))
    assert {k: v for k, v in first[0].items() if k != "client"} == {
        k: v for k, v in again[0].items() if k != "client"
    }
    assert first[0][HEAD_KEY] == whole[:-2]
    long_head = whole.replace(b"Host: x", b"Host: x\r\nX-Long: " + b"a" * 5000)
    parsed = read_request(long_head, None)
    assert parsed is not None  # read, not remembered
    assert (parsed[0][HEAD_KEY], parsed[0]["headers"][1]) == (None, (b"x-long", b"a" * 5000))


def test_a_content_length_too_long_to_read_is_refused_not_a_traceback(
    start_proxy: StartProxy, scripted: Scripted
) -> None:
    proxy = start_proxy(scripted.url)
    httpx.get(f"{proxy.url}/warm")
    request = b"POST /i/_count HTTP/1.1\r\nHost: x\r\nContent-Length: " + b"1" * 5000
    answer = raw_exchange(proxy.url, request + b"\r\n\r\n{}", 1)
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:80]
    # the engine's answer with one: an error in the engine's shape, and the proxy serves on
    failed = httpx.get(f"{proxy.url}/long-length")
    assert failed.status_code == 502, failed.text
    assert failed.json()["error"]["type"], failed.text
    assert httpx.get(f"{proxy.url}/after").content == OK_BODY


def test_pipelined_plain_reads_are_all_read_by_the_protocol(
    start_proxy: StartProxy, scripted: Scripted
) -> None:
    proxy = start_proxy(scripted.url)
    httpx.get(f"{proxy.url}/warm")
    before = read_by_protocol(proxy)
    # the second and third wait in the protocol while the slow first one is out
    payload = b"".join(
        b"GET /%s HTTP/1.1\r\nhost: x\r\n\r\n" % path for path in (b"slow", b"b", b"c")
    )
    data = raw_exchange(proxy.url, payload, 3)
    assert data.count(b"HTTP/1.1 200 OK") == 3
    assert data.count(OK_BODY) == 3
    paths = [line.split(b" ")[1] for line, _ in scripted.requests[-3:]]
    assert paths == [b"/slow", b"/b", b"/c"]
    assert read_by_protocol(proxy) - before == 3
    assert scripted.connections == 1


def test_a_request_split_across_reads_is_relayed(
    start_proxy: StartProxy, scripted: Scripted
) -> None:
    proxy = start_proxy(scripted.url)
    httpx.get(f"{proxy.url}/warm")
    before = (relayed(proxy), read_by_protocol(proxy))
    body = b'{"q":"split"}'
    request = b"POST /i/_search HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n%s" % (
        len(body),
        body,
    )
    host, port = proxy.url.removeprefix("http://").split(":")
    answers = []
    for cut in (10, len(request) - 3):  # in the head, in the body
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(request[:cut])
            time.sleep(0.1)
            sock.sendall(request[cut:])
            answers.append(read_answers(sock, 1))
    assert all(a.startswith(b"HTTP/1.1 200 OK") and a.endswith(OK_BODY) for a in answers)
    assert all(b"x-rerank-status: passthrough" in a for a in answers)
    assert scripted.requests[-1] == (b"POST /i/_search HTTP/1.1", body)
    assert relayed(proxy) - before[0] == 2
    # the head in two reads: uvicorn parsed it; the body in two: the protocol waited for it
    assert read_by_protocol(proxy) - before[1] == 1


def test_the_protocol_and_the_cycle_answer_byte_for_byte_alike(
    start_proxy: StartProxy, es_upstream: str
) -> None:
    proxy = start_proxy(es_upstream)
    httpx.get(f"{proxy.url}/_cluster/health")
    fast = read_by_protocol(proxy)
    body = b'{"size":0,"track_total_hits":false}'
    request = (
        b"POST /_search HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\n\r\n%s" % (len(body), body)
    )
    host, port = proxy.url.removeprefix("http://").split(":")
    answers = []
    for split in (False, True):
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            if split:  # the head in two reads: uvicorn parses it, the cycle's relay answers
                sock.sendall(request[:12])
                time.sleep(0.1)
                sock.sendall(request[12:])
            else:
                sock.sendall(request)
            answers.append(read_answers(sock, 1))
    heads = [a.split(b"\r\n\r\n", 1)[0] for a in answers]
    assert heads[0] == heads[1], heads
    assert all(b'"timed_out":false' in answer for answer in answers)
    assert read_by_protocol(proxy) - fast == 1  # the whole one


def test_a_refused_fast_request_goes_to_the_app_once(
    start_proxy: StartProxy, es_upstream: str
) -> None:
    proxy = start_proxy(es_upstream)
    with httpx.Client() as client:
        client.get(f"{proxy.url}/_cluster/health")
        before = read_by_protocol(proxy)
        reranked = client.post(
            f"{proxy.url}/_search", json={"size": 1, "rerank": {"enabled": False}}
        )
        plain = client.post(f"{proxy.url}/_count", json={})
    assert (reranked.status_code, plain.status_code) == (400, 200)  # the app read its body
    assert read_by_protocol(proxy) - before == 1


def test_a_shutdown_mid_relay_lets_the_answer_out_then_closes(
    start_proxy: StartProxy, scripted: Scripted
) -> None:
    proxy = start_proxy(scripted.url)
    httpx.get(f"{proxy.url}/warm")
    before = read_by_protocol(proxy)
    host, port = proxy.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n")
        time.sleep(0.3)  # the request is upstream, read by the protocol: uvicorn sees no cycle
        for protocol in list(proxy._server.server_state.connections):
            protocol.loop.call_soon_threadsafe(protocol.shutdown)  # what uvicorn's exit does
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200 OK")
    assert data.endswith(OK_BODY)
    assert b"connection: close" in data
    assert read_by_protocol(proxy) - before == 1
