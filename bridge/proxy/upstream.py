"""The upstream connection pool (httpx's transport, httpcore), raw bytes both ways.

The proxy talks to the engine through httpcore's pool directly: a proxy wants exactly what httpx
adds on top (URL parsing, default headers, content decoding) left out, and it is the hot path.
Pass-through bodies are never decoded: the client's `Accept-Encoding` goes upstream as sent and the
engine's (possibly gzip) bytes come back untouched. Only the fixed upstream URL is ever contacted
(no redirects followed, no environment proxies), so client credentials cannot leak elsewhere.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from typing import Any
from urllib.parse import urlsplit

import certifi
import httpcore

from bridge.errors import UpstreamError, UpstreamTimeout
from bridge.proxy.settings import UpstreamSettings

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


def end_to_end(headers: Iterable[tuple[bytes, bytes]], *, drop: Iterable[str] = ()) -> Headers:
    """Headers minus hop-by-hop ones, those the `Connection` header names, and ``drop``."""
    pairs = list(headers)
    removed = set(HOP_BY_HOP) | {name.lower() for name in drop}
    for name, value in pairs:
        if name.lower() == b"connection":
            removed.update(token.strip().lower() for token in value.decode("latin-1").split(","))
    return [(n, v) for n, v in pairs if n.decode("latin-1").lower() not in removed]


def ssl_context(settings: UpstreamSettings) -> ssl.SSLContext:
    """Verification on by default (system-independent CA bundle, or ``ca_file``)."""
    context = ssl.create_default_context(cafile=settings.ca_file or certifi.where())
    if not settings.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class UpstreamResponse:
    """Status, raw headers and the raw body stream of one upstream answer."""

    def __init__(self, raw: httpcore.Response, base: str) -> None:
        self._raw = raw
        self._base = base
        self.status_code = raw.status
        self.headers: Headers = list(raw.headers)
        self.content = b""

    async def aiter_raw(self) -> AsyncIterator[bytes]:
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
        self.content = b"".join([chunk async for chunk in self.aiter_raw()])
        return self.content

    async def aclose(self) -> None:
        await self._raw.aclose()

    def json(self) -> Any:
        return json.loads(self.content)


class Upstream:
    """Forwards requests to the configured engine and maps transport failures to typed errors."""

    def __init__(self, settings: UpstreamSettings) -> None:
        self.settings = settings
        parts = urlsplit(settings.url)
        self.base = settings.url
        self._scheme = parts.scheme.encode()
        self._host = (parts.hostname or "").encode("idna")
        self._port = parts.port
        self._prefix = parts.path.rstrip("/").encode()
        self._host_header = parts.netloc.rsplit("@", 1)[-1].encode("idna")
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context(settings) if parts.scheme == "https" else None,
            max_connections=settings.max_connections,
            max_keepalive_connections=settings.max_connections,
            keepalive_expiry=30.0,
        )

    def url(self, raw_path: bytes, query: bytes = b"") -> httpcore.URL:
        # built from parts so a path such as `//other-host/x` cannot change the host
        target = self._prefix + raw_path + (b"?" + query if query else b"")
        return httpcore.URL(scheme=self._scheme, host=self._host, port=self._port, target=target)

    def request_headers(self, headers: Headers, content: RequestContent) -> Headers:
        """The client's headers plus `Host` and the body framing httpcore leaves to the caller."""
        names = {name.lower() for name, _ in headers}
        out = [(b"host", self._host_header), *headers]
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
    ) -> UpstreamResponse:
        """One upstream exchange; with ``stream`` the body is left unread (caller closes it)."""
        read = self.settings.timeout_s if timeout_s is None else timeout_s
        connect = self.settings.connect_timeout_s
        request = httpcore.Request(
            method.encode(),
            self.url(raw_path, query),
            headers=self.request_headers(headers, content),
            content=content,
            extensions={"timeout": {"connect": connect, "read": read, "write": read, "pool": read}},
        )
        try:
            response = UpstreamResponse(await self._pool.handle_async_request(request), self.base)
        except httpcore.TimeoutException as exc:
            raise UpstreamTimeout(
                f"upstream {self.base} did not answer in time ({type(exc).__name__})"
            ) from exc
        except _TRANSPORT_ERRORS as exc:
            raise UpstreamError(
                f"upstream {self.base} unreachable: {type(exc).__name__}: {exc}"
            ) from exc
        if not stream:
            try:
                await response.aread()
            finally:
                await response.aclose()
        return response

    async def aclose(self) -> None:
        await self._pool.aclose()
