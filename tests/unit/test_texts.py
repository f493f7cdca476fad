"""Passage building from hits: fields, dot paths, arrays, templates, missing fields."""

from __future__ import annotations

from typing import Any

from bridge.config import RerankConfig
from bridge.pipeline.texts import lookup, needed_fields, passage_texts, template_fields


def hit(source: dict[str, Any]) -> dict[str, Any]:
    return {"_id": "1", "_score": 1.0, "_source": source}


def test_fields_in_the_given_order() -> None:
    config = RerankConfig(fields=("brand", "title"))
    assert passage_texts([hit({"title": "Drill", "brand": "DeWalt"})], config).texts == [
        "DeWalt\nDrill"
    ]


def test_dot_path_reads_nested_objects() -> None:
    config = RerankConfig(fields=("brand.name",))
    assert passage_texts([hit({"brand": {"name": "Makita"}})], config).texts == ["Makita"]


def test_dot_path_fans_out_over_arrays_of_objects() -> None:
    source = {"reviews": [{"text": "great"}, {"text": "loud"}]}
    assert lookup(source, "reviews.text") == ["great", "loud"]


def test_arrays_are_joined_with_commas() -> None:
    config = RerankConfig(fields=("tags",))
    assert passage_texts([hit({"tags": ["cordless", "18V"]})], config).texts == ["cordless, 18V"]


def test_flat_dotted_key_is_found() -> None:
    assert lookup({"brand.name": "Bosch"}, "brand.name") == "Bosch"


def test_template_substitutes_fields() -> None:
    config = RerankConfig(template="{title} by {brand.name}")
    texts = passage_texts([hit({"title": "Drill", "brand": {"name": "Ryobi"}})], config).texts
    assert texts == ["Drill by Ryobi"]


def test_template_escaped_braces_stay_literal() -> None:
    config = RerankConfig(template="{{size}} {title}")
    assert passage_texts([hit({"title": "Saw"})], config).texts == ["{size} Saw"]


def test_missing_fields_are_counted_per_field() -> None:
    config = RerankConfig(fields=("title", "brand"))
    hits = [hit({"title": "a"}), hit({"title": "c", "brand": ""}), hit({})]
    assert passage_texts(hits, config).missing == {"brand": 3, "title": 1}


def test_missing_source_gives_empty_passage_without_error() -> None:
    config = RerankConfig(template="{title}")
    assert passage_texts([{"_id": "1"}], config).texts == [""]


def test_numbers_and_booleans_become_text() -> None:
    config = RerankConfig(fields=("price", "in_stock"))
    assert passage_texts([hit({"price": 9.5, "in_stock": False})], config).texts == ["9.5\nfalse"]


def test_without_fields_every_text_leaf_is_used_and_vectors_skipped() -> None:
    source = {"title": "Drill", "embedding": [0.1, 0.2], "meta": {"brand": "Ryobi"}}
    assert passage_texts([hit(source)], RerankConfig()).texts == ["Drill\nRyobi"]


def test_engine_fields_option_is_a_fallback_for_missing_source() -> None:
    config = RerankConfig(fields=("title",))
    assert passage_texts([{"_id": "1", "fields": {"title": ["Hammer"]}}], config).texts == [
        "Hammer"
    ]


def test_template_fields_in_first_appearance_order() -> None:
    assert template_fields("{b} {a} {b} {{c}}") == ("b", "a")


def test_needed_fields_none_without_fields_or_template() -> None:
    assert needed_fields(RerankConfig()) is None
