"""RerankingRetriever configuration, checked before any search (no engine needed)."""

from __future__ import annotations

import pytest

from bridge.integrations.langchain import RerankingRetriever

# Never called: these tests fail at construction, before any search.
UNUSED_CLIENT = object()


def test_a_client_is_required() -> None:
    with pytest.raises(ValueError, match=r"\[client\] give a client or an async_client"):
        RerankingRetriever(index="products", fields=["title"])


def test_a_query_source_is_required() -> None:
    with pytest.raises(ValueError, match=r"\[fields\] give fields, a query_builder or a knn_field"):
        RerankingRetriever(client=UNUSED_CLIENT, index="products")


def test_k_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match=r"\[k\] must be at least 1"):
        RerankingRetriever(client=UNUSED_CLIENT, index="products", fields=["title"], k=0)


def test_an_invalid_rerank_section_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match=r"rerank\.window_size"):
        RerankingRetriever(
            client=UNUSED_CLIENT, index="products", fields=["title"], rerank={"window_size": 0}
        )


def test_an_unknown_rerank_key_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match=r"rerank\.top_n"):
        RerankingRetriever(
            client=UNUSED_CLIENT, index="products", fields=["title"], rerank={"top_n": 3}
        )


def test_sync_call_without_a_sync_client_says_to_use_ainvoke() -> None:
    retriever = RerankingRetriever(async_client=UNUSED_CLIENT, index="products", fields=["title"])
    with pytest.raises(ValueError, match="use ainvoke"):
        retriever.invoke("drill")
