"""RerankingRetriever against a real Elasticsearch node (Home Depot products, trained model)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langchain_core.retrievers import BaseRetriever

from bridge import RerankRequest
from bridge.integrations.langchain import RerankingRetriever
from bridge.ranker import Ranker

pytestmark = [pytest.mark.integration, pytest.mark.shared_data]

QUESTION = "cordless drill"


@pytest.fixture
def rerank(homedepot_cross_encoder_dir: Path) -> dict[str, Any]:
    return {"model": str(homedepot_cross_encoder_dir), "fields": ["title"], "window_size": 20}


@pytest.fixture
def retriever(es_client: Any, es_products_index: str, rerank: dict[str, Any]) -> RerankingRetriever:
    return RerankingRetriever(
        client=es_client, index=es_products_index, fields=["title"], k=5, rerank=rerank
    )


def _model_scores(model_dir: Path, titles: list[str]) -> list[float]:
    ranked = Ranker(model_name=str(model_dir)).rerank(
        RerankRequest(query=QUESTION, passages=[{"id": i, "text": t} for i, t in enumerate(titles)])
    )
    by_id = {p["id"]: p["score"] for p in ranked}
    return [by_id[i] for i in range(len(titles))]


def test_is_a_langchain_retriever(retriever: RerankingRetriever) -> None:
    assert isinstance(retriever, BaseRetriever)


def test_returns_k_documents(retriever: RerankingRetriever) -> None:
    assert len(retriever.invoke(QUESTION)) == 5


def test_documents_are_reranked_by_the_model(retriever: RerankingRetriever) -> None:
    docs = retriever.invoke(QUESTION)
    assert [d.metadata["rerank_status"] for d in docs] == ["reranked"] * 5


def test_model_scores_are_the_models_scores_on_the_titles(
    retriever: RerankingRetriever, homedepot_cross_encoder_dir: Path
) -> None:
    docs = retriever.invoke(QUESTION)
    expected = _model_scores(homedepot_cross_encoder_dir, [d.metadata["title"] for d in docs])
    assert [d.metadata["model_score"] for d in docs] == pytest.approx(expected, abs=1e-5)


def test_documents_come_best_model_score_first(retriever: RerankingRetriever) -> None:
    scores = [d.metadata["model_score"] for d in retriever.invoke(QUESTION)]
    assert scores == sorted(scores, reverse=True)


def test_top_documents_are_the_best_of_the_bm25_window(
    es_client: Any, es_products_index: str, rerank: dict[str, Any]
) -> None:
    # The engine's own top 20, reranked in full, must begin with the retriever's top 5.
    wide = RerankingRetriever(
        client=es_client, index=es_products_index, fields=["title"], k=20, rerank=rerank
    )
    narrow = RerankingRetriever(
        client=es_client, index=es_products_index, fields=["title"], k=5, rerank=rerank
    )
    assert [d.metadata["id"] for d in narrow.invoke(QUESTION)] == [
        d.metadata["id"] for d in wide.invoke(QUESTION)[:5]
    ]


def test_metadata_carries_ids_scores_and_source_fields(
    retriever: RerankingRetriever, es_products_index: str
) -> None:
    doc = retriever.invoke(QUESTION)[0]
    keys = {"id", "index", "score", "model_score", "engine_score", "engine_rank", "product_uid"}
    assert (keys | {"title"}) <= set(doc.metadata)


def test_metadata_index_names_the_index(
    retriever: RerankingRetriever, es_products_index: str
) -> None:
    assert {d.metadata["index"] for d in retriever.invoke(QUESTION)} == {es_products_index}


def test_page_content_is_the_text_the_model_read(retriever: RerankingRetriever) -> None:
    docs = retriever.invoke(QUESTION)
    assert [d.page_content for d in docs] == [d.metadata["title"] for d in docs]


def test_content_field_sets_page_content(
    es_client: Any, es_products_index: str, rerank: dict[str, Any]
) -> None:
    retriever = RerankingRetriever(
        client=es_client,
        index=es_products_index,
        fields=["title"],
        rerank=rerank,
        content_field="product_uid",
    )
    docs = retriever.invoke(QUESTION)
    assert [d.page_content for d in docs] == [d.metadata["product_uid"] for d in docs]


def test_document_id_is_the_engine_id(retriever: RerankingRetriever) -> None:
    docs = retriever.invoke(QUESTION)
    assert [d.id for d in docs] == [d.metadata["id"] for d in docs]


def test_query_builder_replaces_the_multi_match(
    es_client: Any, es_products_index: str, rerank: dict[str, Any]
) -> None:
    retriever = RerankingRetriever(
        client=es_client,
        index=es_products_index,
        query_builder=lambda q: {"match_phrase": {"title": q}},
        k=20,
        rerank=rerank,
    )
    titles = [d.metadata["title"].lower() for d in retriever.invoke(QUESTION)]
    assert titles
    assert all(QUESTION in t for t in titles), titles


def test_knn_retriever_embeds_the_question(
    es_client: Any, es_vector_products_index: str, rerank: dict[str, Any], bi_encoder_dir: Path
) -> None:
    retriever = RerankingRetriever(
        client=es_client,
        index=es_vector_products_index,
        knn_field="embedding",
        k=5,
        rerank={**rerank, "embedding_model": str(bi_encoder_dir)},
    )
    docs = retriever.invoke(QUESTION)
    assert "drill" in docs[0].metadata["title"].lower(), [d.metadata["title"] for d in docs]


def test_knn_vectors_stay_out_of_the_metadata(
    es_client: Any, es_vector_products_index: str, rerank: dict[str, Any], bi_encoder_dir: Path
) -> None:
    retriever = RerankingRetriever(
        client=es_client,
        index=es_vector_products_index,
        fields=["title"],
        knn_field="embedding",
        k=3,
        rerank={**rerank, "embedding_model": str(bi_encoder_dir)},
    )
    assert all("embedding" not in d.metadata for d in retriever.invoke(QUESTION))


def test_a_failing_model_falls_back_to_the_engine_order(
    es_client: Any, es_products_index: str, tmp_path: Path
) -> None:
    retriever = RerankingRetriever(
        client=es_client,
        index=es_products_index,
        fields=["title"],
        k=5,
        rerank={"model": str(tmp_path / "no-such-model"), "fields": ["title"]},
    )
    docs = retriever.invoke(QUESTION)
    assert [(d.metadata["rerank_status"], d.metadata["engine_rank"]) for d in docs] == [
        ("engine_order", rank) for rank in range(1, 6)
    ]


async def test_async_client_gives_the_sync_results(
    es_client: Any, async_es_client: Any, es_products_index: str, rerank: dict[str, Any]
) -> None:
    retriever = RerankingRetriever(
        client=es_client,
        async_client=async_es_client,
        index=es_products_index,
        fields=["title"],
        k=5,
        rerank=rerank,
    )
    expected = [d.metadata["id"] for d in retriever.invoke(QUESTION)]
    assert [d.metadata["id"] for d in await retriever.ainvoke(QUESTION)] == expected


async def test_async_without_async_client_uses_the_sync_client(
    retriever: RerankingRetriever,
) -> None:
    expected = [d.metadata["id"] for d in retriever.invoke(QUESTION)]
    assert [d.metadata["id"] for d in await retriever.ainvoke(QUESTION)] == expected


def test_opensearch_client_works_the_same(
    os_client: Any, os_products_index: str, rerank: dict[str, Any]
) -> None:
    retriever = RerankingRetriever(
        client=os_client, index=os_products_index, fields=["title"], k=5, rerank=rerank
    )
    docs = retriever.invoke(QUESTION)
    assert [d.metadata["rerank_status"] for d in docs] == ["reranked"] * 5


async def test_async_hybrid_search_gives_the_sync_results(
    es_client: Any,
    async_es_client: Any,
    es_vector_products_index: str,
    rerank: dict[str, Any],
    bi_encoder_dir: Path,
) -> None:
    retriever = RerankingRetriever(
        client=es_client,
        async_client=async_es_client,
        index=es_vector_products_index,
        fields=["title"],
        knn_field="embedding",
        k=5,
        rerank={**rerank, "embedding_model": str(bi_encoder_dir)},
    )
    expected = [d.metadata["id"] for d in retriever.invoke(QUESTION)]
    assert [d.metadata["id"] for d in await retriever.ainvoke(QUESTION)] == expected
