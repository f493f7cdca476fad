"""Passage building never crashes and keeps every present value."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from bridge.config import RerankConfig
from bridge.pipeline.texts import passage_texts

words = st.text(alphabet="abcdefgh ", min_size=1, max_size=8).filter(lambda s: s.strip())
values = st.one_of(st.none(), words, st.integers(), st.lists(words, max_size=3), st.floats())
sources = st.dictionaries(st.sampled_from(["title", "brand", "desc"]), values, max_size=3)
hits = st.lists(
    st.one_of(
        st.builds(lambda s: {"_source": s}, sources), st.just({}), st.just({"_source": None})
    ),
    max_size=6,
)


@given(hits)
def test_template_yields_one_passage_per_hit(batch: list[dict[str, Any]]) -> None:
    config = RerankConfig(template="{title} by {brand}: {desc.x}")
    assert len(passage_texts(batch, config).texts) == len(batch)


@given(st.dictionaries(st.sampled_from(["title", "brand"]), words, min_size=1))
def test_every_present_field_value_appears(source: dict[str, str]) -> None:
    text = passage_texts([{"_source": source}], RerankConfig(fields=("title", "brand"))).texts[0]
    assert all(value.strip() in text for value in source.values())


@given(hits)
def test_missing_counts_never_exceed_hits(batch: list[dict[str, Any]]) -> None:
    missing = passage_texts(batch, RerankConfig(fields=("title", "brand"))).missing
    assert all(count <= len(batch) for count in missing.values())
