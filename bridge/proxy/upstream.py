"""Requests to the upstream engine through per-node keep-alive pools, raw bytes both ways.

The proxy talks to the engine through its own small HTTP/1.1 pool (bridge.proxy.h1_pool): a proxy
wants what an HTTP client library adds (URL parsing, default headers, content decoding) left out,
and it is the hot path. Failures keep httpcore's exception types.
Pass-through bodies are never decoded: the client's `Accept-Encoding` goes upstream as sent and the
engine's (possibly gzip) bytes come back untouched. Only the configured upstream nodes are ever
contacted (no redirects followed, no environment proxies), so client credentials cannot leak
elsewhere. Several nodes: see upstream_nodes (pool, failover, what is retried).
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from typing import Any

import certifi
import httpcore

from bridge.errors import UpstreamError, UpstreamTimeout
from bridge.proxy.h1_pool import H1Response
from bridge.proxy.settings import UpstreamSettings
from bridge.proxy.upstream_nodes import (
    RETRY_STATUSES,
    UpstreamNode,
    UpstreamNodes,
    backoff_s,
    is_read,
    lost_a_node,
    redacted,
)

logger = logging.getLogger(__name__)

# RFC 9110 section 7.6.1 plus the legacy names proxies still see
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)

Headers = list[tuple[bytes, bytes]]
RequestContent = bytes | AsyncIterable[bytes] | None
_TRANSPORT_ERRORS = (
    httpcore.NetworkError,
    httpcore.ProtocolError,
    httpcore.UnsupportedProtocol,
    httpcore.ProxyError,
)


_HOP_BY_HOP_BYTES = frozenset(name.encode() for name in HOP_BY_HOP)
# `Expect: 100-continue` is answered by our server already; the upstream client cannot relay it
_NOT_FORWARDED = _HOP_BY_HOP_BYTES | {b"host", b"expect"}


def end_to_end(headers: Iterable[tuple[bytes, bytes]], *, drop: Iterable[str] = ()) -> Headers:
    """Headers minus hop-by-hop ones, those the `Connection` header names, and ``drop``."""
    removed = _HOP_BY_HOP_BYTES
    if drop:
        removed = removed.union(n.lower().encode("latin-1") for n in drop)
    return _without(headers, removed)


def forward_request_headers(headers: Iterable[tuple[bytes, bytes]], *drop: str) -> Headers:
    """A client's headers for the engine: minus hop-by-hop, `Host`, `Expect` and ``drop``."""
    removed = _NOT_FORWARDED
    if drop:
        removed = removed.union(n.lower().encode("latin-1") for n in drop)
    return _without(headers, removed)


def _without(headers: Iterable[tuple[bytes, bytes]], removed: frozenset[bytes]) -> Headers:
    """One pass over ``headers``; a second only when a `Connection` header names more."""
    pairs = headers if isinstance(headers, list) else list(headers)
    kept: Headers = []
    connection = False
    for name, value in pairs:
        lower = name.lower()
        if lower in removed:
            connection = connection or lower == b"connection"
            continue
        kept.append((name, value))
    if not connection:
        return kept
    named = {
        token.strip().lower().encode("latin-1")
        for name, value in pairs
        if name.lower() == b"connection"
        for token in value.decode("latin-1").split(",")
    }
    return [(n, v) for n, v in kept if n.lower() not in named]


def ssl_context(settings: UpstreamSettings) -> ssl.SSLContext:
    """Verification on by default (system-independent CA bundle, or ``ca_file``)."""
    context = ssl.create_default_context(cafile=settings.ca_file or certifi.where())
    if not settings.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class UpstreamResponse:
    """Status, raw headers and the raw body of one upstream answer (streamed or already read)."""

    def __init__(self, raw: H1Response, base: str) -> None:
        self._raw = raw
        self._base = base
        self._read = False
        self.status_code = raw.status
        self.headers: Headers = list(raw.headers)
        self.content = b""

    @property
    def complete(self) -> bool:
        """Whether the whole body was read already (``content``)."""
        return self._read

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        if self._read:  # read in full already (a retryable exchange): relay what was read
            if self.content:
                yield self.content
            return
        stream = self._raw.stream
        assert isinstance(stream, AsyncIterable)
        try:
            async for chunk in stream:
                yield chunk
        except httpcore.TimeoutException as exc:
            raise UpstreamTimeout(f"upstream {self._base} stalled mid-answer") from exc
        except _TRANSPORT_ERRORS as exc:
            raise UpstreamError(f"upstream {self._base} broke off: {exc}") from exc

    async def aread(self) -> bytes:
        if not self._read:
            whole = self._raw.take_complete()  # a small answer is usually in already
            if whole is not None:
                self.content = whole
            else:
                try:
                    self.content = b"".join([chunk async for chunk in self.aiter_raw()])
                finally:
                    await self._raw.aclose()
            self._read = True
        return self.content

    async def aclose(self) -> None:
        await self._raw.aclose()

    def json(self) -> Any:
        return json.loads(self.content)


