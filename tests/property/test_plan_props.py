"""plan_search on arbitrary request bodies: a Plan or a ConfigError, never another exception."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.config import RerankConfig
from bridge.errors import ConfigError
from bridge.pipeline.plan import plan_search
from bridge.pipeline.querytext import extract_query_text

KEYS = [
    "query", "bool", "must", "should", "match", "multi_match", "query_string", "knn", "field",
    "query_text", "k", "size", "from", "_source", "sort", "includes", "excludes", "title", "hybrid",
    "queries", "nested", "dis_max", "function_score", "constant_score", "filter", "boosting",
    "positive", "search_after", "pit", "_score", "order",
]  # fmt: skip
json_values = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(-3, 30), st.text(max_size=6), st.sampled_from(KEYS)
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(KEYS), inner, max_size=3)
    ),
    max_leaves=15,
)
bodies = st.dictionaries(st.sampled_from(KEYS), json_values, max_size=5)
params = st.dictionaries(
    st.sampled_from(["size", "from", "q", "_source", "_source_includes", "sort", "filter_path"]),
    st.one_of(st.text(max_size=6), st.sampled_from(["5", "false", "title", "_score"])),
    max_size=3,
)


@settings(max_examples=400, deadline=None)
@given(body=bodies, url_params=params, on_failure=st.sampled_from(["original", "error"]))
def test_plan_search_returns_a_plan_or_raises_config_error(
    body: dict[str, Any], url_params: dict[str, Any], on_failure: str
) -> None:
    config = RerankConfig.from_value({"fields": ["title"], "on_failure": on_failure})
    try:
        plan = plan_search(body, config, url_params)
    except ConfigError:
        return
    assert plan.status in ("rerank", "skipped", "unsupported")


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_query_text_is_text_or_none(query: Any) -> None:
    text = extract_query_text(query)
    assert text is None or (isinstance(text, str) and text == text.strip() and text)
