"""plan_search: widening, pagination limits, refusals, query text, knn query_text."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.config import RerankConfig
from bridge.errors import ConfigError, UnsupportedSearchError
from bridge.pipeline.plan import plan_search, with_query_vectors

MATCH = {"match": {"title": "cordless drill"}}
CONFIG = RerankConfig(fields=("title",))


def plan(body: dict[str, Any], config: RerankConfig = CONFIG, **params: Any) -> Any:
    return plan_search(body, config, params)


def test_engine_request_starts_at_zero_and_fetches_the_window() -> None:
    result = plan({"query": MATCH, "from": 5, "size": 5})
    assert (result.body["from"], result.body["size"]) == (0, 20)


def test_page_beyond_window_widens_the_fetch() -> None:
    assert plan({"query": MATCH, "from": 30, "size": 10}).fetch_size == 40


def test_page_beyond_max_window_is_refused() -> None:
    config = RerankConfig(fields=("title",), max_window=50)
    with pytest.raises(UnsupportedSearchError) as caught:
        plan({"query": MATCH, "from": 45, "size": 10}, config)
    assert caught.value.field == "rerank.max_window"


def test_size_and_from_params_are_read_and_removed() -> None:
    result = plan({"query": MATCH}, size="3", **{"from": "2"})
    assert (result.from_, result.size, "size" in result.params) == (2, 3, False)


def test_default_size_is_ten() -> None:
    assert plan({"query": MATCH}).size == 10


def test_size_zero_skips_reranking_and_keeps_the_body() -> None:
    body = {"query": MATCH, "size": 0, "aggs": {"b": {"terms": {"field": "brand"}}}}
    result = plan(body)
    assert (result.status, result.body) == ("skipped", body)


def test_caller_body_is_not_mutated() -> None:
    body = {"query": MATCH, "size": 5, "_source": ["price"]}
    plan(body)
    assert body == {"query": MATCH, "size": 5, "_source": ["price"]}


def test_rerank_section_is_never_sent_to_the_engine() -> None:
    assert "rerank" not in plan({"query": MATCH, "rerank": {"window_size": 5}}).body


@pytest.mark.parametrize(
    ("body", "params"),
    [
        ({"sort": [{"price": "asc"}]}, {}),
        ({"sort": "price"}, {}),
        ({"sort": [{"_score": "asc"}]}, {}),
        ({"search_after": [1]}, {}),
        ({"pit": {"id": "x"}}, {}),
        ({}, {"scroll": "1m"}),
        ({}, {"sort": "price:desc"}),
    ],
)
def test_unrerankable_search_is_refused_with_on_failure_error(
    body: dict[str, Any], params: dict[str, Any]
) -> None:
    config = RerankConfig(fields=("title",), on_failure="error")
    with pytest.raises(UnsupportedSearchError):
        plan({"query": MATCH, **body}, config, **params)


def test_unrerankable_search_passes_through_with_on_failure_original() -> None:
    result = plan({"query": MATCH, "sort": [{"price": "asc"}]})
    assert (result.status, result.body["sort"]) == ("unsupported", [{"price": "asc"}])


@pytest.mark.parametrize("sort", ["_score", ["_score"], [{"_score": {"order": "desc"}}]])
def test_score_sort_is_accepted(sort: Any) -> None:
    assert plan({"query": MATCH, "sort": sort}).status == "rerank"


def test_query_text_comes_from_the_query() -> None:
    assert plan({"query": MATCH}).query_text == "cordless drill"


def test_configured_query_wins() -> None:
    config = RerankConfig(fields=("title",), query="drill bits")
    assert plan({"query": MATCH}, config).query_text == "drill bits"


def test_q_param_gives_query_text() -> None:
    assert plan({}, q="title:hammer").query_text == "hammer"


def test_knn_query_text_gives_query_text() -> None:
    body = {"knn": {"field": "vec", "query_text": "angle grinder", "k": 5}}
    assert plan(body).query_text == "angle grinder"


def test_no_query_text_is_a_config_error_naming_rerank_query() -> None:
    with pytest.raises(ConfigError) as caught:
        plan({"query": {"match_all": {}}})
    assert caught.value.field == "rerank.query"


def test_knn_query_text_is_listed_for_embedding() -> None:
    body = {"query": MATCH, "knn": [{"field": "v", "query_text": "a"}, {"field": "w", "k": 1}]}
    assert plan(body).embed_texts == ("a",)


def test_query_vectors_replace_query_text_in_top_level_knn() -> None:
    result = with_query_vectors(plan({"knn": {"field": "v", "query_text": "a", "k": 3}}), [[0.5]])
    assert result.body["knn"] == {"field": "v", "query_vector": [0.5], "k": 3}


def test_query_vectors_replace_query_text_in_opensearch_knn_query() -> None:
    body = {"query": {"hybrid": {"queries": [MATCH, {"knn": {"v": {"query_text": "a", "k": 3}}}]}}}
    result = with_query_vectors(plan(body), [[0.25]])
    assert result.body["query"]["hybrid"]["queries"][1] == {
        "knn": {"v": {"vector": [0.25], "k": 3}}
    }


def test_query_vectors_leave_the_caller_body_alone() -> None:
    body = {"knn": {"field": "v", "query_text": "a", "k": 3}}
    with_query_vectors(plan(body), [[0.5]])
    assert body["knn"] == {"field": "v", "query_text": "a", "k": 3}


def test_source_is_widened_with_needed_fields() -> None:
    assert plan({"query": MATCH, "_source": ["price"]}).body["_source"] == {
        "includes": ["price", "title"]
    }


def test_source_false_asks_only_for_needed_fields() -> None:
    assert plan({"query": MATCH, "_source": False}).body["_source"] == {"includes": ["title"]}


def test_full_source_request_is_left_alone() -> None:
    result = plan({"query": MATCH})
    assert ("_source" in result.body, result.restore_source) == (False, False)


def test_source_params_move_into_the_body_when_widened() -> None:
    result = plan({"query": MATCH}, _source_includes="price", _source_excludes="title")
    assert (result.body["_source"], result.params) == ({"includes": ["price", "title"]}, {})


def test_without_fields_a_filtered_source_is_fetched_whole() -> None:
    result = plan({"query": MATCH, "_source": ["price"]}, RerankConfig())
    assert ("_source" in result.body, result.restore_source) == (False, True)


def test_filter_path_is_kept_for_the_answer_not_the_engine() -> None:
    result = plan({"query": MATCH}, filter_path="hits.hits._id,-took")
    assert (result.params, result.filter_path) == ({}, ("hits.hits._id", "-took"))
