"""No client input makes the proxy answer 500: junk paths, params and bodies (hypothesis).

The upstream is a dead port, so everything the proxy forwards ends as 502; whatever it refuses
itself must be a 4xx in the Elasticsearch error shape.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.proxy.app import create_app
from bridge.proxy.settings import settings_from_mapping
from tests.support.proxy_server import ProxyServer

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=12,
)
rerank_sections = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {},
        optional={
            "window_size": json_values,
            "model": json_values,
            "fields": json_values,
            "template": json_values,
            "fusion": json_values,
            "timeout_ms": json_values,
            "on_failure": json_values,
            "explain": json_values,
            "max_length": json_values,
            "query": json_values,
        },
    ),
)
search_bodies = st.fixed_dictionaries(
    {},
    optional={
        "query": st.one_of(json_values, st.just({"match": {"title": "drill"}})),
        "rerank": rerank_sections,
        "from": json_values,
        "size": json_values,
        "sort": json_values,
        "_source": json_values,
        "knn": json_values,
    },
)
bodies = st.one_of(
    st.binary(max_size=200),
    search_bodies.map(lambda body: json.dumps(body).encode()),
    st.lists(search_bodies, max_size=4).map(
        lambda items: b"\n".join(json.dumps(item).encode() for item in items) + b"\n"
    ),
)
paths = st.one_of(
    st.sampled_from(["/_search", "/products/_search", "/_msearch", "/a,b/_msearch", "/"]),
    st.text(
        alphabet=st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="#?/%"),
        max_size=20,
    ).map(lambda name: f"/{name}/_search"),
)
params = st.dictionaries(
    st.sampled_from(["rerank", "size", "from", "scroll", "q", "filter_path", "sort", "x"]),
    st.text(max_size=6),
    max_size=3,
)


@pytest.fixture(scope="module")
def proxy_url() -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    settings = settings_from_mapping(
        {"upstream": dead, "limits": {"max_body_bytes": 150}, "rerank": {"model": "unloadable"}}
    )
    with ProxyServer(create_app(settings)) as server:
        yield server.url


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    method=st.sampled_from(["GET", "POST", "PUT"]),
    path=paths,
    query=params,
    body=bodies,
    gzip_it=st.booleans(),
)
def test_junk_never_gets_a_500(
    proxy_url: str, method: str, path: str, query: dict[str, str], body: bytes, gzip_it: bool
) -> None:
    headers = {"Content-Type": "application/json"}
    if gzip_it:
        import gzip

        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    response = httpx.request(
        method, proxy_url + path, params=query, content=body, headers=headers, timeout=10
    )
    assert response.status_code in (400, 401, 404, 405, 413, 502, 504), response.text
    payload: Any = response.json()
    assert payload["error"]["type"]
