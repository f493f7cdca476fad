"""A ``vector_field`` phase in the rerank flow, driven by hand: the plan asks for the field in
``fields`` (and the answer hides it again), the phase checks which model wrote the vectors, embeds
only the query and the hits without a usable vector, scores by cosine and says how in ``explain``.
Plus the config field and the cached ``_meta`` verdicts a door gives."""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import pytest

from bridge.config import RerankConfig
from bridge.errors import ConfigError
from bridge.pipeline.flow import CheckVectors, Embed, Flow, Search, SearchRequest, rerank_flow
from bridge.pipeline.stored_vectors import stored_vector
from bridge.vectors import META_KEY
from bridge.vectors.checks import VectorChecks, verdict
from bridge.vectors.fingerprint import VectorsMeta

BODY: dict[str, Any] = {"query": {"match": {"title": "title"}}, "size": 4}
VECTORS = [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], None]  # hit 3 has none


def engine_answer(vectors: list[Any]) -> dict[str, Any]:
    hits = []
    for i, vector in enumerate(vectors):
        hit: dict[str, Any] = {
            "_index": "products",
            "_id": str(i),
            "_score": 4.0 - i,
            "_source": {"title": f"title {i}"},
        }
        if vector is not None:
            hit["fields"] = {"title_vector": vector, "other": ["kept"]}
        hits.append(hit)
    return {"hits": {"max_score": 4.0, "hits": hits}}


def config(**phase: Any) -> RerankConfig:
    first = {"model": "bi", "window_size": 4, "vector_field": "title_vector", **phase}
    return RerankConfig.from_value(
        {"phases": [first], "fields": ["title"], "explain": True, "timeout_ms": None}
    )


def at_search(body: dict[str, Any] | None = None, **phase: Any) -> Flow:
    flow = Flow(rerank_flow(SearchRequest(body or BODY, config(**phase))))
    assert isinstance(flow.effect, Search)
    return flow


def test_the_plan_asks_for_the_vector_field_and_keeps_the_callers_fields() -> None:
    assert at_search().effect.body["fields"] == ["title_vector"]  # type: ignore[union-attr]
    flow = at_search({**BODY, "fields": ["other", {"field": "title_vector"}]})
    assert flow.effect.body["fields"] == ["other", {"field": "title_vector"}]  # type: ignore[union-attr]


def test_the_phase_embeds_the_query_and_the_hits_without_a_vector_only() -> None:
    flow = at_search()
    flow.send(engine_answer(VECTORS))
    check = flow.effect
    assert check == CheckVectors("bi", "title_vector", ("products",))
    flow.send({})
    embed = flow.effect
    assert isinstance(embed, Embed)
    assert embed.texts == ("title", "title 3")  # the query, then the hit lacking a vector
    flow.send([[1.0, 0.0], [0.0, -1.0]])
    answer = flow.done().answer
    scores = {h["_id"]: h["_rerank"]["model_score"] for h in answer["hits"]["hits"]}
    assert scores == pytest.approx({"0": 1.0, "1": 0.0, "2": math.sqrt(0.5), "3": 0.0})
    assert [h["_id"] for h in answer["hits"]["hits"]] == ["0", "2", "1", "3"]
    phase = answer["rerank"]["phases"][0]
    assert phase["vectors"] == {
        "field": "title_vector",
        "stored": 3,
        "embedded": 1,
        "missing": 1,
        "wrong_dimension": 0,
        "other_model": 0,
    }
    # the vectors the plan asked for are gone from the answer; the caller's other fields stay
    assert [h.get("fields") for h in answer["hits"]["hits"]] == [{"other": ["kept"]}] * 3 + [None]


def test_vectors_of_another_dimension_are_embedded_in_a_second_effect() -> None:
    flow = at_search()
    flow.send(engine_answer([[1.0, 0.0], [0.5, 0.5, 0.5], [1.0, 1.0], [0.0, 1.0]]))
    flow.send({})
    assert flow.effect == Embed("bi", ("title",))
    flow.send([[0.0, 1.0]])
    assert flow.effect == Embed("bi", ("title 1",))
    flow.send([[0.0, 2.0]])
    phase = flow.done().answer["rerank"]["phases"][0]
    assert (phase["vectors"]["stored"], phase["vectors"]["wrong_dimension"]) == (3, 1)
    assert "do not have the model's 2 dimensions" in phase["vectors"]["warnings"][0]


def test_an_index_whose_meta_names_another_model_is_embedded_again() -> None:
    flow = at_search()
    flow.send(engine_answer(VECTORS))
    flow.send({"products": "written by another model"})
    embed = flow.effect
    assert isinstance(embed, Embed)
    assert embed.texts == ("title", "title 0", "title 1", "title 2", "title 3")
    flow.send(np.eye(5, 2))
    report = flow.done().answer["rerank"]["phases"][0]["vectors"]
    assert (report["stored"], report["embedded"], report["other_model"]) == (0, 4, 3)
    assert "products: written by another model" in report["warnings"][0]


def test_a_door_that_cannot_check_fails_open_to_the_stored_vectors() -> None:
    flow = at_search()
    flow.send(engine_answer(VECTORS))
    flow.throw(AttributeError("'Door' object has no attribute 'check_vectors'"))
    assert flow.effect == Embed("bi", ("title", "title 3"))
    flow.send([[1.0, 0.0], [1.0, 0.0]])
    report = flow.done().answer["rerank"]["phases"][0]["vectors"]
    assert report["stored"] == 3
    assert "could not check" in report["warnings"][0]


