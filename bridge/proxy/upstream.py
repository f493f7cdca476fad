"""The upstream connection pool: one httpx.AsyncClient per app, raw bytes both ways.

Pass-through bodies are never decoded: the client's `Accept-Encoding` goes upstream as sent and the
engine's (possibly gzip) bytes come back untouched. Only the fixed upstream URL is ever contacted
(no redirects followed, no environment proxies), so client credentials cannot leak elsewhere.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterable, Iterable

import httpx

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

RequestContent = bytes | AsyncIterable[bytes] | None


def end_to_end(
    headers: Iterable[tuple[bytes, bytes]], *, drop: Iterable[str] = ()
) -> list[tuple[bytes, bytes]]:
    """Headers minus hop-by-hop ones, those the `Connection` header names, and ``drop``."""
    pairs = list(headers)
    removed = set(HOP_BY_HOP) | {name.lower() for name in drop}
    for name, value in pairs:
        if name.lower() == b"connection":
            removed.update(token.strip().lower() for token in value.decode("latin-1").split(","))
    return [(n, v) for n, v in pairs if n.decode("latin-1").lower() not in removed]


def _verify(settings: UpstreamSettings) -> ssl.SSLContext | bool:
    if not settings.verify:
        return False
    if settings.ca_file:
        return ssl.create_default_context(cafile=settings.ca_file)
    return True


class Upstream:
    """Forwards requests to the configured engine and maps transport failures to typed errors."""

    def __init__(self, settings: UpstreamSettings) -> None:
        self.settings = settings
        self.base = httpx.URL(settings.url)
        self._client = httpx.AsyncClient(
            verify=_verify(settings),
            timeout=httpx.Timeout(settings.timeout_s, connect=settings.connect_timeout_s),
            limits=httpx.Limits(
                max_connections=settings.max_connections,
                max_keepalive_connections=settings.max_connections,
            ),
            follow_redirects=False,
            trust_env=False,
        )
        # httpx adds Accept/Accept-Encoding/User-Agent by default; a proxy must send only the
        # client's own (an unrequested gzip answer would reach a client that cannot read it)
        for name in ("accept", "accept-encoding", "user-agent"):
            del self._client.headers[name]

    def url(self, raw_path: bytes, query: bytes = b"") -> httpx.URL:
        # built from parts so a path such as `//other-host/x` cannot change the host
        prefix = self.base.raw_path.rstrip(b"/")
        return self.base.copy_with(raw_path=prefix + raw_path + (b"?" + query if query else b""))

    async def send(
        self,
        method: str,
        raw_path: bytes,
        query: bytes,
        headers: list[tuple[bytes, bytes]],
        content: RequestContent,
        *,
        stream: bool,
        timeout_s: float | None = None,
    ) -> httpx.Response:
        """One upstream exchange; with ``stream`` the body is left unread (caller closes it)."""
        request = self._client.build_request(
            method,
            self.url(raw_path, query),
            headers=headers,
            content=content,
            timeout=httpx.Timeout(timeout_s, connect=self.settings.connect_timeout_s)
            if timeout_s is not None
            else httpx.USE_CLIENT_DEFAULT,
        )
        try:
            return await self._client.send(request, stream=stream)
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout(
                f"upstream {self.base} did not answer in time ({type(exc).__name__})"
            ) from exc
        except httpx.TransportError as exc:
            raise UpstreamError(
                f"upstream {self.base} unreachable: {type(exc).__name__}: {exc}"
            ) from exc

    async def aclose(self) -> None:
        await self._client.aclose()
