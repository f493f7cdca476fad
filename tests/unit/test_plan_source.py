"""_source filters: parsing, widening for the engine, restoring client-side like the engine."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.errors import ConfigError
from bridge.pipeline.source import (
    SourceFilter,
    apply_filter_path,
    apply_source_filter,
    parse_source_filter,
    widen,
)

DOC = {
    "title": "Drill",
    "brand": {"name": "Ryobi", "country": "JP"},
    "price": 99,
    "reviews": [{"text": "good", "stars": 5}, {"text": "bad", "stars": 1}],
}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, SourceFilter()),
        (True, SourceFilter()),
        (False, SourceFilter(enabled=False)),
        ("false", SourceFilter(enabled=False)),
        ("title,price", SourceFilter(includes=("title", "price"))),
        (["title"], SourceFilter(includes=("title",))),
        ({"includes": ["a"], "excludes": ["b"]}, SourceFilter(includes=("a",), excludes=("b",))),
        ({"include": "a", "exclude": "b"}, SourceFilter(includes=("a",), excludes=("b",))),
    ],
)
def test_parse_body_value(value: Any, expected: SourceFilter) -> None:
    assert parse_source_filter(value) == expected


def test_params_override_body_patterns() -> None:
    parsed = parse_source_filter(["title"], "price", "brand.*")
    assert parsed == SourceFilter(includes=("price",), excludes=("brand.*",))


def test_unknown_dict_key_is_refused() -> None:
    with pytest.raises(ConfigError):
        parse_source_filter({"fields": ["a"]})


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (SourceFilter(includes=("title",)), {"title": "Drill"}),
        (SourceFilter(includes=("brand",)), {"brand": {"name": "Ryobi", "country": "JP"}}),
        (SourceFilter(includes=("brand.name",)), {"brand": {"name": "Ryobi"}}),
        (SourceFilter(includes=("br*",)), {"brand": {"name": "Ryobi", "country": "JP"}}),
        (SourceFilter(includes=("*.name",)), {"brand": {"name": "Ryobi"}}),
        (
            SourceFilter(includes=("reviews.stars",)),
            {"reviews": [{"stars": 5}, {"stars": 1}]},
        ),
        (
            SourceFilter(excludes=("reviews", "brand.country")),
            {"title": "Drill", "brand": {"name": "Ryobi"}, "price": 99},
        ),
        (SourceFilter(includes=("brand",), excludes=("brand.name",)), {"brand": {"country": "JP"}}),
        (SourceFilter(includes=("nothing",)), {}),
    ],
)
def test_apply_filter(spec: SourceFilter, expected: dict[str, Any]) -> None:
    assert apply_source_filter(DOC, spec) == expected


def test_widen_adds_needed_fields_to_includes() -> None:
    assert widen(SourceFilter(includes=("price",)), ["title"]).includes == ("price", "title")


def test_widen_drops_excludes_hiding_needed_fields() -> None:
    widened = widen(SourceFilter(excludes=("title", "reviews")), ["title"])
    assert widened.excludes == ("reviews",)


def test_widen_drops_wildcard_excludes_that_may_hide_needed_fields() -> None:
    assert widen(SourceFilter(excludes=("ti*",)), ["title"]).excludes == ()


def test_widen_disabled_source_asks_only_needed_fields() -> None:
    assert widen(SourceFilter(enabled=False), ["title"]) == SourceFilter(includes=("title",))


def test_widen_without_needed_fields_asks_everything() -> None:
    assert widen(SourceFilter(includes=("price",)), None) == SourceFilter()


DEEP = {"brand": {"name": "Ryobi", "address": {"city": "Osaka"}}, "title": "Drill"}


def test_es_include_wildcard_stays_within_a_segment() -> None:
    assert apply_source_filter(DEEP, SourceFilter(includes=("*e",))) == {"title": "Drill"}


def test_es_wildcard_exclude_crosses_dots() -> None:
    spec = SourceFilter(includes=("brand",), excludes=("*e",))
    assert apply_source_filter(DEEP, spec) == {"brand": {"address": {"city": "Osaka"}}}


def test_es_exact_exclude_drops_the_emptied_object() -> None:
    spec = SourceFilter(excludes=("brand.address.city",))
    assert apply_source_filter(DEEP, spec) == {"brand": {"name": "Ryobi"}, "title": "Drill"}


def test_opensearch_exact_exclude_keeps_the_emptied_object() -> None:
    spec = SourceFilter(excludes=("brand.address.city",))
    assert apply_source_filter(DEEP, spec, "opensearch") == {
        "brand": {"name": "Ryobi", "address": {}},
        "title": "Drill",
    }


def test_opensearch_include_wildcard_crosses_dots() -> None:
    assert apply_source_filter(DEEP, SourceFilter(includes=("*e",)), "opensearch") == {
        "brand": {"name": "Ryobi"},
        "title": "Drill",
    }


def test_double_star_spans_segments() -> None:
    spec = SourceFilter(includes=("**.city",))
    assert apply_source_filter(DEEP, spec) == {"brand": {"address": {"city": "Osaka"}}}


def test_widen_falls_back_to_everything_when_dropping_wildcard_excludes_on_es() -> None:
    requested = SourceFilter(includes=("*e",), excludes=("ti*",))
    assert widen(requested, ["title"]) == SourceFilter()


@pytest.mark.parametrize(
    ("paths", "expected"),
    [
        (["hits.hits._id"], {"hits": {"hits": [{"_id": "1"}, {"_id": "2"}]}}),
        (["-hits", "-took"], {"timed_out": False}),
        (["**._id"], {"hits": {"hits": [{"_id": "1"}, {"_id": "2"}]}}),
        (["hits.total.*"], {"hits": {"total": {"value": 2}}}),
    ],
)
def test_filter_path(paths: list[str], expected: dict[str, Any]) -> None:
    response = {
        "took": 1,
        "timed_out": False,
        "hits": {"total": {"value": 2}, "hits": [{"_id": "1", "_score": 1}, {"_id": "2"}]},
    }
    assert apply_filter_path(response, paths) == expected
