"""Proxy test helpers: start the proxy as a real uvicorn server, and tiny faulty upstreams.

The fakes exist only to inject faults the real engines cannot produce on demand (a dead port, an
answer slower than the timeout); behaviour against engines is tested with the real nodes.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bridge.proxy.app import create_app
from bridge.proxy.model_pool import Loader
from bridge.proxy.settings import settings_from_mapping
from tests.support.proxy_server import ProxyServer

StartProxy = Callable[..., ProxyServer]


@pytest.fixture
def start_proxy() -> Iterator[StartProxy]:
    """``start_proxy(upstream, **settings_sections)`` -> a running ProxyServer, stopped after."""
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


def _engine(request: pytest.FixtureRequest, env: str, fixture: str) -> str:
    url = os.environ.get(env)
    if url:
        return url.rstrip("/")
    try:
        return str(request.getfixturevalue(fixture))
    except pytest.FixtureLookupError:
        pytest.skip(f"no {fixture} fixture and {env} is not set")


@pytest.fixture(scope="session")
def es_upstream(request: pytest.FixtureRequest) -> str:
    """A real Elasticsearch node: RERANK_BRIDGE_TEST_ES_URL, else the `es_url` engine fixture."""
    return _engine(request, "RERANK_BRIDGE_TEST_ES_URL", "es_url")


@pytest.fixture(scope="session")
def os_upstream(request: pytest.FixtureRequest) -> str:
    """A real OpenSearch node: RERANK_BRIDGE_TEST_OS_URL, else the `os_url` engine fixture."""
    return _engine(request, "RERANK_BRIDGE_TEST_OS_URL", "os_url")
