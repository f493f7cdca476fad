"""Acceptance on real engines: mappings/ index, Home Depot bulk load, BM25, rescore, kNN.

Expected hits are derived from the loaded products (titles tokenised like the `standard`
analyzer), never typed-in scores.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.shared_data, pytest.mark.slow]

ENGINES = ["elasticsearch", "opensearch"]
_TOKEN = re.compile(r"[a-z0-9]+")


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def has_phrase(text: str, phrase: str) -> bool:
    words, wanted = tokens(text), tokens(phrase)
    return any(words[i : i + len(wanted)] == wanted for i in range(len(words)))


def client_for(request: pytest.FixtureRequest, engine: str) -> Any:
    return request.getfixturevalue("es_client" if engine == "elasticsearch" else "os_client")


def index_for(request: pytest.FixtureRequest, engine: str) -> str:
    name = "es_products_index" if engine == "elasticsearch" else "os_products_index"
    index: str = request.getfixturevalue(name)
    return index


def search(client: Any, index: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    response = client.search(index=index, body=body)
    hits: list[dict[str, Any]] = response["hits"]["hits"]
    return hits


@pytest.mark.parametrize("engine", ENGINES)
def test_bulk_load_indexes_every_product(
    request: pytest.FixtureRequest, engine: str, homedepot_products: list[dict[str, Any]]
) -> None:
    client = client_for(request, engine)
    index = index_for(request, engine)
    assert client.count(index=index)["count"] == len(homedepot_products)


@pytest.mark.parametrize("engine", ENGINES)
def test_index_uses_the_mapping_file(request: pytest.FixtureRequest, engine: str) -> None:
    client = client_for(request, engine)
    index = index_for(request, engine)
    mapping = client.indices.get_mapping(index=index)[index]["mappings"]["properties"]
    assert mapping["title"]["fields"]["keyword"]["type"] == "keyword"


@pytest.mark.parametrize("engine", ENGINES)
def test_match_query_ranks_titles_with_all_terms_first(
    request: pytest.FixtureRequest, engine: str, homedepot_products: list[dict[str, Any]]
) -> None:
    query = "cordless drill"
    with_all_terms = {
        doc["product_uid"]
        for doc in homedepot_products
        if set(tokens(query)) <= set(tokens(doc["title"]))
    }
    assert len(with_all_terms) >= 5, "the subset must hold enough matching products"
    hits = search(
        client_for(request, engine),
        index_for(request, engine),
        {"query": {"match": {"title": query}}, "size": 5},
    )
    assert {hit["_id"] for hit in hits} <= with_all_terms


@pytest.mark.parametrize("engine", ENGINES)
def test_rescore_moves_phrase_matches_to_the_top(
    request: pytest.FixtureRequest, engine: str
) -> None:
    client, index = client_for(request, engine), index_for(request, engine)
    phrase, window = "paper holder", 50
    base = {"query": {"match": {"title": phrase}}, "size": window}
    window_hits = search(client, index, base)
    expected = {h["_id"] for h in window_hits if has_phrase(h["_source"]["title"], phrase)}
    assert expected, "the query window must contain phrase matches"
    assert [h["_id"] for h in window_hits[: len(expected)]] != expected, "nothing to reorder"
    rescored = search(
        client,
        index,
        {
            **base,
            "rescore": {
                "window_size": window,
                "query": {
                    "rescore_query": {"match_phrase": {"title": phrase}},
                    "query_weight": 1.0,
                    "rescore_query_weight": 100.0,
                },
            },
        },
    )
    assert {h["_id"] for h in rescored[: len(expected)]} == expected


@pytest.fixture(scope="module")
def query_vector(request: pytest.FixtureRequest) -> np.ndarray:
    from bridge.scoring import load_scorer

    scorer = load_scorer(request.getfixturevalue("bi_encoder_dir"))
    vector: np.ndarray = np.asarray(scorer.embed(["cordless drill"])[0], dtype=np.float32)
    return vector


@pytest.mark.parametrize("engine", ENGINES)
def test_knn_query_finds_the_exact_nearest_products(
    request: pytest.FixtureRequest,
    engine: str,
    query_vector: np.ndarray,
    homedepot_products: list[dict[str, Any]],
    homedepot_product_vectors: np.ndarray,
) -> None:
    index_fixture = (
        "es_vector_products_index" if engine == "elasticsearch" else "os_vector_products_index"
    )
    index = request.getfixturevalue(index_fixture)
    k = 10
    exact = np.argsort(-(homedepot_product_vectors @ query_vector))[:k]
    exact_ids = {homedepot_products[i]["product_uid"] for i in exact}
    vector = query_vector.tolist()
    if engine == "elasticsearch":
        body: dict[str, Any] = {
            "knn": {"field": "embedding", "query_vector": vector, "k": k, "num_candidates": 200},
            "size": k,
        }
    else:
        body = {"query": {"knn": {"embedding": {"vector": vector, "k": k}}}, "size": k}
    hits = search(client_for(request, engine), index, body)
    # HNSW is approximate: ask for near-complete recall of the brute-force neighbours.
    assert len({h["_id"] for h in hits} & exact_ids) >= k - 1


async def test_async_es_client_searches_the_products_index(
    async_es_client: Any, es_products_index: str
) -> None:
    response = await async_es_client.count(index=es_products_index)
    assert response["count"] > 0


async def test_async_os_client_searches_the_products_index(
    async_os_client: Any, os_products_index: str
) -> None:
    response = await async_os_client.count(index=os_products_index)
    assert response["count"] > 0
