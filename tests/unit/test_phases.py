"""Phased reranking driven by hand: order, per-phase fusion, fail-open per phase, one budget."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from bridge.config import FusionConfig
from bridge.errors import ConfigError, ModelError
from bridge.pipeline.phases import Phase, parse_phases, run_phases

TEXTS = [f"doc{i}" for i in range(6)]
ENGINE = [6.0, 5.0, 4.0, 3.0, 2.0, 1.0]
REPLACE = FusionConfig()


def by_name(table: dict[str, dict[str, float]]):  # type: ignore[no-untyped-def]
    calls: list[tuple[str, list[str]]] = []

    def score(phase: Phase, query: str, passages: list[str], left: float | None) -> list[float]:
        calls.append((phase.model, passages))
        if phase.model == "broken":
            raise ModelError("cannot run")
        return [table[phase.model][p] for p in passages]

    return score, calls


CHEAP = {f"doc{i}": s for i, s in enumerate([0.1, 0.2, 0.9, 0.8, 0.7, 0.3])}
DEAR = {f"doc{i}": s for i, s in enumerate([0.5, 0.5, 0.1, 0.2, 0.9, 0.5])}


def test_the_second_phase_reorders_only_the_top_of_the_first() -> None:
    score, calls = by_name({"cheap": CHEAP, "dear": DEAR})
    phases = [Phase("cheap", 5), Phase("dear", 2)]
    result = run_phases("q", TEXTS, ENGINE, phases, score, fusion=REPLACE)
    # cheap over doc0-4: 2, 3, 4, 1, 0 then doc5; dear over the top 2 (doc2, doc3): doc3 first
    assert (result.order, calls[1]) == ([3, 2, 4, 1, 0, 5], ("dear", ["doc2", "doc3"]))


def test_every_phase_reports_its_scores_and_status() -> None:
    score, _ = by_name({"cheap": CHEAP, "dear": DEAR})
    result = run_phases(
        "q", TEXTS, ENGINE, [Phase("cheap", 5), Phase("dear", 2)], score, fusion=REPLACE
    )
    assert [(r.status, sorted(r.model_scores)) for r in result.reports] == [
        ("reranked", [0, 1, 2, 3, 4]),
        ("reranked", [2, 3]),
    ]


def test_a_failing_phase_leaves_the_previous_order_and_later_phases_go_on() -> None:
    score, _ = by_name({"dear": DEAR})
    result = run_phases(
        "q", TEXTS, ENGINE, [Phase("broken", 5), Phase("dear", 2)], score, fusion=REPLACE
    )
    # the engine order stands after the broken phase; dear reorders the engine's top 2
    assert ([r.status for r in result.reports], result.order, result.status) == (
        ["error", "reranked"],
        [0, 1, 2, 3, 4, 5],
        "error",
    )


def test_a_phase_past_the_budget_keeps_the_previous_phases_order() -> None:
    now = [0.0]

    def clock() -> float:
        return now[0]

    def score(phase: Phase, query: str, passages: list[str], left: float | None) -> list[float]:
        now[0] += 0.08  # each phase takes 80 ms
        table = CHEAP if phase.model == "cheap" else DEAR
        return [table[p] for p in passages]

    result = run_phases(
        "q",
        TEXTS,
        ENGINE,
        [Phase("cheap", 5), Phase("dear", 2)],
        score,
        fusion=REPLACE,
        timeout_ms=100,
        clock=clock,
    )
    assert ([r.status for r in result.reports], result.order, result.status) == (
        ["reranked", "timeout"],
        [2, 3, 4, 1, 0, 5],
        "partial",
    )


def test_each_phase_fuses_with_the_score_the_previous_phase_left() -> None:
    seen: list[Sequence[float]] = []

    def score(phase: Phase, query: str, passages: list[str], left: float | None) -> list[float]:
        return [1.0 if p == "doc1" else 0.0 for p in passages]

    rrf = FusionConfig(method="rrf")
    result = run_phases(
        "q",
        TEXTS[:3],
        ENGINE[:3],
        [Phase("a", 3), Phase("b", 2, fusion=rrf)],
        score,
        fusion=REPLACE,
    )
    seen.append([result.reports[1].fused_scores[i] for i in result.order[:2]])
    # phase a (replace) puts doc1 first; phase b fuses by rrf over phase a's scores
    assert (result.order[0], seen[0][0] > seen[0][1]) == (1, True)


def test_phases_parse_from_the_request_shape() -> None:
    phases = parse_phases(
        [
            {"model": "ms-marco-TinyBERT-L-2-v2", "window_size": 100},
            {"model": "ms-marco-MiniLM-L-12-v2", "window_size": 20, "fusion": "rrf"},
        ]
    )
    assert [(p.model, p.window_size, p.fusion and p.fusion.method) for p in phases] == [
        ("ms-marco-TinyBERT-L-2-v2", 100, None),
        ("ms-marco-MiniLM-L-12-v2", 20, "rrf"),
    ]


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ([], "rerank.phases"),
        ("nano", "rerank.phases"),
        ([{"model": "a"}], "rerank.phases[0].window_size"),
        ([{"window_size": 3}], "rerank.phases[0].model"),
        (
            [{"model": "a", "window_size": 5}, {"model": "b", "window_size": 9}],
            "rerank.phases[1].window_size",
        ),
        ([{"model": "a", "window_size": 5, "colour": 1}], "rerank.phases[0]"),
        (
            [{"model": "a", "window_size": 5, "fusion": {"method": "nope"}}],
            "rerank.phases[0].fusion.method",
        ),
    ],
)
def test_bad_phases_are_config_errors_naming_the_field(value: object, field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_phases(value)
    assert caught.value.field == field
