"""The state one proxy app shares across requests: settings, upstream pool, models, metrics.

Routes receive a ``Proxy``; it knows nothing of routes or of the app that builds it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from starlette.requests import Request

from bridge.errors import UpstreamError, UpstreamTimeout
from bridge.proxy import http_io
from bridge.proxy.drain import Drain
from bridge.proxy.model_pool import Loader, ModelPool
from bridge.proxy.prometheus import ProxyMetrics
from bridge.proxy.settings import ProxySettings
from bridge.proxy.upstream import Headers, RequestContent, Upstream


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

    # -- request helpers bound to this app's limits and auth header --------------------------

    def declared_length(self, request: Request) -> int | None:
        return http_io.declared_length(request)

    def body_stream(self, request: Request) -> RequestContent:
        return http_io.body_stream(request, self.settings.limits.max_body_bytes)

    async def read_body(self, request: Request) -> bytes:
        return await http_io.read_body(request, self.settings.limits.max_body_bytes)

    def forward_headers(self, request: Request, *, drop: tuple[str, ...] = ()) -> Headers:
        """Client headers for the engine, also without the proxy's own API key header."""
        return http_io.forward_headers(request, (self.settings.auth.header, *drop))

    def count_upstream_error(self, exc: UpstreamError) -> None:
        kind = "timeout" if isinstance(exc, UpstreamTimeout) else "unreachable"
        self.metrics.upstream_errors.labels(kind).inc()


__all__ = ["Proxy"]
