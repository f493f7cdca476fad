"""The flow with ``chunking``: the Score effect carries it, a chunked result explains windows."""

from __future__ import annotations

from typing import Any

from bridge.chunking import BestWindow, ChunkedScores, ChunkingConfig
from bridge.pipeline.flow import Flow, Score
from tests.unit.test_flow import ENGINE, at_score, pending

CHUNKING = {"tokens": 64, "stride": 48, "aggregate": "max"}


def windows(*scores: float) -> ChunkedScores:
    best = [
        BestWindow(i, 3, 2, (48, 112), (200, 460), f"window of title {i}", s)
        for i, s in enumerate(scores)
    ]
    return ChunkedScores(list(scores), best)


def finished(flow: Flow, result: Any) -> Any:
    flow.send(result)
    return flow.done().answer


def test_the_score_effect_carries_the_chunking_config() -> None:
    effect = pending(at_score(chunking=CHUNKING), Score)
    assert effect.chunking == ChunkingConfig(tokens=64, stride=48, aggregate="max")
    assert pending(at_score(), Score).chunking is None


def test_explain_names_each_hit_s_best_window_and_the_summary_the_config() -> None:
    answer = finished(at_score(chunking=CHUNKING), windows(0.1, 0.9, 0.5))
    hits = answer["hits"]["hits"]
    assert [h["_id"] for h in hits] == ["1", "2", "0"]
    assert hits[0]["_rerank"]["best_window"] == {
        "index": 1,
        "windows": 3,
        "scored": 2,
        "tokens": [48, 112],
        "chars": [200, 460],
        "text": "window of title 1",
        "score": 0.9,
    }
    assert answer["rerank"]["chunking"] == {**CHUNKING, "size": None}


def test_without_chunking_explain_has_no_window_fields() -> None:
    answer = finished(at_score(), [0.1, 0.9, 0.5])
    assert "chunking" not in answer["rerank"]
    assert all("best_window" not in h["_rerank"] for h in answer["hits"]["hits"])


def test_a_chunked_result_for_the_wrong_number_of_passages_fails_open() -> None:
    answer = finished(at_score(chunking=CHUNKING), windows(0.1, 0.9))
    assert answer["rerank"]["status"] == "model_error"
    assert [h["_id"] for h in answer["hits"]["hits"]] == [h["_id"] for h in ENGINE["hits"]["hits"]]


def test_with_phases_explain_names_the_best_window_of_the_last_phase_that_scored_the_hit() -> None:
    from tests.unit.test_flow_phases import at_first_score, score_effect

    flow = at_first_score(chunking=CHUNKING)
    assert score_effect(flow).chunking == ChunkingConfig(tokens=64, stride=48, aggregate="max")
    flow.send(windows(0.1, 0.2, 0.9, 0.8))  # cheap: 2, 3, 1, 0
    second = windows(0.1, 0.7)  # dear scores positions 2 and 3: its windows are indexed 0 and 1
    flow.send(second)
    hits = {h["_id"]: h["_rerank"] for h in flow.done().answer["hits"]["hits"]}
    assert hits["3"]["best_window"]["text"] == "window of title 1"  # dear's, for its 2nd passage
    assert hits["2"]["best_window"]["text"] == "window of title 0"
    assert hits["1"]["best_window"]["text"] == "window of title 1"  # cheap's, not rescored
    assert "best_window" not in hits["4"]  # outside every phase
