"""Request and response helpers the proxy's routes share: bounded body reading, header filtering,
relaying a streamed upstream answer. Below the routes and the app: imports nothing of either.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import AsyncIterator, Iterable, Sequence

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from bridge.errors import ConfigError
from bridge.proxy.upstream import (
    Headers,
    RequestContent,
    UpstreamResponse,
    end_to_end,
    forward_request_headers,
)


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
        await relay(self._upstream, send, headers=self.raw_headers)


async def relay(
    answer: UpstreamResponse,
    send: Send,
    *,
    headers: Headers | None = None,
    extra: Sequence[tuple[bytes, bytes]] = (),
) -> None:
    """Send the upstream's answer on: its status, ``headers`` (default: its end-to-end ones)
    plus ``extra``, and its raw bytes as they arrive (in one message when already read).
    The upstream stream is closed whatever happens to the client."""
    try:
        out = end_to_end(answer.headers) if headers is None else headers
        if extra:
            out = [*out, *extra]
        await send({"type": "http.response.start", "status": answer.status_code, "headers": out})
        if answer.complete:
            await send({"type": "http.response.body", "body": answer.content, "more_body": False})
            return
        async for chunk in answer.aiter_raw():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        await answer.aclose()


# `"rerank"` as a JSON key, or one of its letters written as a \u escape (JSON allows
# `"\u0072erank"`): a body with neither certainly has no `rerank` key at any depth
_RERANK_ESCAPE = re.compile(rb"\\u00(?:72|65|6[eEbB]|61)")


def may_name_rerank(body: bytes) -> bool:
    """False only when the (decoded) JSON or ndjson ``body`` certainly has no `rerank` key.

    A byte scan, no parse: True also for `"rerank"` as a string value or in a larger string
    (the caller then parses the body to know)."""
    return b'"rerank"' in body or (b"\\u00" in body and _RERANK_ESCAPE.search(body) is not None)


def rerank_headers(status: str, model: str, took_ms: float) -> list[tuple[bytes, bytes]]:
    """The `X-Rerank-*` headers every answer of the search routes carries."""
    return [
        (b"x-rerank-status", status.encode()),
        (b"x-rerank-model", model.encode("latin-1", "replace")),
        (b"x-rerank-took", f"{took_ms:.1f}".encode()),
    ]


# the paths the search routes serve (group 1 of SEARCH_PATH: the index part, if any), and the
# `X-Rerank-*` tags of a `_search` relayed without reranking (the thin hop and the relay)
SEARCH_PATH = re.compile(r"/(?:([^/]+)/)?_search")
MSEARCH_PATH = re.compile(r"/(?:[^/]+/)?_msearch")
PASSTHROUGH_TAGS = rerank_headers("passthrough", "none", 0.0)


def header(headers: Headers, name: bytes) -> str | None:
    """One header's value from raw ASGI headers (``name`` lower case), None when absent."""
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def content_length(headers: Headers) -> int | None:
    """The Content-Length of raw ASGI headers, None when absent or not a number."""
    value = header(headers, b"content-length")
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def declared_length(request: Request) -> int | None:
    """The request's Content-Length, or None when absent or not a number."""
    return content_length(request.scope["headers"])


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
    return forward_request_headers(request.scope["headers"], *drop)


__all__ = [
    "BodyTooLargeError",
    "RelayResponse",
    "body_stream",
    "content_length",
    "declared_length",
    "decode_body",
    "forward_headers",
    "header",
    "may_name_rerank",
    "read_body",
    "relay",
    "rerank_headers",
]
