"""The pass-through relay inside the server protocol: plain reads without an ASGI cycle.

Most of what a proxy relays is plain reads nobody reranks: `_search` without a `rerank` key,
`_count`, `_cluster/health`, `GET` of a document. Through the app each costs an asyncio task,
the middleware stack (drain, access log, API key, the thin hop), ASGI messages and awaits in
both directions, about 0.7 ms of the proxy's CPU on this project's 2-core host. Here the server
protocol (bridge.proxy.server_protocol) hands such a request, once its body is in, to
``Relay.start``: the request goes out on an idle keep-alive connection of the upstream pool
(bridge.proxy.h1_pool) and the answer, parsed by httptools' callbacks, is written to the client
in one write when it is complete. No task, no future, no await.

Which requests (``Relay.plain_head`` / ``Relay.plain_body``), all others go the ASGI way:

- `GET` or `POST`, a *read* by the retry rules (bridge.proxy.upstream_nodes.is_read): its answer
  is read in full before the client sees it anyway (a node failing mid-answer is retried), so
  writing it whole costs no streaming;
- a body in one piece of at most ``MAX_BODY`` bytes, with a Content-Length (no chunked request
  body), no `Content-Encoding`, no `Expect`, no upgrade, no `X-Forwarded-*` (uvicorn's proxy
  headers middleware rewrites the client address from them), and when proxy auth is on, the
  right API key (a wrong or missing one gets the app's 401);
- not the bridge's own or the model routes, not `_msearch`; a `_search` only when the thin hop
  would relay it unreranked (no `rerank` in the query string or, by the byte scan, the body; no
  index policy that may rerank or bucket it);
- the proxy not draining (the app adds `Connection: close` then), uvicorn's own access log off;
- an idle upstream connection (the first requests, and bursts past the idle ones, go the ASGI
  way, which opens connections and leaves them idle for the next).

Most of these the server protocol reads itself from the bytes (``read_request``; its fast path,
no uvicorn parser or cycle). The answer is framed here when it has a Content-Length (a byte count
for the body) or plain chunks (a walk over the chunk sizes), by httptools otherwise; request and
answer heads are each read once and remembered (bridge.proxy.relay_heads), as are the relay
decision, the head sent to the engine and the head the client gets (per head, reset on a settings
reload). The read timeout and uvicorn's keep-alive timeout are one lazy timer per connection
each, not a timer per request.

What the client sees is the thin hop's answer, byte for byte: the same forwarded headers
(hop-by-hop ones, `Host`, `Expect` and the proxy's API key header removed), the engine's
end-to-end headers plus `X-Rerank-*` on `_search`, chunked framing when the engine sent none,
`Connection: close` when the connection will close. Each request has the same access line and
metrics (bridge.proxy.access.AccessLog, in batches: ``later``) and counts in
``rerank_bridge_relayed_requests_total``.

Failures: anything that goes wrong upstream (connection lost, a 502/503, a search missing the
shard of a vanished node or failed by one, a timeout) hands the request, body intact, to the ASGI
path, which resends it, or answers the error, as the thin hop does: the attempt made here counts
against ``max_retries`` (``tried``), and a timeout or the last failure is passed on as the error
to answer (``scope[RELAY_KEY]``). A client gone mid-relay: the answer is read to its end (the
connection stays reusable) and dropped.
"""

from __future__ import annotations

import hmac
import logging
import re
import time
from dataclasses import dataclass
from typing import Any, Protocol

import httpcore
import httptools

from bridge.errors import UpstreamError
from bridge.proxy.access import AccessLog
from bridge.proxy.drain import RELAYS
from bridge.proxy.h1_pool import Exchange
from bridge.proxy.http_io import (
    MSEARCH_PATH,
    PASSTHROUGH_TAGS,
    SEARCH_PATH,
    may_name_rerank,
)
from bridge.proxy.relay_heads import (
    HEAD_KEY,
    MAX_BODY,
    MEMO_HEAD_BYTES,
    AnswerHead,
    answer_head,
    is_search,
    read_request,
    remember,
)
from bridge.proxy.state import Proxy
from bridge.proxy.upstream import (
    HOP_BY_HOP,
    Headers,
    Upstream,
    end_to_end,
    forward_request_headers,
)
from bridge.proxy.upstream_nodes import (
    RETRY_STATUSES,
    UpstreamNode,
    content_encoding,
    is_read,
    lost_a_node_in,
)

