"""The standard model routes on a real server: Cohere v1/v2 (official SDK), TEI and OpenAI shapes
(plain httpx), scores equal to the scorer's own, limits, token, hostile inputs, shared batching."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cohere
import httpx
import numpy as np
import pytest

from bridge.scoring import load_scorer
from tests.proxy.conftest import StartProxy
from tests.support.proxy_server import ProxyServer

QUERY = "cordless drill"
DOCS = [
    "DEWALT 20V MAX cordless drill driver kit",
    "Glacier Bay bathroom faucet in chrome",
    "Milwaukee M18 brushless hammer drill",
    "outdoor patio umbrella 9 ft",
]
TOKEN = "test-token-123"


@pytest.fixture(scope="module")
def nano_scorer(nano_cross_encoder_dir: Path) -> Any:
    return load_scorer(nano_cross_encoder_dir, cache_size=0)


@pytest.fixture
def model_server(
    start_proxy: StartProxy, nano_cross_encoder_dir: Path, bi_encoder_dir: Path
) -> ProxyServer:
    """A model server only (no upstream): nano cross-encoder, MiniLM bi-encoder for embeddings."""
    return start_proxy(
        None,
        rerank={"model": str(nano_cross_encoder_dir), "embedding_model": str(bi_encoder_dir)},
    )


@pytest.fixture
def client(model_server: ProxyServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=model_server.url, timeout=120) as http:
        yield http


def expected_order(scores: Sequence[float]) -> list[int]:
    return sorted(range(len(scores)), key=lambda i: -scores[i])


# -- Cohere, through the official SDK ----------------------------------------------------------


def test_cohere_sdk_v1_reranks_with_the_scorers_scores(
    model_server: ProxyServer, nano_scorer: Any, nano_cross_encoder_dir: Path
) -> None:
    co = cohere.Client(api_key="unused", base_url=model_server.url, timeout=120)
    answer = co.rerank(query=QUERY, documents=DOCS, model=str(nano_cross_encoder_dir))
    scores = nano_scorer.score(QUERY, DOCS)
    assert [r.index for r in answer.results] == expected_order(scores)
    for result in answer.results:
        assert result.relevance_score == pytest.approx(scores[result.index], abs=1e-6)


def test_cohere_sdk_v2_reranks_with_top_n(
    model_server: ProxyServer, nano_scorer: Any, nano_cross_encoder_dir: Path
) -> None:
    co = cohere.ClientV2(api_key="unused", base_url=model_server.url, timeout=120)
    answer = co.rerank(model=str(nano_cross_encoder_dir), query=QUERY, documents=DOCS, top_n=2)
    assert [r.index for r in answer.results] == expected_order(nano_scorer.score(QUERY, DOCS))[:2]


def test_cohere_v1_ranks_objects_by_text_and_returns_them(client: httpx.Client) -> None:
    documents = [{"text": text, "id": i} for i, text in enumerate(DOCS)]
    body = {"query": QUERY, "documents": documents, "return_documents": True}
    results = client.post("/v1/rerank", json=body).json()["results"]
    assert all(r["document"] == documents[r["index"]] for r in results)


def test_cohere_v1_rank_fields_choose_what_is_scored(client: httpx.Client) -> None:
    documents = [{"title": text, "noise": "x"} for text in DOCS]
    body = {"query": QUERY, "documents": documents, "rank_fields": ["title"]}
    by_fields = client.post("/v1/rerank", json=body).json()["results"]
    as_text = [f"title: {text}" for text in DOCS]
    plain = client.post("/v1/rerank", json={"query": QUERY, "documents": as_text}).json()
    assert by_fields == plain["results"]


def test_scores_are_json_floats_even_when_whole(client: httpx.Client) -> None:
    raw = client.post("/v1/rerank", json={"query": QUERY, "documents": DOCS}).text
    scores = [r["relevance_score"] for r in json.loads(raw)["results"]]
    assert all(isinstance(s, float) for s in scores)
    assert '"relevance_score":1,' not in raw


# -- TEI and OpenAI shapes, plain httpx --------------------------------------------------------


def test_tei_rerank_answers_index_score_text_best_first(
    client: httpx.Client, nano_scorer: Any
) -> None:
    body = {"query": QUERY, "texts": DOCS, "return_text": True}
    answer = client.post("/rerank", json=body).json()
    scores = nano_scorer.score(QUERY, DOCS)
    assert [r["index"] for r in answer] == expected_order(scores)
    assert all(r["text"] == DOCS[r["index"]] for r in answer)
    assert all(r["score"] == pytest.approx(scores[r["index"]], abs=1e-6) for r in answer)


def test_tei_raw_scores_are_the_logits(client: httpx.Client, nano_scorer: Any) -> None:
    answer = client.post("/rerank", json={"query": QUERY, "texts": DOCS, "raw_scores": True})
    probabilities = nano_scorer.score(QUERY, DOCS)
    for r in answer.json():
        assert 1 / (1 + np.exp(-r["score"])) == pytest.approx(probabilities[r["index"]], abs=1e-9)


def test_elasticsearch_hugging_face_rerank_body_is_understood(client: httpx.Client) -> None:
    # what HuggingFaceRerankRequestEntity writes; its parser fails on any key but index/score/text
    body = {"documents": DOCS, "query": QUERY, "return_documents": True, "top_n": 3}
    answer = client.post("/rerank", json=body).json()
    assert len(answer) == 3
    assert all(set(r) == {"index", "score", "text"} for r in answer)


def test_tei_embed_and_openai_embeddings_equal_the_scorers_vectors(
    client: httpx.Client, bi_encoder_dir: Path
) -> None:
    texts = ["cordless drill", "bathroom faucet"]
    expected = load_scorer(bi_encoder_dir, cache_size=0).embed(texts)
    tei = np.asarray(client.post("/embed", json={"inputs": texts}).json())
    openai = client.post("/v1/embeddings", json={"input": texts}).json()
    floats = np.asarray([item["embedding"] for item in openai["data"]])
    assert np.allclose(tei, expected, atol=1e-6)
    assert np.allclose(floats, expected, atol=1e-6)


def test_openai_base64_embeddings_decode_to_the_float_ones(client: httpx.Client) -> None:
    body: dict[str, Any] = {"input": "cordless drill"}
    floats = client.post("/v1/embeddings", json=body).json()["data"][0]["embedding"]
    encoded = client.post("/v1/embeddings", json={**body, "encoding_format": "base64"}).json()
    decoded = np.frombuffer(base64.b64decode(encoded["data"][0]["embedding"]), dtype="<f4")
    assert np.allclose(decoded, floats, atol=1e-7)


# -- allowed models, token, limits ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "status", "shape"),
    [
        ("/v1/rerank", {"query": "q", "documents": ["d"], "model": "/etc"}, 404, "message"),
        ("/rerank", {"query": "q", "texts": ["d"], "model": "/etc"}, 422, "error_type"),
        ("/v1/embeddings", {"input": "q", "model": "/etc"}, 404, "error"),
    ],
)
def test_a_model_the_server_does_not_allow_is_refused(
    client: httpx.Client, path: str, body: dict[str, Any], status: int, shape: str
) -> None:
    answer = client.post(path, json=body)
    assert answer.status_code == status
    assert shape in answer.json()


@pytest.fixture
def guarded(start_proxy: StartProxy, nano_cross_encoder_dir: Path) -> ProxyServer:
    return start_proxy(
        None, rerank={"model": str(nano_cross_encoder_dir)}, model_api={"token": TOKEN}
    )


@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Basic {TOKEN}", "Bearer"])
def test_a_missing_or_wrong_bearer_token_is_401(guarded: ProxyServer, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    body = {"query": "q", "documents": ["d"]}
    answer = httpx.post(f"{guarded.url}/v1/rerank", json=body, headers=headers, timeout=60)
    assert answer.status_code == 401
    assert "message" in answer.json()


def test_the_right_bearer_token_is_let_through(guarded: ProxyServer) -> None:
    co = cohere.Client(api_key=TOKEN, base_url=guarded.url, timeout=120)
    assert len(co.rerank(query="q", documents=["a", "b"]).results) == 2


def test_the_proxy_api_key_does_not_block_the_model_routes_token(
    start_proxy: StartProxy, nano_cross_encoder_dir: Path
) -> None:
    server = start_proxy(
        None,
        rerank={"model": str(nano_cross_encoder_dir)},
        auth={"api_key": "proxy-key"},
        model_api={"token": TOKEN},
    )
    headers = {"Authorization": f"Bearer {TOKEN}"}
    body = {"query": "q", "texts": ["d"]}
    assert httpx.post(f"{server.url}/rerank", json=body, headers=headers, timeout=60).is_success


def test_without_a_model_api_token_the_proxy_api_key_is_the_bearer_token(
    start_proxy: StartProxy, nano_cross_encoder_dir: Path
) -> None:
    server = start_proxy(
        None, rerank={"model": str(nano_cross_encoder_dir)}, auth={"api_key": "proxy-key"}
    )
    body = {"query": "q", "texts": ["d"]}
    refused = httpx.post(f"{server.url}/rerank", json=body, timeout=60)
    allowed = httpx.post(
        f"{server.url}/rerank", json=body, headers={"Authorization": "Bearer proxy-key"}, timeout=60
    )
    assert (refused.status_code, allowed.status_code) == (401, 200)


# -- server shape ------------------------------------------------------------------------------


def test_metrics_count_each_model_route_by_its_path(client: httpx.Client) -> None:
    client.post("/rerank", json={"query": QUERY, "texts": DOCS})
    metrics = client.get("/_bridge/metrics").text
    assert 'route="/rerank"' in metrics


def test_without_upstream_the_server_has_model_routes_only(
    client: httpx.Client,
) -> None:
    health = client.get("/_bridge/health")
    assert health.status_code == 200
    assert health.json()["upstream"] == {
        "configured": False,
        "reachable": True,
    }
    assert client.post("/_search", json={}).status_code == 404


def test_model_routes_sit_beside_the_proxy_routes(
    start_proxy: StartProxy, es_upstream: str, nano_cross_encoder_dir: Path
) -> None:
    server = start_proxy(es_upstream, rerank={"model": str(nano_cross_encoder_dir)})
    with httpx.Client(base_url=server.url, timeout=60) as http:
        assert http.get("/_cluster/health").is_success
        assert http.post("/v1/rerank", json={"query": "q", "documents": ["d"]}).is_success


def test_model_routes_and_searches_use_one_batcher_per_model(
    es_upstream: str, es_products_index: str, nano_cross_encoder_dir: Path
) -> None:
    from bridge.proxy.app import create_app
    from bridge.proxy.settings import settings_from_mapping

    rerank = {"model": str(nano_cross_encoder_dir), "max_length": 128, "fields": ["title"]}
    app = create_app(settings_from_mapping({"upstream": es_upstream, "rerank": rerank}))
    pool = app.state.proxy.models
    asked: list[tuple[str, int | None]] = []
    original = pool.batcher

    async def recording(model: str, max_length: int | None = None) -> Any:
        asked.append((model, max_length))
        return await original(model, max_length)

    with ProxyServer(app) as server, httpx.Client(base_url=server.url, timeout=120) as http:
        pool.batcher = recording  # after start-up: only what the two routes ask for
        search = {"query": {"match": {"title": "drill"}}, "rerank": {}}
        assert http.post(f"/{es_products_index}/_search", json=search).is_success
        assert http.post("/v1/rerank", json={"query": "q", "documents": ["d"]}).is_success
    assert set(asked) == {(str(nano_cross_encoder_dir), 128)}


def test_concurrent_model_calls_share_runs_of_the_proxys_micro_batcher(
    start_proxy: StartProxy, nano_cross_encoder_dir: Path
) -> None:
    runs: list[int] = []
    lock = threading.Lock()

    def loader(model: str, max_length: int | None) -> Any:
        scorer = load_scorer(model, cache_size=0)

        class Counting:
            kind = scorer.kind
            max_length = scorer.max_length

            def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
                with lock:
                    runs.append(len(pairs))
                return list(scorer.score_pairs(pairs))

        return Counting()

    server = start_proxy(
        None,
        loader=loader,
        rerank={"model": str(nano_cross_encoder_dir)},
        batching={"max_wait_ms": 200},
    )
    body = {"query": QUERY, "documents": DOCS}
    httpx.post(f"{server.url}/v1/rerank", json=body, timeout=60)  # load the model first
    runs.clear()
    with ThreadPoolExecutor(8) as pool:
        paths = ["/v1/rerank", "/v2/rerank", "/rerank", "/v1/rerank"] * 2
        bodies = [
            {**body, "model": str(nano_cross_encoder_dir)} if p == "/v2/rerank" else body
            for p in paths
        ]
        bodies = [
            {"query": QUERY, "texts": DOCS} if p == "/rerank" else b
            for p, b in zip(paths, bodies, strict=True)
        ]
        answers = list(
            pool.map(
                lambda pb: httpx.post(f"{server.url}{pb[0]}", json=pb[1], timeout=60),
                zip(paths, bodies, strict=True),
            )
        )
    assert all(a.status_code == 200 for a in answers)
    assert sum(runs) == 8 * len(DOCS)
    assert len(runs) < 8
