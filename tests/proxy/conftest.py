"""Proxy test helpers: start the proxy as a real uvicorn server, and tiny faulty upstreams.

The fakes exist only to inject faults the real engines cannot produce on demand (a dead port, an
answer slower than the timeout); behaviour against engines is tested with the real nodes.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bridge.proxy.app import create_app
from bridge.proxy.models import Loader
from bridge.proxy.server import ProxyServer
from bridge.proxy.settings import settings_from_mapping

StartProxy = Callable[..., ProxyServer]


@pytest.fixture
def start_proxy() -> Iterator[StartProxy]:
    """``start_proxy(upstream_url, **settings_sections)`` -> a running ProxyServer (stopped after)."""
    servers: list[ProxyServer] = []

    def start(
        upstream: str | dict[str, Any], *, loader: Loader | None = None, **sections: Any
    ) -> ProxyServer:
        settings = settings_from_mapping({"upstream": upstream, **sections})
        server = ProxyServer(create_app(settings, loader=loader)).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def dead_upstream_url() -> str:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def slow_upstream_url() -> Iterator[str]:
    """An upstream that takes 3 s to answer anything."""

    async def slow(request: Request) -> JSONResponse:
        await asyncio.sleep(3)
        return JSONResponse({}, headers={"X-Elastic-Product": "Elasticsearch"})

    app = Starlette(routes=[Route("/{path:path}", slow, methods=["GET", "POST", "PUT"])])
    with ProxyServer(app) as server:
        yield server.url