logger = logging.getLogger("bridge.proxy.upstream")  # its retry warnings, as Upstream.send logs

RELAY_KEY = "bridge.relay"  # scope key of a request handed over after a failed relay attempt
_RERANK_NAMES = {name.decode(): value.decode() for name, value in PASSTHROUGH_TAGS}
_REFUSED_HEADERS = frozenset(
    {b"transfer-encoding", b"content-encoding", b"expect", b"upgrade", b"x-forwarded-for"}
    | {b"x-forwarded-proto"}
)
_HEADER_VALUE = re.compile(b"[\x00-\x08\x0a-\x1f\x7f]")  # what uvicorn refuses to send
_STATUS_LINES: dict[int, bytes] = {}
_HOP_BY_HOP = frozenset(name.encode() for name in HOP_BY_HOP)
# what the thin hop never forwards (bridge.proxy.upstream.forward_request_headers)
_NOT_FORWARDED = _HOP_BY_HOP | {b"host", b"expect"}


_CHUNK_SIZE_DIGITS = 15  # the longest chunk-size line the relay reads itself
_HEX_DIGITS = b"0123456789abcdefABCDEF"


@dataclass(frozen=True)
class Handover:
    """Why a relayed request goes on to the ASGI path: attempts made, or the error to answer."""

    tried: int = 0
    error: UpstreamError | None = None
    node: UpstreamNode | None = None  # the node picked for the first attempt (none was idle)


def status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    if line is None:
        from uvicorn.protocols.http.httptools_impl import STATUS_LINE

        line = STATUS_LINE.get(status) or b"HTTP/1.1 %d \r\n" % status
        _STATUS_LINES[status] = line
    return line


class Client(Protocol):
    """What a relay needs of the server side: uvicorn's request cycle and connection, as
    bridge.proxy.server_protocol wraps them."""

    scope: dict[str, Any]
    body: bytes
    default_headers: list[tuple[bytes, bytes]]

    def keep_alive(self) -> bool: ...
    def gone(self) -> bool: ...
    def write(self, data: bytes, body: bytes) -> None: ...
    def finish(self) -> None: ...
    def hand_over(self, why: Handover) -> None: ...


