"""Find the user's query text inside an Elasticsearch/OpenSearch query (pure).

The text of full-text leaves (``match``, ``match_phrase``, ``match_phrase_prefix``,
``match_bool_prefix``, ``multi_match``, ``combined_fields``, ``query_string``,
``simple_query_string``) is collected through scoring compound queries (``bool`` must/should,
``dis_max``, ``function_score``, ``script_score``, ``constant_score``, ``boosting`` positive,
``nested``, OpenSearch ``hybrid``). ``filter`` and ``must_not`` clauses do not express relevance
and are skipped (except under ``constant_score``, whose only clause is a filter). Distinct texts
are joined with a space in the order found.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

_FIELD_LEAVES = ("match", "match_phrase", "match_phrase_prefix", "match_bool_prefix")
_QUERY_LEAVES = ("multi_match", "combined_fields", "query_string", "simple_query_string")
_LUCENE_SYNTAX = ("query_string", "simple_query_string")

# Lucene syntax that is not words: field prefixes, boolean operators, boosts, fuzziness, grouping.
_FIELD_PREFIX = re.compile(r"(?<![\w\\])[\w.*]+:(?=\S)")
_OPERATORS = re.compile(r"(?<!\S)(AND|OR|NOT|&&|\|\|)(?!\S)")
_MODIFIERS = re.compile(r"[\^~]\d*(\.\d+)?")
_PUNCT = re.compile(r"[()\[\]{}\"+\-!|&*?<>=/\\]")
_SPACES = re.compile(r"\s+")


def extract_query_text(query: Any) -> str | None:
    """Return the query text found in ``query`` (a query DSL object), or ``None``."""
    texts: list[str] = []
    for text in _walk(query):
        cleaned = _SPACES.sub(" ", text).strip()
        if cleaned and cleaned not in texts:
            texts.append(cleaned)
    return " ".join(texts) if texts else None


def clean_lucene(text: str) -> str:
    """Strip Lucene query syntax (``title:(a AND b)^2``) down to its words."""
    text = _FIELD_PREFIX.sub("", text)
    text = _OPERATORS.sub(" ", text)
    text = _MODIFIERS.sub(" ", text)
    text = _PUNCT.sub(" ", text)
    return _SPACES.sub(" ", text).strip()


def clauses(node: Any) -> Iterator[tuple[str, Any]]:
    """``(name, body)`` of each query clause in ``node``: a clause object or a list of them."""
    if isinstance(node, list):
        for item in node:
            yield from clauses(item)
    elif isinstance(node, Mapping):
        yield from node.items()


def _walk(node: Any) -> Iterator[str]:
    for kind, body in clauses(node):
        if kind in _FIELD_LEAVES:
            yield from _field_leaf(body)
        elif kind in _QUERY_LEAVES:
            if isinstance(body, Mapping) and isinstance(body.get("query"), str):
                raw = body["query"]
                yield clean_lucene(raw) if kind in _LUCENE_SYNTAX else raw
        elif kind == "bool" and isinstance(body, Mapping):
            yield from _walk(body.get("must"))
            yield from _walk(body.get("should"))
        elif kind in ("dis_max", "hybrid") and isinstance(body, Mapping):
            yield from _walk(body.get("queries"))
        elif kind in ("function_score", "script_score", "nested") and isinstance(body, Mapping):
            yield from _walk(body.get("query"))
        elif kind == "constant_score" and isinstance(body, Mapping):
            yield from _walk(body.get("filter"))
        elif kind == "boosting" and isinstance(body, Mapping):
            yield from _walk(body.get("positive"))


def _field_leaf(body: Any) -> Iterator[str]:
    # {"match": {"title": "drill"}} or {"match": {"title": {"query": "drill", ...}}}
    if not isinstance(body, Mapping):
        return
    for value in body.values():
        if isinstance(value, str):
            yield value
        elif isinstance(value, Mapping) and isinstance(value.get("query"), str):
            yield value["query"]


def retriever_query_text(retriever: Any) -> str | None:
    """Query text of the ``query`` clauses inside an Elasticsearch ``retriever`` tree."""
    texts: list[str] = []
    for query in _retriever_queries(retriever):
        text = extract_query_text(query)
        if text and text not in texts:
            texts.append(text)
    return " ".join(texts) if texts else None


def _retriever_queries(node: Any) -> Iterator[Any]:
    # standard.query, and any nesting (rrf/linear/rescorer/text_similarity_reranker.retriever(s)).
    if isinstance(node, list):
        for item in node:
            yield from _retriever_queries(item)
    elif isinstance(node, Mapping):
        for key, value in node.items():
            if key == "query":
                yield value
            elif key != "filter":
                yield from _retriever_queries(value)


def knn_query_texts(body: Mapping[str, Any]) -> list[str]:
    """``query_text`` values of top-level ``knn`` clauses (one object or a list)."""
    knn = body.get("knn")
    clauses = knn if isinstance(knn, list) else [knn]
    return [
        c["query_text"]
        for c in clauses
        if isinstance(c, Mapping) and isinstance(c.get("query_text"), str) and c["query_text"]
    ]


__all__ = [
    "clauses",
    "clean_lucene",
    "extract_query_text",
    "knn_query_texts",
    "retriever_query_text",
]
