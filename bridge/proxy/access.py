"""Access log and request metrics, as one outermost ASGI middleware.

One JSON line per request on the `bridge.proxy.access` logger: method, path, status, bytes, time and
rerank headers. Never headers, bodies or query strings (they can carry credentials or user text).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bridge.proxy.error_responses import error_response
from bridge.proxy.prometheus import ProxyMetrics

access_logger = logging.getLogger("bridge.proxy.access")
logger = logging.getLogger(__name__)


def route_label(scope: Scope, named: frozenset[str] = frozenset()) -> str:
    """Low-cardinality route name for metrics (never the raw path); ``named`` paths are their own
    label (the model routes)."""
    path: str = scope.get("path", "")
    if path.startswith("/_bridge/") or path in named:
        return path
    last = path.rstrip("/").rsplit("/", 1)[-1]
    if last in ("_search", "_msearch"):
        return last
    return "passthrough"


# one encoder for every line (json.dumps with separators builds a new one per call)
_LINE = json.JSONEncoder(separators=(",", ":"))
_SERIES_CACHED = 1024  # (route, method, status) label sets kept resolved


class AccessLog:
    """The access line and the request metrics of one answered request; shared by the ASGI
    middleware below and the relay in the server protocol (bridge.proxy.relay)."""

    def __init__(self, metrics: ProxyMetrics, named_paths: frozenset[str] = frozenset()) -> None:
        self.metrics = metrics
        self.named_paths = named_paths
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}  # label set -> children

    def done(
        self, scope: Scope, status: int, sent: int, elapsed: float, rerank: dict[str, str]
    ) -> None:
        """Count the request and write its line (when the logger takes INFO)."""
        self.count(scope, status, elapsed)
        if access_logger.isEnabledFor(logging.INFO):
            record = {
                "method": scope["method"],
                "path": scope["path"],
                "status": status,
                "bytes": sent,
                "ms": round(elapsed * 1000, 2),
                "client": (scope.get("client") or ("", 0))[0],
                **rerank,
            }
            # Logger.info without its caller lookup (a walk up the stack per request)
            access_logger.handle(
                access_logger.makeRecord(
                    access_logger.name,
                    logging.INFO,
                    __file__,
                    0,
                    _LINE.encode(record),
                    (),
                    None,
                )
            )

    def count(self, scope: Scope, status: int, elapsed: float) -> None:
        """The request in the metrics; each label set is resolved once."""
        route = route_label(scope, self.named_paths)
        key = (route, scope["method"], status)
        series = self._series.get(key)
        if series is None:
            series = (
                self.metrics.requests.labels(route, scope["method"], str(status)),
                self.metrics.request_seconds.labels(route),
            )
            if len(self._series) >= _SERIES_CACHED:
                self._series.clear()
            self._series[key] = series
        series[0].inc()
        series[1].observe(elapsed)


class AccessMiddleware:
    def __init__(
        self, app: ASGIApp, *, metrics: ProxyMetrics, named_paths: frozenset[str] = frozenset()
    ) -> None:
        self.app = app
        self.log = AccessLog(metrics, named_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0
        sent = 0
        rerank: dict[str, str] = {}

        async def send_wrapper(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
                for name, value in message.get("headers", []):
                    if name[:9].lower() == b"x-rerank-":
                        rerank[name.decode("latin-1").lower()] = value.decode("latin-1")
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception:
            logger.exception("unhandled error on %s %s", scope["method"], scope["path"])
            if status == 0:  # nothing sent yet: answer in the engine's error shape
                status = 500
                response = error_response(500, "rerank_bridge_exception", "internal proxy error")
                await response(scope, receive, send_wrapper)
        finally:
            self.log.done(scope, status, sent, time.perf_counter() - started, rerank)