class Relay:
    """The relay of one app (``app.state.relay``), found by the server protocol."""

    def __init__(self, proxy: Proxy, *, own_paths: frozenset[str]) -> None:
        self.proxy = proxy
        self.own_paths = own_paths
        self.access = AccessLog(proxy.metrics, own_paths)
        self.relayed = proxy.metrics.relayed
        # relayed requests the server protocol read itself (its fast path), for the tests
        self.read_by_protocol = 0
        # per request head read by ``read_request`` (HEAD_KEY): whether it allows the relay, and
        # the engine's request head per node; both hold for one settings object (a reload
        # starts them again)
        self._plain_heads: dict[bytes, bool] = {}
        self._upstream_heads: dict[tuple[bytes, int], tuple[UpstreamNode, bytes]] = {}
        self._memo_settings: object = None
        # the client's answer head per engine answer head, for one list of uvicorn's default
        # headers (its `date` changes once a second, and the list with it)
        self._client_heads: dict[tuple[bytes, bool, bool], tuple[bytes, bool]] = {}
        self._memo_defaults: object = None

    def plain_read(self, scope: dict[str, Any]) -> bool:
        """``plain_head`` of a request ``read_request`` read, remembered per head."""
        if self.proxy.drain.started:
            return False
        head: bytes | None = scope[HEAD_KEY]
        if head is None:
            return self.plain_head(scope)
        self._check_settings()
        plain = self._plain_heads.get(head)
        if plain is None:
            plain = self.plain_head(scope)
            remember(self._plain_heads, head, plain)
        return plain

    def client_head(
        self, answer: AnswerHead, defaults: Headers, search: bool, keep_alive: bool
    ) -> tuple[bytes, bool] | None:
        """``client_head`` of an answer head framed here, remembered per head while uvicorn's
        default headers stay the same list."""
        if defaults is not self._memo_defaults:
            self._client_heads.clear()
            self._memo_defaults = defaults
        key = (answer.raw, search, keep_alive)
        known = self._client_heads.get(key)
        if known is None:
            known = client_head(answer.status, answer.headers, False, defaults, search, keep_alive)
            if known is not None and len(answer.raw) <= MEMO_HEAD_BYTES:
                remember(self._client_heads, key, known)
        return known

    def _check_settings(self) -> None:
        settings = self.proxy.settings
        if settings is not self._memo_settings:
            self._plain_heads.clear()
            self._upstream_heads.clear()
            self._memo_settings = settings

    def plain_head(self, scope: dict[str, Any]) -> bool:
        """Whether the request head allows the relay (the body is checked once it is in)."""
        return self.plain(
            scope["method"],
            scope["path"],
            scope["raw_path"],
            scope["query_string"],
            scope["headers"],
        )

    def plain(
        self, method: str, path: str, raw_path: bytes, query: bytes, headers: Headers
    ) -> bool:
        """``plain_head`` on the head's parts (header names in lower case)."""
        if method != "GET" and method != "POST":
            return False
        if path in self.own_paths or path.startswith("/_bridge/"):
            return False
        if not is_read(method, raw_path) or self.proxy.drain.started:
            return False
        settings = self.proxy.settings
        key = settings.auth.api_key
        key_header = settings.auth.header.lower().encode("latin-1") if key else b""
        allowed = not key
        for name, value in headers:
            if name in _REFUSED_HEADERS:
                return False
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    return False
                if length > MAX_BODY or length > settings.limits.max_body_bytes:
                    return False
            elif name == key_header and not allowed:
                allowed = hmac.compare_digest(value, key.encode() if key else b"")
        if not allowed:
            return False
        search = SEARCH_PATH.fullmatch(path)
        if search is not None:
            if settings.policies.may_rerank_unasked(search.group(1)):
                return False
            return b"rerank" not in query
        return MSEARCH_PATH.fullmatch(path) is None

    @staticmethod
    def plain_body(scope: dict[str, Any], body: bytes) -> bool:
        """Whether the body allows the relay: no `rerank` key on a `_search`."""
        if len(body) > MAX_BODY:
            return False
        return not (body and is_search(scope) and may_name_rerank(body))

    def start(self, client: Client) -> bool:
        """Send the request upstream on an idle connection; False when none is idle (then the
        app's first attempt goes to the node picked here: the round-robin turn is taken)."""
        upstream = self.proxy.upstream
        node = upstream.nodes.get()
        conn = node.pool.take_idle()
        if conn is None:
            client.scope[RELAY_KEY] = Handover(node=node)
            return False
        try:
            conn.write(self.request(client, upstream, node))
        except httpcore.WriteError:
            node.pool.release(conn, reusable=False)
            client.scope[RELAY_KEY] = Handover(node=node)
            return False
        # the request is on its way first: no answer byte can arrive before this callback
        # returns to the loop, so the exchange that reads it is made while the engine works
        exchange = conn.exchange = _RelayExchange(conn, self, upstream, node, client)
        exchange.arm()
        RELAYS.running += 1
        return True

    def request(self, client: Client, upstream: Upstream, node: UpstreamNode) -> bytes:
        """The request for the engine, as the thin hop forwards it (head and body); its head is
        remembered per client request head and node."""
        scope = client.scope
        content = client.body
        head: bytes | None = scope.get(HEAD_KEY)
        if head is None:
            forwarded = self.forwarded_head(client, upstream, node)
        else:
            self._check_settings()
            key = (head, id(node))  # the node's own hash reads its whole config
            known = self._upstream_heads.get(key)
            if known is not None and known[0] is node:
                forwarded = known[1]
            else:
                forwarded = self.forwarded_head(client, upstream, node)
                remember(self._upstream_heads, key, (node, forwarded))
        return forwarded + content if content else forwarded

    def forwarded_head(self, client: Client, upstream: Upstream, node: UpstreamNode) -> bytes:
        """The request head for the engine (one pass over the headers; a `Connection` header
        naming others is read the long way)."""
        scope = client.scope
        content = client.body
        drop = self.proxy.settings.auth.header.lower().encode("latin-1")
        parts = [
            scope["method"].encode(),
            b" ",
            node.target(scope["raw_path"], scope["query_string"]),
            b" HTTP/1.1\r\nhost: ",
            node.host_header,
            b"\r\n",
        ]
        length = False
        for name, value in scope["headers"]:  # lower case (uvicorn)
            if name in _NOT_FORWARDED or name == drop:
                if name == b"connection" and value.lower() != b"keep-alive":
                    return self.head_the_long_way(client, upstream, node)
                continue
            if name == b"content-length":
                length = True
            parts += (name, b": ", value, b"\r\n")
        if content and not length:
            parts += (b"content-length: ", b"%d" % len(content), b"\r\n")
        parts.append(b"\r\n")
        return b"".join(parts)

    def head_the_long_way(self, client: Client, upstream: Upstream, node: UpstreamNode) -> bytes:
        scope = client.scope
        headers = upstream.request_headers(
            forward_request_headers(scope["headers"], self.proxy.settings.auth.header),
            client.body or None,
            node,
        )
        return b"".join(
            [
                scope["method"].encode(),
                b" ",
                node.target(scope["raw_path"], scope["query_string"]),
                b" HTTP/1.1\r\n",
                *[b"%s: %s\r\n" % pair for pair in headers],
                b"\r\n",
            ]
        )