def describe(exc: Exception) -> str:
    """A transport failure in words; a TLS failure says so and keeps OpenSSL's reason."""
    text = str(exc)
    if "SSL" in text or "CERTIFICATE" in text.upper():
        return f"TLS handshake failed: {text}"
    return f"{type(exc).__name__}: {text}"


class Upstream:
    """Forwards requests to the engine's nodes, retrying what is safe, with typed errors."""

    def __init__(self, settings: UpstreamSettings) -> None:
        self.settings = settings
        self.base = redacted(settings.url)
        tls = ssl_context(settings) if any(u.startswith("https:") for u in settings.urls) else None
        self.nodes = UpstreamNodes(
            settings.urls,
            ssl_context=tls,
            connections=settings.max_connections,
            dead_backoff_s=settings.dead_node_backoff_s,
            max_dead_backoff_s=settings.max_dead_node_backoff_s,
        )

    def url(self, raw_path: bytes, query: bytes = b"") -> httpcore.URL:
        """The URL of a path on the first node (the others differ only in host and port)."""
        return self.nodes.nodes[0].url(raw_path, query)

    def request_headers(
        self, headers: Headers, content: RequestContent, node: UpstreamNode | None = None
    ) -> Headers:
        """The client's headers plus `Host` and the body framing httpcore leaves to the caller."""
        names = {name.lower() for name, _ in headers}
        out = [(b"host", (node or self.nodes.nodes[0]).host_header), *headers]
        if isinstance(content, bytes):
            if b"content-length" not in names:
                out.append((b"content-length", str(len(content)).encode()))
        elif content is not None and b"content-length" not in names:
            out.append((b"transfer-encoding", b"chunked"))
        return out

    async def send(
        self,
        method: str,
        raw_path: bytes,
        query: bytes,
        headers: Headers,
        content: RequestContent,
        *,
        stream: bool,
        timeout_s: float | None = None,
        tried: int = 0,
        node: UpstreamNode | None = None,
    ) -> UpstreamResponse:
        """One exchange, resent to another node only when that is safe (see upstream_nodes).

        With ``stream`` the body is left unread (the caller closes it), except for a retryable
        read, which is read in full inside the retry loop so a node dying mid-answer is retried.
        ``tried``: attempts made already for this request (the server protocol's relay, which
        hands a failed read over here): they count against ``max_retries``, and the backoff
        before the next one is waited first; ``node``: the node for the first attempt (the
        relay picked it, so its round-robin turn is taken).
        """
        read = self.settings.timeout_s if timeout_s is None else timeout_s
        connect = self.settings.connect_timeout_s
        timeouts = {"connect": connect, "read": read, "write": read, "pool": read}
        replayable = content is None or isinstance(content, bytes)  # else a stream
        retry_reads = replayable and is_read(method, raw_path)
        attempts = 1 + self.settings.max_retries
        if tried:
            await asyncio.sleep(self.backoff_s(tried))
        picked = node
        for attempt in range(tried + 1, attempts + 1):
            node, picked = picked or self.nodes.get(), None
            last = attempt == attempts
            try:
                raw = await node.pool.request(
                    method.encode(),
                    node.target(raw_path, query),
                    self.request_headers(headers, content, node),
                    content,
                    timeouts,
                )
                response = UpstreamResponse(raw, node.base_url)
                if retry_reads or not stream:
                    await response.aread()
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                # no connection, so nothing was sent (not even a streamed body's first chunk):
                # any request may go to another node
                self.nodes.mark_dead(node)
                if last:
                    raise self.error(node, exc) from exc
            except (httpcore.TimeoutException, UpstreamTimeout) as exc:
                raise self.error(node, exc) from exc  # a slow engine: resending doubles its load
            except (*_TRANSPORT_ERRORS, UpstreamError) as exc:
                self.nodes.mark_dead(node)
                if last or not retry_reads:
                    raise self.error(node, exc) from exc
            else:
                if response.status_code not in RETRY_STATUSES:
                    self.nodes.mark_live(node)
                    if last or not retry_reads or not lost_a_node(response):
                        return response
                    # the coordinating node is fine; a shard copy's node vanished mid-search
                else:
                    self.nodes.mark_dead(node)
                    if last or not retry_reads:
                        return response
                await response.aclose()
            logger.warning(
                "upstream %s failed (attempt %d of %d), retrying on another node",
                node.base_url,
                attempt,
                attempts,
            )
            await asyncio.sleep(self.backoff_s(attempt))
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def backoff_s(self, attempt: int) -> float:
        """The wait before the retry that follows attempt number ``attempt``."""
        return backoff_s(attempt, self.settings.retry_backoff_s, self.settings.max_retry_backoff_s)

    @staticmethod
    def error(node: UpstreamNode, exc: Exception) -> UpstreamError:
        if isinstance(exc, UpstreamError):
            return exc
        if isinstance(exc, httpcore.TimeoutException):
            return UpstreamTimeout(
                f"upstream {node.base_url} did not answer in time ({type(exc).__name__})"
            )
        return UpstreamError(f"upstream {node.base_url} unreachable: {describe(exc)}")

    def node_states(self) -> list[dict[str, object]]:
        return self.nodes.states()

    async def aclose(self) -> None:
        await self.nodes.aclose()
