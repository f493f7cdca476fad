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