class _RelayExchange(Exchange):
    """One relayed request and its answer, kept whole (a read is answered in one piece): the
    answer written to the client, or the request handed over on failure. An answer whose head
    comes in one read is framed here (by its Content-Length, or by walking plain chunks);
    anything else goes through httptools' callbacks."""

    # the relay's own state of a new exchange, as class defaults (each request sets only what
    # differs)
    settled = False
    events = 0  # answer parts seen: the read timeout restarts on each
    seen = 0  # ``events`` when the read timeout's current period began
    missing = -1  # body bytes still to come of a Content-Length answer framed here
    head: AnswerHead | None = None  # the answer head, when framed here
    # a chunked answer framed here: the bytes read so far (the first read as it came, no copy;
    # a bytearray once more come), its body from ``body_at``, the next chunk-size line at
    # ``next_chunk``
    raw: bytes | bytearray = b""
    body_at = 0
    next_chunk = 0

    def __init__(
        self, conn: Any, relay: Relay, upstream: Upstream, node: UpstreamNode, client: Client
    ) -> None:
        super().__init__(conn, head_only=False, parse=False)
        self.relay = relay
        self.upstream = upstream
        self.node = node
        self.client = client
        self.sent_at = time.perf_counter()  # for the access line's duration
        self.watched_at = 0.0  # loop time the read timeout's current period began

    def feed(self, data: bytes) -> None:
        self.events += 1
        missing = self.missing
        if missing > 0:
            self.chunks.append(data)
            self._framed(missing - len(data))
            return
        if self.parser is None:
            if self.head is not None:  # a chunked answer framed here
                raw = self.raw
                if type(raw) is bytes:  # the first read: copied once, when more follow
                    raw = self.raw = bytearray(raw)
                raw += data
                self._chunks()
                return
            end_of_head = data.find(b"\r\n\r\n")
            head = answer_head(data[: end_of_head + 4]) if end_of_head >= 0 else None
            if head is not None:
                self.head = head
                self.status = head.status
                self.headers = head.headers
                self.head_done = True
                self.keep_alive = head.keep_alive
                body = data[end_of_head + 4 :]
                if head.length >= 0:
                    if body:
                        self.chunks.append(body)
                    self._framed(head.length - len(body))
                else:
                    self.raw = data
                    self.body_at = self.next_chunk = end_of_head + 4
                    self._chunks()
                return
            self.parser = httptools.HttpResponseParser(self)
        self.parser.feed_data(data)

    def _framed(self, missing: int) -> None:
        self.missing = missing
        if missing == 0:
            self._complete()
        elif missing < 0:  # bytes past the answer: this connection cannot be trusted
            self._overrun()

    def _complete(self) -> None:
        """A framed-here answer is whole: ``finish`` without a parser to ask (``keep_alive``
        stays what the head said), then ``wake``."""
        self.done = True
        self.conn.exchange = None
        self.wake()

    def _overrun(self) -> None:
        self.fail(httpcore.RemoteProtocolError("answer longer than its framing"))
        self.conn.close()

    def _chunks(self) -> None:
        """Walk the chunked body in ``raw``: each whole chunk's data into ``chunks``; the answer
        is done at the last chunk. Anything but plain chunks (extensions, trailers, an odd size
        line) goes to httptools with every byte of the answer."""
        raw = self.raw
        at = self.next_chunk
        while True:
            line_end = raw.find(b"\r\n", at)
            if line_end < 0:
                if len(raw) - at > _CHUNK_SIZE_DIGITS + 2:
                    self._to_parser()
                return
            size_line = raw[at:line_end]
            # hex digits only: int() would also take a sign, blanks, `0x` or `_`
            if not 0 < len(size_line) <= _CHUNK_SIZE_DIGITS or size_line.strip(_HEX_DIGITS):
                self._to_parser()
                return
            size = int(size_line, 16)
            start = line_end + 2
            if size == 0:
                if len(raw) < start + 2:
                    if len(raw) > start and raw[start] != 13:  # not the start of CRLF
                        self._to_parser()  # a trailer field
                    return
                if raw[start : start + 2] != b"\r\n":
                    self._to_parser()
                elif len(raw) > start + 2:
                    self._overrun()
                else:
                    self._complete()
                return
            stop = start + size
            if len(raw) < stop + 2:
                self.next_chunk = at
                return
            if raw[stop : stop + 2] != b"\r\n":
                self._to_parser()
                return
            self.chunks.append(bytes(raw[start:stop]))  # bytes of bytes: no second copy
            at = self.next_chunk = stop + 2

    def _to_parser(self) -> None:
        """httptools reads the whole answer again, from its first byte."""
        head = self.head
        assert head is not None
        self.head = None
        self.headers = []
        self.chunks.clear()
        self.head_done = False
        data = head.raw + self.raw[self.body_at :]
        self.raw = b""
        self.parser = httptools.HttpResponseParser(self)
        self.parser.feed_data(data)

    def on_headers_complete(self) -> None:
        self.events += 1
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        self.events += 1
        self.chunks.append(body)  # no pause: nobody reads a relayed answer before its end

    def wake(self) -> None:  # every event of the exchange ends up here
        if self.settled:
            return
        if self.done:
            self.settled = True
            self.answered()
        elif self.error is not None:
            self.settled = True
            self.failed(self.error)

    def arm(self) -> None:
        """Start the read timeout: ``timeout_s`` without any part of the answer fails it. The
        timer belongs to the upstream connection and outlives its exchanges (one timer per
        connection, not a new one per request): when it fires it checks the exchange in hand."""
        conn = self.conn
        loop = conn.loop
        self.watched_at = loop.time()
        conn.watched = self
        if conn.watch is None:
            timeout = self.upstream.settings.timeout_s
            conn.watch = loop.call_later(timeout, _read_timer, conn, timeout)

    def _settle(self, *, reusable: bool) -> None:
        RELAYS.running -= 1
        conn = self.conn
        if conn.exchange is self:
            conn.exchange = None
        if conn.watched is self:  # the timer may outlive it: not the answer it holds
            conn.watched = None
        if not reusable:
            conn.close()
            if conn.watch is not None:
                conn.watch.cancel()
                conn.watch = None
        self.node.pool.release(conn, reusable=reusable)

    def failed(self, exc: BaseException) -> None:
        """Nothing was written to the client: the ASGI path resends or answers the error."""
        self._settle(reusable=False)
        upstream = self.upstream
        if isinstance(exc, httpcore.TimeoutException):  # a slow engine is never resent
            self.client.hand_over(Handover(error=upstream.error(self.node, exc)))
            return
        upstream.nodes.mark_dead(self.node)
        self._retry(upstream.error(self.node, exc) if isinstance(exc, Exception) else None)

    def _retry(self, error: UpstreamError | None) -> None:
        attempts = 1 + self.upstream.settings.max_retries
        if attempts <= 1:
            self.client.hand_over(Handover(error=error))
            return
        logger.warning(
            "upstream %s failed (attempt %d of %d), retrying on another node",
            self.node.base_url,
            1,
            attempts,
        )
        self.client.hand_over(Handover(tried=1))

    def answered(self) -> None:
        status = self.status
        chunks = self.chunks
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        upstream = self.upstream
        last = upstream.settings.max_retries <= 0
        if status in RETRY_STATUSES:
            self._settle(reusable=self.keep_alive)
            upstream.nodes.mark_dead(self.node)
            if not last:
                self._retry(None)
                return
            self.respond(body, settled=True)
            return
        if not last:
            head = self.head
            encoding = head.encoding if head is not None else content_encoding(self.headers)
            if lost_a_node_in(body, encoding):
                self._settle(reusable=self.keep_alive)
                upstream.nodes.mark_live(self.node)
                self._retry(None)
                return
        self.respond(body, settled=False)

    def respond(self, body: bytes, *, settled: bool) -> None:
        """Write the answer to the client; then (the client waits for nothing more) settle the
        upstream connection unless ``settled`` already, and count the request."""
        client = self.client
        scope = client.scope
        status = self.status
        search = is_search(scope)
        keep_alive = client.keep_alive()
        framed_here = None if settled else self.head
        if framed_here is not None:
            head = self.relay.client_head(framed_here, client.default_headers, search, keep_alive)
        else:
            # a head httptools read may hold control bytes in its values (_ANSWER_HEAD has none)
            checked = settled or self.parser is not None
            head = client_head(
                status, self.headers, checked, client.default_headers, search, keep_alive
            )
        if head is None:  # a header value uvicorn would refuse to send
            if not settled:
                self._settle(reusable=self.keep_alive)
            client.hand_over(Handover(error=UpstreamError("invalid upstream header")))
            return
        out, framed = head
        if not framed and status != 204 and status != 304:
            payload = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body) if body else b"0\r\n\r\n"
        else:
            payload = body
        gone = client.gone()
        if not gone:
            client.write(out, payload)
        if not settled:  # before a request waiting behind this one looks for it
            self._settle(reusable=self.keep_alive)
            self.upstream.nodes.mark_live(self.node)
        if not gone:
            client.finish()
        relay = self.relay
        relay.relayed.inc()
        rerank = _RERANK_NAMES if search else _NO_TAGS
        relay.access.later(scope, status, len(body), time.perf_counter() - self.sent_at, rerank)


