"""The proxy app: builds the routes, the middleware (auth, access log, metrics) and the lifespan
(upstream pool, models, settings reload). Nothing else lives here: routes import downward
(``state``, ``http_io``), never this module.

Rerank routes (`/_search`, `/{index}/_search`, `/_msearch`, `/{index}/_msearch`) are
bridge.proxy.search_routes'; every other path and method streams through to the upstream
untouched (bridge.proxy.ops_routes). The standard model routes (`/v1/rerank`, `/rerank`, `/embed`,
...) are bridge.proxy.model_api's; without an upstream they are all the server has.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bridge.errors import BridgeError, UpstreamError
from bridge.proxy.access import AccessMiddleware
from bridge.proxy.auth import ApiKeyMiddleware
from bridge.proxy.drain import PROCESS_DRAIN, Drain, DrainMiddleware
from bridge.proxy.error_responses import payload_too_large, response_for
from bridge.proxy.heap import settle_after_startup
from bridge.proxy.hop import ThinHop
from bridge.proxy.http_io import BodyTooLargeError
from bridge.proxy.model_api import MODEL_API_PATHS, model_api_routes
from bridge.proxy.model_pool import Loader
from bridge.proxy.ops_routes import OperationRoutes
from bridge.proxy.relay import Relay
from bridge.proxy.reload import SettingsReloader
from bridge.proxy.search_routes import SearchRoutes
from bridge.proxy.settings import (
    CONFIG_ENV,
    UPSTREAM_ENV,
    ProxySettings,
    load_settings_from_env,
)
from bridge.proxy.state import Proxy

ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]


def lifespan(proxy: Proxy) -> Callable[[Starlette], contextlib.AbstractAsyncContextManager[None]]:
    """Open what the app shares (engine kind probe, models, settings reload); close it after."""

    @contextlib.asynccontextmanager
    async def run(app: Starlette) -> AsyncIterator[None]:
        upstream = proxy.upstream if proxy.settings.upstream is not None else None
        if upstream is not None:
            with contextlib.suppress(UpstreamError):  # learn the engine kind early if it is up
                probe = await upstream.send(
                    "GET", b"/_cluster/health", b"", [], None, stream=False, timeout_s=2.0
                )
                if probe.status_code == 200:
                    proxy.note_engine(probe.headers)
        await proxy.models.preload(proxy.settings.startup_models())
        try:
            async with SettingsReloader(proxy).running():
                yield
        finally:
            proxy.metrics.flush()  # the relay's last access records (bridge.proxy.access)
            await proxy.models.aclose()
            if upstream is not None:
                await upstream.aclose()

    return run


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
    proxy = Proxy(
        settings,
        loader=loader,
        config_path=config_path,
        upstream_override=upstream_override,
        drain=drain,
    )
    ops = OperationRoutes(proxy)
    routes = [
        Route("/_bridge/health", ops.health, methods=["GET"]),
        Route("/_bridge/metrics", ops.metrics_endpoint, methods=["GET"]),
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
            Route("/{path:path}", _guard(ops.passthrough, proxy), methods=ALL_METHODS),
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
    if settings.upstream is not None:  # innermost: relays what is not reranked (bridge.proxy.hop)
        middleware.append(Middleware(ThinHop, proxy=proxy, own_paths=MODEL_API_PATHS))
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan(proxy))
    app.state.proxy = proxy
    if settings.upstream is not None:  # plain reads relayed by the server protocol itself
        app.state.relay = Relay(proxy, own_paths=MODEL_API_PATHS)
    return app


def create_app_from_env() -> Starlette:
    """uvicorn factory of `rerank-bridge serve` (each worker process); the heap is frozen once
    start-up is over (bridge.proxy.heap)."""
    path = os.environ.get(CONFIG_ENV) or None
    urls = [u for u in os.environ.get(UPSTREAM_ENV, "").split(",") if u] or None
    app = create_app(
        load_settings_from_env(), config_path=path, upstream_override=urls, drain=PROCESS_DRAIN
    )
    settled: Starlette = settle_after_startup(app)
    return settled


__all__ = ["create_app", "create_app_from_env", "lifespan"]
