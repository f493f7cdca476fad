"""Operation routes: pass-through of every other path, `/_bridge/health`, `/_bridge/metrics`."""

from __future__ import annotations

import contextlib
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bridge.errors import UpstreamError
from bridge.proxy.http_io import BodyTooLargeError, RelayResponse
from bridge.proxy.state import Proxy
from bridge.proxy.upstream_nodes import is_read


class OperationRoutes:
    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy

    async def passthrough(self, request: Request) -> Response:
        length = self.proxy.declared_length(request)
        if length is not None and length > self.proxy.settings.limits.max_body_bytes:
            raise BodyTooLargeError
        raw_path = request.scope.get("raw_path") or request.scope["path"].encode()
        # a read's (small) body is held in memory so another node can be sent the same bytes
        content = (
            await self.proxy.read_body(request)
            if is_read(request.method, raw_path)
            else self.proxy.body_stream(request)
        )
        upstream_response = await self.proxy.upstream.send(
            request.method,
            raw_path,
            request.scope.get("query_string", b""),
            self.proxy.forward_headers(request),
            content or None,
            stream=True,
        )
        return RelayResponse(upstream_response)

    async def health(self, request: Request) -> Response:
        if self.proxy.settings.upstream is None:
            upstream: dict[str, Any] = {"configured": False, "reachable": True}
        else:
            upstream = await self.upstream_health()
        await self.proxy.models.refresh()
        models = self.proxy.models.status()
        draining = self.proxy.drain.started
        healthy = bool(upstream["reachable"]) and self.proxy.models.ready() and not draining
        status = "draining" if draining else "ok" if healthy else "unavailable"
        return JSONResponse(
            {"status": status, "upstream": upstream, "models": models},
            status_code=200 if healthy else 503,
        )

    async def upstream_health(self) -> dict[str, Any]:
        upstream: dict[str, Any] = {"url": str(self.proxy.upstream.base)}
        if len(self.proxy.upstream.nodes.nodes) > 1:
            upstream["nodes"] = self.proxy.upstream.node_states()
        try:
            answer = await self.proxy.upstream.send(
                "GET", b"/_cluster/health", b"", [], None, stream=False, timeout_s=2.0
            )
            upstream["reachable"] = True
            upstream["http_status"] = answer.status_code
            if answer.status_code == 200:
                self.proxy.note_engine(answer.headers)
            upstream["engine"] = self.proxy.engine
            with contextlib.suppress(ValueError):
                upstream["cluster_status"] = answer.json().get("status")
        except UpstreamError as exc:
            upstream["reachable"] = False
            upstream["reason"] = exc.reason
        return upstream

    async def metrics_endpoint(self, request: Request) -> Response:
        self.proxy.models.update_metrics()
        return Response(self.proxy.metrics.render(), media_type=self.proxy.metrics.content_type)


__all__ = ["OperationRoutes"]
