"""kNN `query_text` embedded by the proxy, and reranking quality with the trained cross-encoder."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bridge.scoring import load_scorer
from tests.proxy.conftest import StartProxy

pytestmark = pytest.mark.integration

TITLES = [
    "cordless drill 18v lithium ion",
    "garden hose 50 ft heavy duty",
    "interior wall paint eggshell white",
    "hammer drill with battery and charger",
    "stainless steel kitchen faucet",
    "pruning shears for roses",
]


@pytest.fixture(scope="module")
def vector_index(es_upstream: str, bi_encoder_dir: Path) -> Iterator[str]:
    index = f"proxy-knn-{uuid.uuid4().hex[:8]}"
    vectors = load_scorer(bi_encoder_dir).embed(TITLES)
    mapping = {
        "mappings": {
            "properties": {
                "title": {"type": "text"},
                "vec": {
                    "type": "dense_vector",
                    "dims": int(vectors.shape[1]),
                    "similarity": "cosine",
                },
            }
        }
    }
    assert httpx.put(f"{es_upstream}/{index}", json=mapping).status_code == 200
    lines = []
    for i, (title, vector) in enumerate(zip(TITLES, vectors, strict=True)):
        lines += [
            json.dumps({"index": {"_id": str(i)}}),
            json.dumps({"title": title, "vec": vector.tolist()}),
        ]
    httpx.post(
        f"{es_upstream}/{index}/_bulk?refresh=true",
        content="\n".join(lines) + "\n",
        headers={"Content-Type": "application/x-ndjson"},
    ).raise_for_status()
    yield index
    httpx.delete(f"{es_upstream}/{index}")


def test_knn_query_text_is_embedded_and_reranked(
    start_proxy: StartProxy,
    es_upstream: str,
    vector_index: str,
    bi_encoder_dir: Path,
    nano_cross_encoder_dir: Path,
) -> None:
    proxy = start_proxy(
        es_upstream,
        rerank={
            "model": str(nano_cross_encoder_dir),
            "embedding_model": str(bi_encoder_dir),
            "fields": ["title"],
        },
    )
    body = {
        "knn": {"field": "vec", "query_text": "garden watering hose", "k": 3, "num_candidates": 6},
        "rerank": {"window_size": 3},
    }
    response = httpx.post(f"{proxy.url}/{vector_index}/_search", json=body, timeout=30)
    hits = response.json()["hits"]["hits"]
    assert (response.headers["x-rerank-status"], "1" in [h["_id"] for h in hits]) == (
        "reranked",
        True,
    )


@pytest.mark.shared_data
def test_trained_model_lifts_the_relevant_product(
    start_proxy: StartProxy, es_upstream: str, homedepot_cross_encoder_dir: Path
) -> None:
    # BM25 favours short titles repeating "drill"; the trained model knows which one is a drill
    titles = [
        "drill drill bit organizer case",
        "DEWALT 20-Volt MAX Lithium-Ion Cordless Compact Drill/Driver Kit",
        "drill bit set storage box",
    ]
    index = f"proxy-quality-{uuid.uuid4().hex[:8]}"
    lines = []
    for i, title in enumerate(titles):
        lines += [json.dumps({"index": {"_id": str(i)}}), json.dumps({"title": title})]
    httpx.post(
        f"{es_upstream}/{index}/_bulk?refresh=true",
        content="\n".join(lines) + "\n",
        headers={"Content-Type": "application/x-ndjson"},
    ).raise_for_status()
    try:
        proxy = start_proxy(
            es_upstream, rerank={"model": str(homedepot_cross_encoder_dir), "fields": ["title"]}
        )
        query = {"query": {"match": {"title": "drill"}}}
        engine = httpx.post(f"{es_upstream}/{index}/_search", json=query).json()
        reranked = httpx.post(
            f"{proxy.url}/{index}/_search", json={**query, "rerank": {}}, timeout=60
        ).json()
    finally:
        httpx.delete(f"{es_upstream}/{index}")
    engine_order = [h["_id"] for h in engine["hits"]["hits"]]
    reranked_order = [h["_id"] for h in reranked["hits"]["hits"]]
    assert (engine_order[0] != "1", reranked_order[0]) == (True, "1")


def test_knn_with_a_cross_encoder_as_embedder_is_400(
    start_proxy: StartProxy, es_upstream: str, vector_index: str, nano_cross_encoder_dir: Path
) -> None:
    proxy = start_proxy(es_upstream, rerank={"model": str(nano_cross_encoder_dir)})
    body = {
        "knn": {"field": "vec", "query_text": "hose", "k": 3, "num_candidates": 6},
        "rerank": {"embedding_model": str(nano_cross_encoder_dir)},
    }
    response = httpx.post(f"{proxy.url}/{vector_index}/_search", json=body, timeout=30)
    assert (response.status_code, "rerank.embedding_model" in response.text) == (400, True)
