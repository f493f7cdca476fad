"""The stdlib engine calls `embed` and `connect` make (bridge.connect.engine_http) against the real
nodes: which engine a URL is (``engine_kind``, also what eval's ``connect`` asks) and the one-line
error a non-2xx answer becomes (``checked`` / ``EngineHttp.ok``)."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import pytest

from bridge.connect.engine_http import EngineHttp, engine_kind
from bridge.errors import UpstreamError
from bridge.eval.engine import connect

pytestmark = pytest.mark.integration

ENGINES = ["elasticsearch", "opensearch"]


def url_of(request: pytest.FixtureRequest, engine: str) -> str:
    url: str = request.getfixturevalue("es_url" if engine == "elasticsearch" else "os_url")
    return url


def with_credentials(url: str) -> str:
    parts = urlsplit(url)
    return parts._replace(netloc=f"elastic:secret@{parts.netloc}").geturl()


@pytest.mark.parametrize("engine", ENGINES)
def test_engine_kind_names_each_real_node(request: pytest.FixtureRequest, engine: str) -> None:
    assert engine_kind(EngineHttp(url_of(request, engine))) == engine


@pytest.mark.parametrize("engine", ENGINES)
def test_eval_connect_detects_the_engine_behind_a_url_with_credentials(
    request: pytest.FixtureRequest, engine: str
) -> None:
    # the dev nodes run without security and ignore the Basic header the credentials become;
    # what is tested is that the URL's user:password@ does not end up in the host name
    _, kind = connect(with_credentials(url_of(request, engine)))
    assert kind == engine


def test_engine_kind_of_a_closed_port_is_an_upstream_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(UpstreamError, match=f"cannot reach an engine at http://127.0.0.1:{port}"):
        engine_kind(EngineHttp(f"http://127.0.0.1:{port}", timeout_s=5.0))


@pytest.mark.parametrize("engine", ENGINES)
def test_a_refused_call_is_one_line_naming_the_engines_reason(
    request: pytest.FixtureRequest, engine: str
) -> None:
    http = EngineHttp(url_of(request, engine))
    with pytest.raises(UpstreamError) as caught:
        http.ok("GET", "/no-such-index-review/_count")
    message = str(caught.value)
    assert message.startswith("GET /no-such-index-review/_count: the engine answered 404: ")
    assert "index_not_found_exception" in message
    assert "\n" not in message
