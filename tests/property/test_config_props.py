"""RerankConfig round-trips through its JSON form (what explain output and the proxy carry)."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from bridge.config import RerankConfig

weights = st.floats(min_value=0.0, max_value=5.0, allow_nan=False)
fusions = st.one_of(
    st.just({"method": "replace"}),
    st.fixed_dictionaries(
        {
            "method": st.just("linear"),
            "normalize": st.sampled_from(["minmax", "zscore", "none"]),
            "query_weight": weights,
            "rerank_weight": weights,
        }
    ),
    st.fixed_dictionaries({"method": st.just("rrf"), "rank_constant": st.integers(1, 100)}),
    st.fixed_dictionaries(
        {
            "method": st.just("rescore"),
            "score_mode": st.sampled_from(["total", "multiply", "avg", "max", "min"]),
            "query_weight": weights,
            "rescore_query_weight": weights,
        }
    ),
)
sections = st.fixed_dictionaries(
    {"window_size": st.integers(1, 100), "fusion": fusions},
    optional={
        "fields": st.lists(st.sampled_from(["title", "brand.name", "tags"]), min_size=1),
        "min_score": st.one_of(st.none(), weights),
        "timeout_ms": st.one_of(st.none(), st.integers(1, 5000)),
        "on_failure": st.sampled_from(["original", "error"]),
        "explain": st.booleans(),
        "query": st.one_of(st.none(), st.text(max_size=10)),
    },
)


@given(sections)
def test_to_dict_round_trips(section: dict[str, Any]) -> None:
    config = RerankConfig.from_value(section)
    assert RerankConfig.from_value(config.to_dict()) == config
