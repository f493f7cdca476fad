"""The _source the caller gets equals what the engine would return for the caller's own filter."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.pipeline.source import SourceFilter, apply_source_filter, widen
from bridge.pipeline.texts import lookup

KEYS = ["title", "brand", "name", "price", "tags", "meta"]
leaf = st.one_of(st.text(max_size=5), st.integers(), st.booleans())
docs = st.recursive(
    leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(KEYS), inner, max_size=4)
    ),
    max_leaves=12,
).filter(lambda d: isinstance(d, dict))
path = st.lists(st.sampled_from(KEYS), min_size=1, max_size=3).map(".".join)
pattern = st.one_of(
    path, path.map(lambda p: p[:2] + "*"), path.map(lambda p: "*." + p), st.just("**.name")
)
engines = st.sampled_from(["elasticsearch", "opensearch"])


@settings(max_examples=300, deadline=None)
@given(
    doc=docs,
    enabled=st.booleans(),
    includes=st.lists(pattern, max_size=3),
    excludes=st.lists(pattern, max_size=2),
    needed=st.one_of(st.none(), st.lists(path, min_size=1, max_size=3)),
    engine=engines,
)
def test_restoring_from_the_widened_source_equals_the_direct_filter(
    doc: dict[str, Any],
    enabled: bool,
    includes: list[str],
    excludes: list[str],
    needed: list[str] | None,
    engine: str,
) -> None:
    requested = SourceFilter(enabled=enabled, includes=tuple(includes), excludes=tuple(excludes))
    fetched = apply_source_filter(doc, widen(requested, needed, engine), engine)
    expected = apply_source_filter(doc, requested, engine) if enabled else None
    restored = apply_source_filter(fetched, requested, engine) if enabled else None
    assert restored == expected


@settings(max_examples=300, deadline=None)
@given(
    doc=docs,
    enabled=st.booleans(),
    includes=st.lists(pattern, max_size=3),
    excludes=st.lists(pattern, max_size=2),
    needed=st.lists(path, min_size=1, max_size=3),
    engine=engines,
)
def test_widened_source_keeps_every_needed_field(
    doc: dict[str, Any],
    enabled: bool,
    includes: list[str],
    excludes: list[str],
    needed: list[str],
    engine: str,
) -> None:
    requested = SourceFilter(enabled=enabled, includes=tuple(includes), excludes=tuple(excludes))
    fetched = apply_source_filter(doc, widen(requested, needed, engine), engine)
    assert [lookup(fetched, n) for n in needed] == [lookup(doc, n) for n in needed]
