"""The proxy app: routes, lifespan (upstream pool, models), middleware (auth, limits, metrics).

Rerank routes (`/_search`, `/{index}/_search`, `/_msearch`, `/{index}/_msearch`) are handled by
bridge.proxy.search_routes; every other path and method streams through to the upstream
untouched. The standard model routes (`/v1/rerank`, `/rerank`, `/embed`, ...) are
bridge.proxy.model_api's; without an upstream they are all the server has.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from bridge.errors import BridgeError, UpstreamError, UpstreamTimeout
from bridge.proxy.access import AccessMiddleware
from bridge.proxy.auth import ApiKeyMiddleware
from bridge.proxy.drain import PROCESS_DRAIN, Drain, DrainMiddleware
from bridge.proxy.error_responses import payload_too_large, response_for
from bridge.proxy.model_pool import Loader, ModelPool
from bridge.proxy.prometheus import ProxyMetrics
from bridge.proxy.settings import (
    CONFIG_ENV,
    UPSTREAM_ENV,
    ProxySettings,
    load_settings_from_env,
)
from bridge.proxy.upstream import RequestContent, Upstream, UpstreamResponse, end_to_end
from bridge.proxy.upstream_nodes import is_read

logger = logging.getLogger(__name__)

ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]


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


class Proxy:
    """Shared state of one app: settings, upstream pool, models, metrics."""

    def __init__(
        self,
        settings: ProxySettings,
        *,
        loader: Loader | None = None,
        config_path: str | None = None,
        upstream_override: str | Sequence[str] | None = None,
        drain: Drain | None = None,
    ) -> None:
        self.settings = settings
        self.allowed_models = settings.allowed_models()
        # where the settings came from, for reloads (SIGHUP or a changed file)
        self.config_path = config_path
        self.upstream_override = upstream_override
        self.drain = drain or Drain()
        self.metrics = ProxyMetrics()
        up = settings.upstream
        self._upstream = Upstream(up) if up is not None else None
        self.models = ModelPool(settings.scorer, settings.batching, self.metrics, loader=loader)
        configured = up.engine if up is not None else "auto"
        self.engine = "elasticsearch" if configured == "auto" else configured

    @property
    def upstream(self) -> Upstream:
        if self._upstream is None:  # routes that need one are not registered without one
            raise UpstreamError("no upstream engine is configured (model routes only)")
        return self._upstream

    def apply_settings(self, new: ProxySettings) -> list[str]:
        """Put reloaded settings in force: `rerank` and `indices` (policies, A/B) apply to the
        next request; the sections returned changed but apply only after a restart."""
        current = self.settings
        later = [
            name
            for name in ("upstream", "limits", "auth", "batching", "scorer", "model_api")
            if getattr(new, name) != getattr(current, name)
        ]
        live = dataclasses.replace(
            current,
            rerank=new.rerank,
            indices=new.indices,
            policies=new.policies,
            reload=new.reload,
        )
        self.allowed_models = live.allowed_models()
        self.settings = live
        return later

    def note_engine(self, headers: list[tuple[bytes, bytes]]) -> None:
        """Learn the engine kind from an answer: only Elasticsearch sends X-Elastic-Product."""
        if self.settings.upstream is None or self.settings.upstream.engine != "auto":
            return
        product = next((v for n, v in headers if n.lower() == b"x-elastic-product"), None)
        self.engine = "elasticsearch" if product == b"Elasticsearch" else "opensearch"

    # -- request bodies ---------------------------------------------------------------------

    def declared_length(self, request: Request) -> int | None:
        value = request.headers.get("content-length")
        if value is None:
            return None
        try:
            return int(value)
        except ValueError:
            return None

    def body_stream(self, request: Request) -> RequestContent:
        """The client body as a bounded stream (None when there is none), never buffered."""
        length = self.declared_length(request)
        chunked = "chunked" in request.headers.get("transfer-encoding", "").lower()
        if not chunked and not length:
            return None
        limit = self.settings.limits.max_body_bytes

        async def chunks() -> AsyncIterator[bytes]:
            seen = 0
            async for chunk in request.stream():
                seen += len(chunk)
                if seen > limit:
                    raise BodyTooLargeError
                if chunk:
                    yield chunk

        return chunks()

    async def read_body(self, request: Request) -> bytes:
        limit = self.settings.limits.max_body_bytes
        parts: list[bytes] = []
        seen = 0
        async for chunk in request.stream():
            seen += len(chunk)
            if seen > limit:
                raise BodyTooLargeError
            parts.append(chunk)
        return b"".join(parts)

    def forward_headers(
        self, request: Request, *, drop: tuple[str, ...] = ()
    ) -> list[tuple[bytes, bytes]]:
        """Client headers for the engine: minus hop-by-hop, `Host`, the proxy's key and ``drop``."""
        # `Expect: 100-continue` is answered by our server already; httpx cannot relay it
        hidden = ("host", "expect", self.settings.auth.header, *drop)
        return end_to_end(request.headers.raw, drop=hidden)

    # -- pass-through -----------------------------------------------------------------------

    async def passthrough(self, request: Request) -> Response:
        length = self.declared_length(request)
        if length is not None and length > self.settings.limits.max_body_bytes:
            raise BodyTooLargeError
        raw_path = request.scope.get("raw_path") or request.scope["path"].encode()
        # a read's (small) body is held in memory so another node can be sent the same bytes
        content = (
            await self.read_body(request)
            if is_read(request.method, raw_path)
            else self.body_stream(request)
        )
        upstream_response = await self.upstream.send(
            request.method,
            raw_path,
            request.scope.get("query_string", b""),
            self.forward_headers(request),
            content or None,
            stream=True,
        )
        return self.stream_back(upstream_response)

    def stream_back(self, upstream_response: UpstreamResponse) -> Response:
        return RelayResponse(upstream_response)

    def count_upstream_error(self, exc: UpstreamError) -> None:
        kind = "timeout" if isinstance(exc, UpstreamTimeout) else "unreachable"
        self.metrics.upstream_errors.labels(kind).inc()

    # -- operations -------------------------------------------------------------------------

    async def health(self, request: Request) -> Response:
        if self._upstream is None:
            upstream: dict[str, Any] = {"configured": False, "reachable": True}
        else:
            upstream = await self.upstream_health()
        await self.models.refresh()
        models = self.models.status()
        healthy = bool(upstream["reachable"]) and self.models.ready() and not self.drain.started
        return JSONResponse(
            {"status": self._status(healthy), "upstream": upstream, "models": models},
            status_code=200 if healthy else 503,
        )

    def _status(self, healthy: bool) -> str:
        if self.drain.started:
            return "draining"
        return "ok" if healthy else "unavailable"

    async def upstream_health(self) -> dict[str, Any]:
        upstream: dict[str, Any] = {"url": str(self.upstream.base)}
        if len(self.upstream.nodes.nodes) > 1:
            upstream["nodes"] = self.upstream.node_states()
        try:
            answer = await self.upstream.send(
                "GET", b"/_cluster/health", b"", [], None, stream=False, timeout_s=2.0
            )
            upstream["reachable"] = True
            upstream["http_status"] = answer.status_code
            if answer.status_code == 200:
                self.note_engine(answer.headers)
            upstream["engine"] = self.engine
            with contextlib.suppress(ValueError):
                upstream["cluster_status"] = answer.json().get("status")
        except UpstreamError as exc:
            upstream["reachable"] = False
            upstream["reason"] = exc.reason
        return upstream

    async def metrics_endpoint(self, request: Request) -> Response:
        self.models.update_metrics()
        return Response(self.metrics.render(), media_type=self.metrics.content_type)

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        if self._upstream is not None:
            with contextlib.suppress(UpstreamError):  # learn the engine kind early if it is up
                probe = await self._upstream.send(
                    "GET", b"/_cluster/health", b"", [], None, stream=False, timeout_s=2.0
                )
                if probe.status_code == 200:
                    self.note_engine(probe.headers)
        await self.models.preload(self.settings.startup_models())
        from bridge.proxy.reload import SettingsReloader

        try:
            async with SettingsReloader(self).running():
                yield
        finally:
            await self.models.aclose()
            if self._upstream is not None:
                await self._upstream.aclose()


