"""The thin hop: requests the proxy does not rerank, relayed on raw ASGI.

Most of a proxy's traffic is not reranked: every path but the rerank routes, and `_search`
requests without a `rerank` key. This ASGI layer sits inside the app's middleware (drain, access
log and metrics, API key), in front of the Starlette router, and relays those requests itself:
no `Request`/`Response` objects, no route matching, one pass over the headers each way.

Everything it cannot decide cheaply goes on to the router, with a body already read replayed:

- the bridge's own and the model routes, `_msearch`, methods the router does not know;
- a `_search` whose index policy may rerank or bucket it (``always``, ``ab``), whose query string
  mentions `rerank`, or whose body *may* have a `rerank` key (bridge.proxy.http_io.may_name_rerank:
  the byte scan only ever answers "certainly not", anything else is parsed by the search route).

Behaviour is the router's, byte for byte: the same forwarded headers, the same body limits and
ES-shaped errors (`X-Rerank-*` on the search routes' errors), the same retry rules upstream.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bridge.errors import BridgeError, UpstreamError
from bridge.proxy.error_responses import payload_too_large, response_for
from bridge.proxy.http_io import (
    MSEARCH_PATH,
    PASSTHROUGH_TAGS,
    SEARCH_PATH,
    BodyTooLargeError,
    content_length,
    decode_body,
    header,
    may_name_rerank,
    relay,
)
from bridge.proxy.relay import RELAY_KEY, Handover
from bridge.proxy.state import Proxy
from bridge.proxy.upstream import Headers, RequestContent, forward_request_headers
from bridge.proxy.upstream_nodes import is_read

# the router's catch-all route takes these methods; anything else is its 405
PASS_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})


class ThinHop:
    """Raw ASGI pass-through in front of ``app`` (the router), for an app with an upstream."""

    def __init__(self, app: ASGIApp, *, proxy: Proxy, own_paths: frozenset[str]) -> None:
        self.app = app
        self.proxy = proxy
        self.own_paths = own_paths  # the bridge's and the model API's routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        method: str = scope["method"]
        if path in self.own_paths or path.startswith("/_bridge/") or method not in PASS_METHODS:
            await self.app(scope, receive, send)
            return
        search = SEARCH_PATH.fullmatch(path)
        if search is not None and method in ("GET", "POST", "HEAD"):
            if method == "HEAD":
                await self.app(scope, receive, send)
            else:
                await self.search(scope, receive, send, search.group(1))
            return
        if MSEARCH_PATH.fullmatch(path) is not None and method in ("GET", "POST", "HEAD"):
            await self.app(scope, receive, send)
            return
        await self.passthrough(scope, receive, send)

    # -- the two relays ----------------------------------------------------------------------

    async def passthrough(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Any other path: the client's request as it is, the engine's answer as it is."""
        try:
            headers: Headers = scope["headers"]
            limit = self.proxy.settings.limits.max_body_bytes
            length = self.declared_length(headers)
            method: str = scope["method"]
            raw_path = scope.get("raw_path") or scope["path"].encode()
            why = relayed(scope)
            content: RequestContent
            if is_read(method, raw_path):  # a read's small body is kept to resend it elsewhere
                content = await read_body(receive, limit) or None
            else:
                content = body_stream(receive, headers, length, limit)
            answer = await self.proxy.upstream.send(
                method,
                raw_path,
                scope.get("query_string", b""),
                self.forward_headers(headers),
                content,
                stream=True,
                tried=why.tried,
                node=why.node,
            )
        except (BodyTooLargeError, BridgeError) as exc:
            await self.error(exc, scope, receive, send, None)
            return
        await relay(answer, send)

    async def search(self, scope: Scope, receive: Receive, send: Send, index: str | None) -> None:
        """A `_search` that is certainly not reranked is relayed; any other goes to the router."""
        query: bytes = scope.get("query_string", b"")
        if self.proxy.settings.policies.may_rerank_unasked(index):
            await self.app(scope, receive, send)  # the policy may rerank or bucket it
            return
        if b"rerank" in query:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers: Headers = scope["headers"]
        limit = self.proxy.settings.limits.max_body_bytes
        try:
            self.declared_length(headers)
            raw = await read_body(receive, limit)
        except BodyTooLargeError as exc:
            await self.error(exc, scope, receive, send, started)
            return
        try:
            body = decode_body(raw, header(headers, b"content-encoding"), limit)
        except (BodyTooLargeError, BridgeError):
            body = None  # the search route answers these (its own error types)
        if body is None or may_name_rerank(body):
            await self.app(scope, replay(raw, receive), send)
            return
        try:
            why = relayed(scope)
            answer = await self.proxy.upstream.send(
                scope["method"],
                scope.get("raw_path") or scope["path"].encode(),
                query,
                self.forward_headers(headers),
                raw or None,
                stream=True,
                tried=why.tried,
                node=why.node,
            )
        except BridgeError as exc:
            await self.error(exc, scope, receive, send, started)
            return
        await relay(answer, send, extra=PASSTHROUGH_TAGS)

    # -- helpers -------------------------------------------------------------------------------

    def declared_length(self, headers: Headers) -> int | None:
        """The Content-Length; ``BodyTooLargeError`` when it is over the limit already."""
        length = content_length(headers)
        if length is not None and length > self.proxy.settings.limits.max_body_bytes:
            raise BodyTooLargeError
        return length

    def forward_headers(self, headers: Headers) -> Headers:
        return forward_request_headers(headers, self.proxy.settings.auth.header)

    async def error(
        self,
        exc: Exception,
        scope: Scope,
        receive: Receive,
        send: Send,
        started: float | None,
    ) -> None:
        """The router's answer to the same failure (its `_guard`); search routes add X-Rerank-*."""
        if isinstance(exc, BodyTooLargeError):
            response = payload_too_large(self.proxy.settings.limits.max_body_bytes)
        else:
            assert isinstance(exc, BridgeError)
            if isinstance(exc, UpstreamError):
                self.proxy.count_upstream_error(exc)
            response = response_for(exc)
        if started is not None:
            took = f"{(time.perf_counter() - started) * 1000:.1f}"
            response.headers.update(
                {"X-Rerank-Status": "skipped", "X-Rerank-Model": "none", "X-Rerank-Took": took}
            )
        await response(scope, receive, send)


