"""split_search_args: the wrapper's keyword arguments become one body plus URL parameters."""

from __future__ import annotations

from bridge.search import split_search_args


def test_body_keywords_go_into_the_body() -> None:
    body, params = split_search_args(None, {"query": {"match_all": {}}, "size": 3, "index": "p"})
    assert (body, params) == ({"query": {"match_all": {}}, "size": 3}, {"index": "p"})


def test_python_aliases_become_wire_names() -> None:
    body, params = split_search_args(None, {"from_": 5, "source": False, "source_includes": "a"})
    assert (body, params) == ({"from": 5, "_source": False}, {"_source_includes": "a"})


def test_keywords_override_the_body() -> None:
    body, _ = split_search_args({"size": 3, "query": {"match_all": {}}}, {"size": 7})
    assert body == {"size": 7, "query": {"match_all": {}}}


def test_rerank_section_is_not_copied_into_the_body() -> None:
    body, _ = split_search_args({"rerank": True, "size": 1}, {})
    assert body == {"size": 1}


def test_caller_body_is_not_mutated() -> None:
    given = {"from_": 2, "size": 1}
    split_search_args(given, {"size": 4})
    assert given == {"from_": 2, "size": 1}