def _guard(
    handler: Callable[[Request], Any], proxy: Proxy, *, rerank_route: bool = False
) -> Callable[[Request], Any]:
    """Typed errors and over-long bodies become ES-shaped answers, whatever the route."""

    async def endpoint(request: Request) -> Response:
        started = time.perf_counter()
        try:
            response: Response = await handler(request)
            return response
        except BodyTooLargeError:
            response = payload_too_large(proxy.settings.limits.max_body_bytes)
        except BridgeError as exc:
            if isinstance(exc, UpstreamError):
                proxy.count_upstream_error(exc)
            response = response_for(exc)
        if rerank_route:  # the X-Rerank-* headers are on every answer of these routes
            took = f"{(time.perf_counter() - started) * 1000:.1f}"
            response.headers.update(
                {"X-Rerank-Status": "skipped", "X-Rerank-Model": "none", "X-Rerank-Took": took}
            )
        return response

    return endpoint


def create_app(
    settings: ProxySettings,
    *,
    loader: Loader | None = None,
    config_path: str | None = None,
    upstream_override: str | Sequence[str] | None = None,
    drain: Drain | None = None,
) -> Starlette:
    """The ASGI app. ``loader`` (model name, max length -> scorer) injects model faults in tests.

    ``config_path``: the settings file, re-read on SIGHUP or when it changes
    (bridge.proxy.reload); ``upstream_override`` is re-applied to it (``--upstream``);
    ``drain``: the flag a shutdown sets (bridge.proxy.drain), a fresh one when not given.
    """
    from bridge.proxy.model_api import MODEL_API_PATHS, model_api_routes
    from bridge.proxy.search_routes import SearchRoutes

    proxy = Proxy(
        settings,
        loader=loader,
        config_path=config_path,
        upstream_override=upstream_override,
        drain=drain,
    )
    routes = [
        Route("/_bridge/health", proxy.health, methods=["GET"]),
        Route("/_bridge/metrics", proxy.metrics_endpoint, methods=["GET"]),
        *model_api_routes(proxy),
    ]
    if settings.upstream is not None:
        search = SearchRoutes(proxy)
        search_routes = _guard(search.search, proxy, rerank_route=True)
        msearch_routes = _guard(search.msearch, proxy, rerank_route=True)
        routes += [
            Route("/_search", search_routes, methods=["GET", "POST"]),
            Route("/{index}/_search", search_routes, methods=["GET", "POST"]),
            Route("/_msearch", msearch_routes, methods=["GET", "POST"]),
            Route("/{index}/_msearch", msearch_routes, methods=["GET", "POST"]),
            Route("/{path:path}", _guard(proxy.passthrough, proxy), methods=ALL_METHODS),
        ]
    middleware = [
        Middleware(DrainMiddleware, drain=proxy.drain),
        Middleware(AccessMiddleware, metrics=proxy.metrics, named_paths=MODEL_API_PATHS),
    ]
    if settings.auth.api_key:  # the model routes check their own bearer token instead
        middleware.append(
            Middleware(
                ApiKeyMiddleware,
                api_key=settings.auth.api_key,
                header=settings.auth.header,
                open_paths=MODEL_API_PATHS,
            )
        )
    app = Starlette(routes=routes, middleware=middleware, lifespan=proxy.lifespan)
    app.state.proxy = proxy
    return app


def create_app_from_env() -> Starlette:
    """uvicorn factory for worker processes (`rerank-bridge serve --workers N`)."""
    path = os.environ.get(CONFIG_ENV) or None
    urls = [u for u in os.environ.get(UPSTREAM_ENV, "").split(",") if u] or None
    return create_app(
        load_settings_from_env(), config_path=path, upstream_override=urls, drain=PROCESS_DRAIN
    )


__all__ = ["BodyTooLargeError", "Proxy", "create_app", "create_app_from_env"]
