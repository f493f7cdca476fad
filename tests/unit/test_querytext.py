"""Query text extraction from the query DSL."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.pipeline.querytext import clean_lucene, extract_query_text, retriever_query_text


@pytest.mark.parametrize(
    "query",
    [
        {"match": {"title": "cordless drill"}},
        {"match": {"title": {"query": "cordless drill", "operator": "and"}}},
        {"match_phrase": {"title": "cordless drill"}},
        {"multi_match": {"query": "cordless drill", "fields": ["title", "brand"]}},
        {"combined_fields": {"query": "cordless drill", "fields": ["title"]}},
        {"simple_query_string": {"query": "cordless drill"}},
        {"query_string": {"query": "title:(cordless AND drill)"}},
    ],
)
def test_leaf_queries_give_their_text(query: dict[str, Any]) -> None:
    assert extract_query_text(query) == "cordless drill"


@pytest.mark.parametrize(
    "wrap",
    [
        lambda q: {"bool": {"must": [q], "filter": [{"term": {"x": 1}}]}},
        lambda q: {"bool": {"should": q}},
        lambda q: {"dis_max": {"queries": [q]}},
        lambda q: {"function_score": {"query": q, "functions": []}},
        lambda q: {"constant_score": {"filter": q}},
        lambda q: {"boosting": {"positive": q, "negative": {"match": {"t": "cheap"}}}},
        lambda q: {"nested": {"path": "reviews", "query": q}},
        lambda q: {"hybrid": {"queries": [q, {"knn": {"v": {"vector": [1.0], "k": 3}}}]}},
    ],
)
def test_compound_queries_are_searched(wrap: Any) -> None:
    assert extract_query_text(wrap({"match": {"title": "cordless drill"}})) == "cordless drill"


def test_filter_and_must_not_clauses_are_ignored() -> None:
    query = {
        "bool": {
            "filter": [{"match": {"brand": "dewalt"}}],
            "must_not": [{"match": {"title": "corded"}}],
        }
    }
    assert extract_query_text(query) is None


def test_distinct_texts_are_joined_once_each() -> None:
    query = {
        "bool": {
            "should": [
                {"match": {"title": "drill"}},
                {"match": {"description": "drill"}},
                {"match": {"brand": "dewalt"}},
            ]
        }
    }
    assert extract_query_text(query) == "drill dewalt"


def test_match_all_has_no_text() -> None:
    assert extract_query_text({"match_all": {}}) is None


def test_lucene_syntax_is_stripped() -> None:
    assert clean_lucene('title:"red paint"^2 OR brand:behr~1 -cheap') == "red paint behr cheap"


def test_retriever_queries_give_text() -> None:
    retriever = {
        "rrf": {
            "retrievers": [
                {"standard": {"query": {"match": {"title": "cordless drill"}}}},
                {"knn": {"field": "v", "query_vector": [0.1], "k": 5, "num_candidates": 10}},
            ]
        }
    }
    assert retriever_query_text(retriever) == "cordless drill"


def test_retriever_filters_are_not_query_text() -> None:
    retriever = {"standard": {"query": {"match_all": {}}, "filter": {"match": {"brand": "x"}}}}
    assert retriever_query_text(retriever) is None
