"""build_answer: order, pagination, scores, _source restore, explain, untouched parts."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.config import RerankConfig
from bridge.pipeline.answer import Outcome, build_answer
from bridge.pipeline.plan import Plan, plan_search

MATCH = {"match": {"title": "drill"}}


def engine_response(n: int) -> dict[str, Any]:
    hits = [
        {
            "_index": "p",
            "_id": f"d{i}",
            "_score": float(n - i),
            "_source": {"title": f"t{i}", "price": i},
        }
        for i in range(n)
    ]
    return {
        "took": 2,
        "timed_out": False,
        "hits": {"total": {"value": 100, "relation": "eq"}, "max_score": float(n), "hits": hits},
        "aggregations": {"brands": {"buckets": [{"key": "x", "doc_count": 3}]}},
    }


def make_plan(body: dict[str, Any], **config: Any) -> Plan:
    base: dict[str, Any] = {"fields": ["title"], "window_size": 4}
    return plan_search(body, RerankConfig.from_value({**base, **config}))


def ok(scores: list[float]) -> Outcome:
    return Outcome(status="ok", model_scores=scores)


def ids(answer: dict[str, Any]) -> list[str]:
    return [h["_id"] for h in answer["hits"]["hits"]]


def test_window_is_reordered_by_model_score() -> None:
    answer = build_answer(engine_response(4), make_plan({"query": MATCH}), ok([0.1, 0.4, 0.9, 0.2]))
    assert ids(answer) == ["d2", "d1", "d3", "d0"]


def test_score_is_the_fused_score() -> None:
    answer = build_answer(engine_response(4), make_plan({"query": MATCH}), ok([0.1, 0.4, 0.9, 0.2]))
    assert [h["_score"] for h in answer["hits"]["hits"]] == [0.9, 0.4, 0.2, 0.1]


def test_max_score_is_the_top_fused_score() -> None:
    answer = build_answer(engine_response(4), make_plan({"query": MATCH}), ok([0.1, 0.4, 0.9, 0.2]))
    assert answer["hits"]["max_score"] == 0.9


def test_hits_beyond_the_window_follow_in_engine_order() -> None:
    plan = make_plan({"query": MATCH, "size": 6})
    answer = build_answer(engine_response(6), plan, ok([0.1, 0.4, 0.9, 0.2]))
    assert ids(answer) == ["d2", "d1", "d3", "d0", "d4", "d5"]


def test_page_is_a_slice_of_the_fused_order() -> None:
    plan = make_plan({"query": MATCH, "from": 1, "size": 2})
    answer = build_answer(engine_response(4), plan, ok([0.1, 0.4, 0.9, 0.2]))
    assert ids(answer) == ["d1", "d3"]


def test_failed_outcome_keeps_engine_order_and_scores() -> None:
    plan = make_plan({"query": MATCH, "size": 3})
    answer = build_answer(engine_response(4), plan, Outcome(status="timeout", error="slow"))
    assert [(h["_id"], h["_score"]) for h in answer["hits"]["hits"]] == [
        ("d0", 4.0),
        ("d1", 3.0),
        ("d2", 2.0),
    ]


def test_min_score_drops_hits_by_model_score() -> None:
    plan = make_plan({"query": MATCH}, min_score=0.3)
    answer = build_answer(engine_response(4), plan, ok([0.1, 0.4, 0.9, 0.2]))
    assert ids(answer) == ["d2", "d1"]


def test_response_keys_are_exactly_the_engines_without_explain() -> None:
    response = engine_response(4)
    answer = build_answer(response, make_plan({"query": MATCH}), ok([0.1, 0.4, 0.9, 0.2]))
    assert (list(answer), list(answer["hits"])) == (list(response), list(response["hits"]))


def test_hit_keys_are_unchanged_without_explain() -> None:
    answer = build_answer(engine_response(4), make_plan({"query": MATCH}), ok([0.1, 0.4, 0.9, 0.2]))
    assert {tuple(h) for h in answer["hits"]["hits"]} == {("_index", "_id", "_score", "_source")}


def test_aggregations_and_total_are_the_engines_objects() -> None:
    response = engine_response(4)
    answer = build_answer(response, make_plan({"query": MATCH}), ok([0.1, 0.4, 0.9, 0.2]))
    assert (answer["aggregations"], answer["hits"]["total"]) == (
        response["aggregations"],
        response["hits"]["total"],
    )


def test_engine_response_is_not_mutated() -> None:
    response = engine_response(4)
    before = repr(response)
    build_answer(response, make_plan({"query": MATCH, "_source": False}), ok([0.1, 0.4, 0.9, 0.2]))
    assert repr(response) == before


def test_source_false_removes_source_from_hits() -> None:
    plan = make_plan({"query": MATCH, "_source": False})
    answer = build_answer(engine_response(4), plan, ok([0.1, 0.4, 0.9, 0.2]))
    assert all("_source" not in h for h in answer["hits"]["hits"])


def test_source_includes_are_restored() -> None:
    plan = make_plan({"query": MATCH, "_source": ["price"]})
    answer = build_answer(engine_response(4), plan, ok([0.1, 0.4, 0.9, 0.2]))
    assert answer["hits"]["hits"][0]["_source"] == {"price": 2}


def test_explain_gives_model_engine_score_and_rank_per_hit() -> None:
    plan = make_plan({"query": MATCH}, explain=True)
    answer = build_answer(engine_response(4), plan, ok([0.1, 0.4, 0.9, 0.2]))
    top = answer["hits"]["hits"][0]["_rerank"]
    assert (top["model_score"], top["engine_score"], top["engine_rank"], top["rank"]) == (
        0.9,
        2.0,
        3,
        1,
    )


def test_explain_flags_a_failure() -> None:
    plan = make_plan({"query": MATCH}, explain=True)
    answer = build_answer(engine_response(4), plan, Outcome(status="timeout", error="slow"))
    assert (answer["rerank"]["status"], answer["hits"]["hits"][0]["_rerank"]["status"]) == (
        "timeout",
        "engine_order",
    )


def test_explain_reports_missing_fields() -> None:
    plan = make_plan({"query": MATCH}, explain=True)
    outcome = Outcome(status="ok", model_scores=[0.1, 0.2, 0.3, 0.4], missing={"title": 2})
    assert build_answer(engine_response(4), plan, outcome)["rerank"]["missing_fields"] == {
        "title": 2
    }


def test_skipped_plan_returns_the_response_unchanged() -> None:
    response = engine_response(0)
    plan = make_plan({"query": MATCH, "size": 0})
    assert build_answer(response, plan, Outcome(status="skipped")) == response


def test_unsupported_plan_is_flagged_with_explain() -> None:
    plan = make_plan({"query": MATCH, "sort": [{"price": "asc"}]}, explain=True)
    answer = build_answer(engine_response(2), plan, Outcome(status="unsupported"))
    assert answer["rerank"]["status"] == "unsupported"


@pytest.mark.parametrize("n", [0, 1, 3])
def test_fewer_hits_than_the_window(n: int) -> None:
    scores = [0.5] * n
    answer = build_answer(engine_response(n), make_plan({"query": MATCH}), ok(scores))
    assert ids(answer) == [f"d{i}" for i in range(n)]


def test_filter_path_applies_to_the_reranked_answer() -> None:
    plan = plan_search(
        {"query": MATCH, "size": 2},
        RerankConfig(fields=("title",), window_size=4),
        {"filter_path": "hits.hits._id"},
    )
    answer = build_answer(engine_response(4), plan, ok([0.1, 0.4, 0.9, 0.2]))
    assert answer == {"hits": {"hits": [{"_id": "d2"}, {"_id": "d1"}]}}


def test_explain_marks_hits_beyond_the_window() -> None:
    plan = make_plan({"query": MATCH, "size": 6}, explain=True)
    answer = build_answer(engine_response(6), plan, ok([0.1, 0.4, 0.9, 0.2]))
    assert [h["_rerank"]["status"] for h in answer["hits"]["hits"]][3:] == [
        "reranked",
        "beyond_window",
        "beyond_window",
    ]


def test_beyond_window_hits_keep_their_engine_score() -> None:
    plan = make_plan({"query": MATCH, "size": 6})
    answer = build_answer(engine_response(6), plan, ok([0.1, 0.4, 0.9, 0.2]))
    assert [h["_score"] for h in answer["hits"]["hits"]][4:] == [2.0, 1.0]


def test_min_score_leaves_out_never_scored_hits_beyond_the_window() -> None:
    plan = make_plan({"query": MATCH, "size": 6}, min_score=0.3)
    answer = build_answer(engine_response(6), plan, ok([0.1, 0.4, 0.9, 0.2]))
    assert ids(answer) == ["d2", "d1"]


def test_min_score_does_not_apply_when_scoring_failed() -> None:
    plan = make_plan({"query": MATCH, "size": 3}, min_score=0.3)
    answer = build_answer(engine_response(4), plan, Outcome(status="model_error", error="x"))
    assert ids(answer) == ["d0", "d1", "d2"]


def test_rescore_scales_hits_past_the_window_and_sorts_everything() -> None:
    # Engine scores 6..1; window 4; multiply: 0.5e x m for the window, 0.5e past it.
    fusion = {"method": "rescore", "score_mode": "multiply", "query_weight": 0.5}
    plan = make_plan({"query": MATCH, "size": 6}, fusion=fusion, explain=True)
    answer = build_answer(engine_response(6), plan, ok([0.1, 0.4, 0.9, 0.2]))
    # d0 3*0.1=0.3, d1 2.5*0.4=1.0, d2 2*0.9=1.8, d3 1.5*0.2=0.3, d4 1.0, d5 0.5
    assert ids(answer) == ["d2", "d1", "d4", "d5", "d0", "d3"]
    assert [h["_score"] for h in answer["hits"]["hits"]] == pytest.approx(
        [1.8, 1.0, 1.0, 0.5, 0.3, 0.3]
    )
    assert answer["hits"]["max_score"] == pytest.approx(1.8)
    d4 = answer["hits"]["hits"][2]["_rerank"]
    assert d4["status"] == "beyond_window"
    assert (d4["engine_score"], d4["fused_score"], d4["rank"]) == (2.0, 1.0, 3)


def test_other_fusions_keep_the_window_first() -> None:
    plan = make_plan({"query": MATCH, "size": 6}, fusion={"method": "linear"})
    answer = build_answer(engine_response(6), plan, ok([0.1, 0.4, 0.9, 0.2]))
    assert ids(answer)[4:] == ["d4", "d5"]
    assert [h["_score"] for h in answer["hits"]["hits"][4:]] == [2.0, 1.0]
