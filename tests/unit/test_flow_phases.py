"""Phases inside the rerank flow, driven by hand: one Score effect per phase, the answer's order
and `explain`, fail-open per phase, `on_failure="error"`, one budget."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.config import RerankConfig
from bridge.errors import ModelError, RerankTimeout
from bridge.pipeline.flow import Flow, Score, Search, SearchRequest, rerank_flow

ENGINE: dict[str, Any] = {
    "hits": {
        "max_score": 5.0,
        "hits": [
            {"_id": str(i), "_score": 5.0 - i, "_source": {"title": f"title {i}"}} for i in range(5)
        ],
    }
}
BODY: dict[str, Any] = {"query": {"match": {"title": "title"}}, "size": 5}
PHASES = [{"model": "cheap", "window_size": 4}, {"model": "dear", "window_size": 2}]


def at_first_score(**config: Any) -> Flow:
    section = {"fields": ["title"], "timeout_ms": 500, "explain": True, "phases": PHASES}
    flow = Flow(rerank_flow(SearchRequest(BODY, RerankConfig.from_value({**section, **config}))))
    assert isinstance(flow.effect, Search)
    assert flow.effect.body["size"] == 5  # max(first window 4, size 5)
    flow.send(ENGINE)
    return flow


def score_effect(flow: Flow) -> Score:
    assert isinstance(flow.effect, Score), f"flow waits for {flow.effect!r}"
    return flow.effect


def ids(flow: Flow) -> list[str]:
    return [h["_id"] for h in flow.done().answer["hits"]["hits"]]


def test_each_phase_is_a_score_effect_over_the_top_of_the_previous_order() -> None:
    flow = at_first_score()
    first = score_effect(flow)
    assert (first.model, first.passages) == ("cheap", ("title 0", "title 1", "title 2", "title 3"))
    flow.send([0.1, 0.2, 0.9, 0.8])  # cheap: 2, 3, 1, 0
    second = score_effect(flow)
    assert (second.model, second.passages) == ("dear", ("title 2", "title 3"))
    assert first.timeout_s is not None
    assert second.timeout_s is not None
    assert second.timeout_s <= first.timeout_s
    flow.send([0.1, 0.7])  # dear: 3 before 2
    assert ids(flow) == ["3", "2", "1", "0", "4"]


def test_explain_shows_every_phases_scores_and_timing() -> None:
    flow = at_first_score()
    flow.send([0.1, 0.2, 0.9, 0.8])
    flow.send([0.1, 0.7])
    answer = flow.done().answer
    summary = answer["rerank"]
    assert summary["status"] == "ok"
    assert [
        (p["model"], p["window_size"], p["status"], p["reranked"]) for p in summary["phases"]
    ] == [
        ("cheap", 4, "reranked", 4),
        ("dear", 2, "reranked", 2),
    ]
    assert all(p["ms"] >= 0 for p in summary["phases"])
    top = answer["hits"]["hits"][0]["_rerank"]
    assert top["phases"] == [
        {"model_score": 0.8, "fused_score": 0.8},
        {"model_score": 0.7, "fused_score": 0.7},
    ]
    third = answer["hits"]["hits"][2]["_rerank"]  # doc 1: only the first phase reached it
    assert (third["model_score"], third["phases"][1]) == (0.2, None)
    assert answer["hits"]["hits"][4]["_rerank"]["status"] == "beyond_window"


def test_a_failing_later_phase_leaves_the_first_phases_order() -> None:
    flow = at_first_score()
    flow.send([0.1, 0.2, 0.9, 0.8])
    flow.throw(ModelError("dear broke"))
    summary = flow.done().answer["rerank"]
    assert (ids(flow), summary["status"], [p["status"] for p in summary["phases"]]) == (
        ["2", "3", "1", "0", "4"],
        "partial",
        ["reranked", "model_error"],
    )
    assert "dear broke" in summary["phases"][1]["error"]


def test_a_failing_first_phase_lets_the_second_rerank_the_engine_top() -> None:
    flow = at_first_score()
    flow.throw(ModelError("cheap broke"))
    assert score_effect(flow).passages == ("title 0", "title 1")
    flow.send([0.1, 0.9])
    assert (ids(flow), flow.done().outcome.status) == (["1", "0", "2", "3", "4"], "partial")


def test_a_timeout_in_a_later_phase_keeps_the_previous_order() -> None:
    flow = at_first_score()
    flow.send([0.1, 0.2, 0.9, 0.8])
    flow.throw(TimeoutError())
    summary = flow.done().answer["rerank"]
    assert (ids(flow), [p["status"] for p in summary["phases"]]) == (
        ["2", "3", "1", "0", "4"],
        ["reranked", "timeout"],
    )


def test_a_timeout_in_the_first_phase_is_the_engine_order() -> None:
    flow = at_first_score()
    flow.throw(TimeoutError())
    summary = flow.done().answer["rerank"]
    assert (ids(flow), summary["status"], [p["status"] for p in summary["phases"]]) == (
        ["0", "1", "2", "3", "4"],
        "timeout",
        ["timeout", "skipped"],
    )


@pytest.mark.parametrize(
    ("failure", "raised"), [(ModelError("x"), ModelError), (TimeoutError(), RerankTimeout)]
)
def test_on_failure_error_raises_for_any_failing_phase(
    failure: Exception, raised: type[Exception]
) -> None:
    flow = at_first_score(on_failure="error")
    flow.send([0.1, 0.2, 0.9, 0.8])
    with pytest.raises(raised):
        flow.throw(failure)


def test_without_phases_a_section_scores_once_with_its_model() -> None:
    section = {"fields": ["title"], "model": "m", "window_size": 3}
    flow = Flow(rerank_flow(SearchRequest(BODY, RerankConfig.from_value(section))))
    flow.send(ENGINE)
    assert (score_effect(flow).model, len(score_effect(flow).passages)) == ("m", 3)
