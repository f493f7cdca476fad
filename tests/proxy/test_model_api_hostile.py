"""Hostile inputs on the model routes: each gets a 4xx in that API's own error shape, and the
server stays healthy (it still answers a good call afterwards)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.proxy_server import ProxyServer

MAX_DOCS = 1000


def cohere_shape(body: Any) -> bool:
    return isinstance(body, dict) and isinstance(body.get("message"), str) and len(body) == 1


def tei_shape(body: Any) -> bool:
    return isinstance(body, dict) and set(body) == {"error", "error_type"}


def openai_shape(body: Any) -> bool:
    error = body.get("error") if isinstance(body, dict) else None
    return isinstance(error, dict) and {"message", "type", "param", "code"} <= set(error)


# path -> (a good body, the field holding the documents, the error shape)
ROUTES: dict[str, tuple[dict[str, Any], str, Callable[[Any], bool]]] = {
    "/v1/rerank": ({"query": "drill", "documents": ["a drill"]}, "documents", cohere_shape),
    "/v2/rerank": (
        {"query": "drill", "documents": ["a drill"], "model": "MODEL"},
        "documents",
        cohere_shape,
    ),
    "/rerank": ({"query": "drill", "texts": ["a drill"]}, "texts", tei_shape),
    "/embed": ({"inputs": ["a drill"]}, "inputs", tei_shape),
    "/v1/embeddings": ({"input": ["a drill"]}, "input", openai_shape),
}


@pytest.fixture(scope="module")
def server(nano_cross_encoder_dir: Path, bi_encoder_dir: Path) -> Iterator[ProxyServer]:
    from bridge.proxy.app import create_app
    from bridge.proxy.settings import settings_from_mapping

    settings = settings_from_mapping(
        {
            "rerank": {
                "model": str(nano_cross_encoder_dir),
                "embedding_model": str(bi_encoder_dir),
            },
            "limits": {"max_body_bytes": 2_000_000},
            "model_api": {"token": "good", "max_documents": MAX_DOCS, "max_text_chars": 50_000},
        }
    )
    with ProxyServer(create_app(settings)) as running:
        yield running


@pytest.fixture(scope="module")
def http(server: ProxyServer, nano_cross_encoder_dir: Path) -> Iterator[httpx.Client]:
    headers = {"Authorization": "Bearer good"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=120) as client:
        yield client


def good_body(path: str, model: str) -> dict[str, Any]:
    body = dict(ROUTES[path][0])
    if body.get("model") == "MODEL":
        body["model"] = model
    return body


def hostile_bodies(path: str, model: str) -> dict[str, Any]:
    body = good_body(path, model)
    field = ROUTES[path][1]
    docs_only = {k: v for k, v in body.items() if k != "query"}
    return {
        "bad json": b'{"query": "drill", "documents": [',
        "not an object": b"[1, 2, 3]",
        "empty body": b"",
        "nested too deep": b"[" * 100_000,
        "missing query": docs_only if "query" in body else {k: None for k in body},
        "10,000 documents": {**body, field: ["a drill"] * 10_000},
        "non-string documents": {**body, field: [1, None, {"x": 1}]},
        "documents not a list": {**body, field: 42},
        "no documents": {**body, field: []},
        "huge string": {**body, field: ["d" * 60_000]},
        "body over the limit": {**body, field: ["d" * 40_000] * 60},
        "query is a number": {**body, "query": 3} if "query" in body else {field: 3},
        "top_n negative": {**body, "top_n": -1},
        "flag not a bool": {**body, "return_documents": "yes", "normalize": "no"},
    }


CASES = [
    (path, name)
    for path in ROUTES
    for name in hostile_bodies(path, "m")
    if not (
        # fields an API does not have are ignored, as the real services ignore unknown keys
        (name == "top_n negative" and path in ("/embed", "/v1/embeddings"))
        or (name == "flag not a bool" and path == "/v1/embeddings")
    )
]


@pytest.mark.parametrize(("path", "case"), CASES)
def test_hostile_input_gets_a_4xx_in_the_apis_shape(
    http: httpx.Client, nano_cross_encoder_dir: Path, path: str, case: str
) -> None:
    payload = hostile_bodies(path, str(nano_cross_encoder_dir))[case]
    content = payload if isinstance(payload, bytes) else None
    answer = http.post(path, content=content, json=None if content is not None else payload)
    assert 400 <= answer.status_code < 500, answer.text[:300]
    assert ROUTES[path][2](answer.json()), answer.text[:300]


@pytest.mark.parametrize("path", list(ROUTES))
def test_a_wrong_token_gets_401_in_the_apis_shape(
    server: ProxyServer, nano_cross_encoder_dir: Path, path: str
) -> None:
    body = good_body(path, str(nano_cross_encoder_dir))
    headers = {"Authorization": "Bearer bad"}
    answer = httpx.post(f"{server.url}{path}", json=body, headers=headers, timeout=60)
    assert answer.status_code == 401
    assert ROUTES[path][2](answer.json())


def test_the_server_stays_healthy_after_the_hostile_calls(
    http: httpx.Client, nano_cross_encoder_dir: Path
) -> None:
    for path in ROUTES:
        for case, payload in hostile_bodies(path, str(nano_cross_encoder_dir)).items():
            content = payload if isinstance(payload, bytes) else None
            http.post(path, content=content, json=None if content is not None else payload)
            del case
    assert http.get("/_bridge/health").status_code == 200
    for path in ROUTES:
        assert http.post(path, json=good_body(path, str(nano_cross_encoder_dir))).status_code == 200
