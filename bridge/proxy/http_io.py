"""Request and response helpers the proxy's routes share: bounded body reading, header filtering,
relaying a streamed upstream answer. Below the routes and the app: imports nothing of either.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Iterable

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from bridge.errors import ConfigError
from bridge.proxy.upstream import Headers, RequestContent, UpstreamResponse, end_to_end


class BodyTooLargeError(Exception):
    """The client sent more than limits.max_body_bytes."""


class RelayResponse(Response):
    """The upstream's answer relayed as it arrives: its status, its end-to-end headers, raw bytes.

    A plain ASGI sender rather than StreamingResponse: no task group per request (the relay is
    the proxy's hot path), and the upstream stream is closed whatever happens to the client.
    """

    def __init__(self, upstream_response: UpstreamResponse) -> None:
        self.status_code = upstream_response.status_code
        self.background = None
        self.body = b""
        self.raw_headers = end_to_end(upstream_response.headers)
        self._upstream = upstream_response

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": self.status_code,
                    "headers": self.raw_headers,
                }
            )
            async for chunk in self._upstream.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await self._upstream.aclose()


def declared_length(request: Request) -> int | None:
    """The request's Content-Length, or None when absent or not a number."""
    value = request.headers.get("content-length")
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def body_stream(request: Request, limit: int) -> RequestContent:
    """The client body as a bounded stream (None when there is none), never buffered."""
    length = declared_length(request)
    chunked = "chunked" in request.headers.get("transfer-encoding", "").lower()
    if not chunked and not length:
        return None

    async def chunks() -> AsyncIterator[bytes]:
        seen = 0
        async for chunk in request.stream():
            seen += len(chunk)
            if seen > limit:
                raise BodyTooLargeError
            if chunk:
                yield chunk

    return chunks()


async def read_body(request: Request, limit: int) -> bytes:
    """The whole client body; ``BodyTooLargeError`` past ``limit`` bytes."""
    parts: list[bytes] = []
    seen = 0
    async for chunk in request.stream():
        seen += len(chunk)
        if seen > limit:
            raise BodyTooLargeError
        parts.append(chunk)
    return b"".join(parts)


def decode_body(body: bytes, encoding: str | None, limit: int) -> bytes:
    """The request body without its Content-Encoding (gzip/deflate), bounded by ``limit``."""
    kind = (encoding or "identity").lower().strip()
    if kind == "identity":
        return body
    if kind not in ("gzip", "x-gzip", "deflate"):
        raise ConfigError(f"unsupported request Content-Encoding {encoding!r}", field="body")
    decompressor = zlib.decompressobj(31 if kind != "deflate" else 15)
    try:
        out = decompressor.decompress(body, limit + 1)
    except zlib.error as exc:
        raise ConfigError(f"cannot decompress request body: {exc}", field="body") from exc
    if len(out) > limit:
        raise BodyTooLargeError
    return out


def forward_headers(request: Request, drop: Iterable[str] = ()) -> Headers:
    """Client headers for the engine: minus hop-by-hop, `Host`, `Expect` and ``drop``."""
    # `Expect: 100-continue` is answered by our server already; httpx cannot relay it
    return end_to_end(request.headers.raw, drop=("host", "expect", *drop))


__all__ = [
    "BodyTooLargeError",
    "RelayResponse",
    "body_stream",
    "declared_length",
    "decode_body",
    "forward_headers",
    "read_body",
]