def relayed(scope: Scope) -> Handover:
    """What the server protocol's relay did already (bridge.proxy.relay): attempts made, the
    node it picked; raises the error it ended with when that is the one to answer."""
    why: Handover | None = scope.get(RELAY_KEY)
    if why is None:
        return _NOT_RELAYED
    if why.error is not None:
        raise why.error
    return why


_NOT_RELAYED = Handover()


async def _received(
    receive: Receive, limit: int, first: Message | None = None
) -> AsyncIterator[bytes]:
    """The request body's chunks from ASGI messages (``first`` received already);
    ``BodyTooLargeError`` past ``limit``."""
    seen = 0
    while True:
        message = first if first is not None else await receive()
        first = None
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        chunk: bytes = message.get("body", b"")
        seen += len(chunk)
        if seen > limit:
            raise BodyTooLargeError
        yield chunk
        if not message.get("more_body", False):
            return


async def read_body(receive: Receive, limit: int) -> bytes:
    """The whole request body; ``BodyTooLargeError`` past ``limit`` bytes."""
    message = await receive()
    if message["type"] == "http.request" and not message.get("more_body", False):
        body: bytes = message.get("body", b"")  # in one message: the common case
        if len(body) > limit:
            raise BodyTooLargeError
        return body
    return b"".join([chunk async for chunk in _received(receive, limit, message)])


def body_stream(
    receive: Receive, headers: Headers, length: int | None, limit: int
) -> RequestContent:
    """The request body as a bounded stream (None without one), never held in memory."""
    chunked = "chunked" in (header(headers, b"transfer-encoding") or "").lower()
    if not chunked and not length:
        return None
    return (chunk async for chunk in _received(receive, limit) if chunk)


def replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` for a request whose body was read already: that body first, then the rest."""
    pending = True

    async def again() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again


__all__ = ["ThinHop", "body_stream", "read_body", "replay"]
