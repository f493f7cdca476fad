"""What the engines themselves send, against a real bridge server: Elasticsearch's `custom` and
`hugging_face` rerank services (rebuilt from Elasticsearch's source: tests/support/es_inference.py)
and the endpoint `connect elasticsearch` creates; OpenSearch's is tested live in
tests/integration/test_opensearch_ml.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge.connect import ElasticsearchPlan
from bridge.scoring import load_scorer
from tests.proxy.conftest import StartProxy
from tests.support.es_inference import (
    custom_rerank_request,
    hugging_face_rerank_request,
    parse_custom_rerank,
    parse_hugging_face_rerank,
)
from tests.support.proxy_server import ProxyServer

QUERY = 'cordless "drill"'  # a quote, to show the query is JSON-encoded, not pasted
DOCS = ["DEWALT 20V cordless drill", "bathroom faucet", 'Milwaukee 1/2" hammer drill']
TOKEN = "s3cret"


@pytest.fixture
def server(start_proxy: StartProxy, nano_cross_encoder_dir: Path) -> ProxyServer:
    return start_proxy(
        None, rerank={"model": str(nano_cross_encoder_dir)}, model_api={"token": TOKEN}
    )


def expected(model: Path) -> list[float]:
    return list(load_scorer(model, cache_size=0).score(QUERY, DOCS))


def test_the_custom_endpoint_connect_creates_reranks_through_the_bridge(
    server: ProxyServer, nano_cross_encoder_dir: Path
) -> None:
    plan = ElasticsearchPlan(server.url, str(nano_cross_encoder_dir), token=TOKEN)
    endpoint = plan.endpoint()
    with httpx.Client(timeout=60) as client:
        answer = client.send(custom_rerank_request(endpoint, QUERY, DOCS))
    assert answer.status_code == 200, answer.text
    ranked = parse_custom_rerank(endpoint, answer.json())
    scores = expected(nano_cross_encoder_dir)
    assert [i for i, _ in ranked] == sorted(range(len(DOCS)), key=lambda i: -scores[i])
    assert [s for _, s in ranked] == pytest.approx(sorted(scores, reverse=True), abs=1e-6)


def test_the_specs_cohere_v2_custom_example_works_against_the_bridge(
    server: ProxyServer, nano_cross_encoder_dir: Path
) -> None:
    # elasticsearch-specification, inference/put_custom PutCustomRequestExample2 (Cohere v2),
    # with the URL and model pointed at the bridge
    model = str(nano_cross_encoder_dir)
    endpoint: dict[str, Any] = {
        "service": "custom",
        "service_settings": {
            "secret_parameters": {"api_key": TOKEN},
            "url": f"{server.url}/v2/rerank",
            "headers": {"Authorization": "bearer ${api_key}", "Content-Type": "application/json"},
            "request": '{"documents": ${input}, "query": ${query}, "model": "' + model + '"}',
            "response": {
                "json_parser": {
                    "reranked_index": "$.results[*].index",
                    "relevance_score": "$.results[*].relevance_score",
                }
            },
        },
    }
    with httpx.Client(timeout=60) as client:
        answer = client.send(custom_rerank_request(endpoint, QUERY, DOCS, top_n=2))
    assert answer.status_code == 200, answer.text
    assert len(parse_custom_rerank(endpoint, answer.json())) == len(DOCS)


def test_top_n_in_the_template_limits_the_answer(
    server: ProxyServer, nano_cross_encoder_dir: Path
) -> None:
    endpoint = ElasticsearchPlan(server.url, str(nano_cross_encoder_dir), token=TOKEN).endpoint()
    settings = endpoint["service_settings"]
    settings["request"] = settings["request"][:-1] + ', "top_n": ${top_n}}'
    with httpx.Client(timeout=60) as client:
        answer = client.send(custom_rerank_request(endpoint, QUERY, DOCS, top_n=2))
    assert len(parse_custom_rerank(endpoint, answer.json())) == 2


def test_the_hugging_face_rerank_service_works_against_the_tei_route(
    server: ProxyServer, nano_cross_encoder_dir: Path
) -> None:
    request = hugging_face_rerank_request(
        f"{server.url}/rerank", TOKEN, QUERY, DOCS, top_n=2, return_documents=True
    )
    with httpx.Client(timeout=60) as client:
        answer = client.send(request)
    assert answer.status_code == 200, answer.text
    ranked = parse_hugging_face_rerank(answer.json())
    scores = expected(nano_cross_encoder_dir)
    best = sorted(range(len(DOCS)), key=lambda i: -scores[i])[:2]
    assert [(i, text) for i, _, text in ranked] == [(i, DOCS[i]) for i in best]


def test_an_engine_with_the_wrong_key_gets_401(
    server: ProxyServer, nano_cross_encoder_dir: Path
) -> None:
    endpoint = ElasticsearchPlan(server.url, str(nano_cross_encoder_dir), token="wrong").endpoint()
    with httpx.Client(timeout=60) as client:
        assert client.send(custom_rerank_request(endpoint, QUERY, DOCS)).status_code == 401