def test_a_failing_embedding_fails_the_phase_open() -> None:
    flow = at_search()
    flow.send(engine_answer(VECTORS))
    flow.send({})
    flow.throw(RuntimeError("model crashed"))
    answer = flow.done().answer
    assert answer["rerank"]["status"] == "model_error"
    assert [h["_id"] for h in answer["hits"]["hits"]] == ["0", "1", "2", "3"]


@pytest.mark.parametrize(
    ("hit", "expected"),
    [
        ({"fields": {"v": [1, 2.5]}}, [1.0, 2.5]),
        ({"fields": {"v": [[1, 2]]}}, [1.0, 2.0]),
        ({"_source": {"v": [0.5]}}, [0.5]),
        ({"_source": {"a": {"v": [0.5]}}}, None),
        ({"fields": {"v": []}}, None),
        ({"fields": {"v": ["x", 1]}}, None),
        ({"fields": {"v": [True, 1.0]}}, None),
        ({"fields": {"v": [float("nan")]}}, None),
        ({}, None),
    ],
)
def test_stored_vector_reads_only_lists_of_finite_numbers(
    hit: dict[str, Any], expected: list[float] | None
) -> None:
    assert stored_vector(hit, "v") == expected


def test_vector_field_in_the_config() -> None:
    assert config().phases[0].to_dict()["vector_field"] == "title_vector"
    assert config().vector_fields == ("title_vector",)
    for bad, where in ((3, "expected a string"), ("  ", "non-empty")):
        with pytest.raises(ConfigError, match=where) as caught:
            config(vector_field=bad)
        assert caught.value.field == "rerank.phases[0].vector_field"
    with pytest.raises(ConfigError) as caught:
        RerankConfig.from_value(
            {
                "phases": [{"model": "bi", "window_size": 4, "vector_field": "v"}],
                "chunking": {"tokens": 64, "stride": 32},
            }
        )
    assert caught.value.field == "rerank.chunking"


def meta(fingerprint: str, max_length: int | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"model": "m", "fingerprint": fingerprint, "dims": 2}
    if max_length is not None:
        entry["max_length"] = max_length
    return {"_meta": {META_KEY: {"v": entry}}}


def test_meta_verdicts_are_cached_per_index_field_and_model() -> None:
    now = [0.0]
    checks = VectorChecks(ttl_s=60.0, clock=lambda: now[0])
    checks.fingerprint = lambda model: f"sha256:{model}"  # type: ignore[method-assign]
    checks.max_length = lambda model, requested: requested or 256  # type: ignore[method-assign]
    reads: list[list[str]] = []

    def read(indices: Any) -> dict[str, Any]:
        reads.append(list(indices))
        return {"a": meta("sha256:old"), "b": {}}

    effect = CheckVectors("new", "v", ("a", "b"))
    first = checks.check(effect, read)
    assert "written by m" in (first["a"] or "")
    assert first["b"] is None  # no record: used after the dimension check
    assert checks.check(effect, read) == first
    assert reads == [["a", "b"]]  # the second check came from the cache
    now[0] = 61.0
    checks.check(effect, read)
    assert reads == [["a", "b"], ["a", "b"]]  # stale after the TTL
    assert verdict(meta("sha256:new"), "v", "sha256:new") is None
    # another requested limit is its own verdict (read again)
    assert checks.check(CheckVectors("new", "v", ("a",), 16), read)["a"]
    assert reads[-1] == ["a"]


def test_a_verdict_compares_the_token_limit_the_vectors_were_cut_at() -> None:
    assert verdict(meta("sha256:x", 128), "v", "sha256:x", 128, 256) is None
    reason = verdict(meta("sha256:x", 128), "v", "sha256:x", 256, 256)
    assert "cut at 128 tokens" in (reason or "")
    assert "max_length 256" in (reason or "")
    # a record without the limit (written before it was recorded) reads as the model's default
    assert verdict(meta("sha256:x"), "v", "sha256:x", 256, 256) is None
    assert "cut at 256 tokens" in (verdict(meta("sha256:x"), "v", "sha256:x", 16, 256) or "")
    # another model: the fingerprint's reason, whatever the limit
    assert "written by m" in (verdict(meta("sha256:y", 16), "v", "sha256:x", 16, 256) or "")
    assert VectorsMeta("m", "sha256:x", 2, "t", 64).to_dict()["max_length"] == 64
    assert "max_length" not in VectorsMeta("m", "sha256:x", 2, "t").to_dict()


def test_vectors_that_come_in_after_the_budget_leave_the_engine_order() -> None:
    section = {
        "phases": [{"model": "bi", "window_size": 4, "vector_field": "title_vector"}],
        "fields": ["title"],
        "explain": True,
        "timeout_ms": 1,
    }
    flow = Flow(rerank_flow(SearchRequest(BODY, RerankConfig.from_value(section))))
    flow.send(engine_answer(VECTORS))
    flow.send({})
    time.sleep(0.01)  # the embedding took longer than timeout_ms
    flow.send([[1.0, 0.0], [0.0, 1.0]])
    answer = flow.done().answer
    assert answer["rerank"]["status"] == "timeout"
    assert [h["_id"] for h in answer["hits"]["hits"]] == ["0", "1", "2", "3"]


def test_the_phases_max_length_goes_with_its_embeddings() -> None:
    flow = at_search(max_length=64)
    flow.send(engine_answer(VECTORS))
    # the door checks the stored vectors against the limit the phase embeds at
    assert flow.effect == CheckVectors("bi", "title_vector", ("products",), 64)
    flow.send({})
    assert flow.effect == Embed("bi", ("title", "title 3"), 64)