def _read_timer(conn: Any, timeout: float) -> None:
    """The read timeout of the relayed exchange on ``conn``, restarted while answer parts
    arrive (the pool's is per read); for an exchange armed after this timer was, it waits out
    that exchange's own time."""
    conn.watch = None
    exchange: _RelayExchange | None = conn.watched
    if exchange is None or exchange.settled:
        return
    loop = conn.loop
    rest = exchange.watched_at + timeout - loop.time()
    if rest <= 0.001:  # its period is over
        if exchange.events == exchange.seen:
            exchange.fail(httpcore.ReadTimeout("timed out"))
            return
        exchange.seen = exchange.events  # parts came in: a new period
        exchange.watched_at = loop.time()
        rest = timeout
    conn.watch = loop.call_later(rest, _read_timer, conn, timeout)


_NO_TAGS: dict[str, str] = {}


def client_head(
    status: int,
    headers: Headers,
    checked: bool,
    defaults: Headers,
    search: bool,
    keep_alive: bool,
) -> tuple[bytes, bool] | None:
    """The answer head the client gets for the engine's ``status`` and ``headers``, as the thin
    hop writes it (uvicorn's ``defaults`` first, hop-by-hop headers out, `X-Rerank-*` on a
    search, `Connection: close` when the connection closes, chunked framing when the engine
    sent no length), and whether it has a Content-Length; None when a header value holds bytes
    uvicorn refuses to send (``checked``: look for them)."""
    out = [status_line(status)]
    framed = False
    if checked and any(name.lower() == b"connection" for name, _ in headers):
        headers = end_to_end(headers)  # it may name more headers to drop
    for name, value in [*defaults, *headers] if defaults else headers:
        name = name.lower()
        if name in _HOP_BY_HOP:
            if name == b"connection" and not checked:
                # it may name more headers to drop: the long way
                return client_head(
                    status, end_to_end(headers), checked, defaults, search, keep_alive
                )
            continue
        if checked and _HEADER_VALUE.search(value):
            return None
        if name == b"content-length":
            framed = True
        out += (name, b": ", value, b"\r\n")
    if search:
        out.extend(b"%s: %s\r\n" % pair for pair in PASSTHROUGH_TAGS)
    if not keep_alive:
        out.append(b"connection: close\r\n")
    if not framed and status != 204 and status != 304:
        out.append(b"transfer-encoding: chunked\r\n\r\n")
    else:
        out.append(b"\r\n")
    return b"".join(out), framed


def relay_of(app: Any) -> Relay | None:
    """The relay of an ASGI app (unwrapping uvicorn's middleware), None when it has none."""
    for _ in range(8):
        state = getattr(app, "state", None)
        relay = getattr(state, "relay", None) if state is not None else None
        if isinstance(relay, Relay):
            return relay
        app = getattr(app, "app", None)
        if app is None:
            return None
    return None


__all__ = [
    "HEAD_KEY",
    "MAX_BODY",
    "RELAY_KEY",
    "Client",
    "Handover",
    "Relay",
    "read_request",
    "relay_of",
]
