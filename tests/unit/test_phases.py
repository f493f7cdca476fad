"""Phased reranking driven by hand: order, per-phase fusion, fail-open per phase, one budget,
and the `phases` field of the rerank section."""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from typing import Any

import pytest

from bridge.config import FusionConfig, PhaseConfig, RerankConfig, parse_phases
from bridge.errors import ConfigError, ModelError
from bridge.pipeline.effects import Score
from bridge.pipeline.phases import PhasedOrder, run_phases

TEXTS = [f"doc{i}" for i in range(6)]
ENGINE: list[float | None] = [6.0, 5.0, 4.0, 3.0, 2.0, 1.0]
REPLACE = FusionConfig()
CHEAP = {f"doc{i}": s for i, s in enumerate([0.1, 0.2, 0.9, 0.8, 0.7, 0.3])}
DEAR = {f"doc{i}": s for i, s in enumerate([0.5, 0.5, 0.1, 0.2, 0.9, 0.5])}
TABLES = {"cheap": CHEAP, "dear": DEAR}


def drive(
    gen: Generator[Score, Any, PhasedOrder], perform: Callable[[Score], Sequence[float]]
) -> tuple[PhasedOrder, list[Score]]:
    """Perform each Score effect as a door would: its result in, its exception thrown in."""
    seen: list[Score] = []
    try:
        effect = next(gen)
        while True:
            seen.append(effect)
            try:
                value = perform(effect)
            except Exception as exc:
                effect = gen.throw(exc)
            else:
                effect = gen.send(value)
    except StopIteration as stop:
        return stop.value, seen


def by_table(effect: Score) -> list[float]:
    if effect.model == "broken":
        raise ModelError("cannot run")
    if effect.model == "slow":
        raise TimeoutError
    return [TABLES[effect.model][p] for p in effect.passages]


def phased(*phases: PhaseConfig, **kwargs: Any) -> Generator[Score, Any, PhasedOrder]:
    options: dict[str, Any] = {"fusion": REPLACE, "max_length": None, "deadline": None}
    options.update(kwargs)
    return run_phases("q", TEXTS, ENGINE, phases, **options)


def test_the_second_phase_reorders_only_the_top_of_the_first() -> None:
    result, seen = drive(phased(PhaseConfig("cheap", 5), PhaseConfig("dear", 2)), by_table)
    # cheap over doc0-4: 2, 3, 4, 1, 0 then doc5; dear over the top 2 (doc2, doc3): doc3 first
    assert (result.order, seen[1].model, seen[1].passages) == (
        [3, 2, 4, 1, 0, 5],
        "dear",
        ("doc2", "doc3"),
    )


def test_each_phase_is_one_score_effect_with_its_model_and_max_length() -> None:
    _, seen = drive(
        phased(PhaseConfig("cheap", 5, max_length=64), PhaseConfig("dear", 2), max_length=128),
        by_table,
    )
    assert [(e.model, e.max_length, len(e.passages)) for e in seen] == [
        ("cheap", 64, 5),
        ("dear", 128, 2),
    ]


def test_every_phase_reports_its_scores_and_status() -> None:
    result, _ = drive(phased(PhaseConfig("cheap", 5), PhaseConfig("dear", 2)), by_table)
    assert [(r.status, sorted(r.model_scores)) for r in result.reports] == [
        ("reranked", [0, 1, 2, 3, 4]),
        ("reranked", [2, 3]),
    ]
    assert result.last_model_scores()[3] == DEAR["doc3"]


def test_a_failing_phase_leaves_the_previous_order_and_later_phases_go_on() -> None:
    result, _ = drive(phased(PhaseConfig("broken", 5), PhaseConfig("dear", 2)), by_table)
    # the engine order stands after the broken phase; dear reorders the engine's top 2
    assert ([r.status for r in result.reports], result.order, result.reranked) == (
        ["model_error", "reranked"],
        [0, 1, 2, 3, 4, 5],
        True,
    )
    assert "cannot run" in (result.reports[0].reason or "")


def test_a_phase_that_times_out_keeps_the_previous_order_and_ends_the_run() -> None:
    result, seen = drive(
        phased(PhaseConfig("cheap", 5), PhaseConfig("slow", 3), PhaseConfig("dear", 2)), by_table
    )
    assert ([r.status for r in result.reports], result.order, len(seen)) == (
        ["reranked", "timeout", "skipped"],
        [2, 3, 4, 1, 0, 5],
        2,
    )


def test_a_phase_past_the_budget_keeps_the_previous_phases_order() -> None:
    now = [0.0]

    def slow(effect: Score) -> list[float]:
        now[0] += 0.08  # each phase takes 80 ms: the second ends past the 100 ms deadline
        if effect.timeout_s is not None and effect.timeout_s < 0.08:
            raise TimeoutError  # what a door does when the effect's budget runs out
        return by_table(effect)

    result, seen = drive(
        phased(PhaseConfig("cheap", 5), PhaseConfig("dear", 2), deadline=0.1, clock=lambda: now[0]),
        slow,
    )
    assert ([r.status for r in result.reports], result.order) == (
        ["reranked", "timeout"],
        [2, 3, 4, 1, 0, 5],
    )
    # the second phase was offered what was left of the one budget
    assert seen[0].timeout_s == pytest.approx(0.1)
    assert seen[1].timeout_s == pytest.approx(0.02)


def test_no_budget_left_means_the_phase_is_not_asked_to_score() -> None:
    result, seen = drive(phased(PhaseConfig("cheap", 5), deadline=1.0, clock=lambda: 2.0), by_table)
    assert (len(seen), result.reports[0].status, result.order) == (0, "timeout", list(range(6)))


def test_each_phase_fuses_with_the_score_the_previous_phase_left() -> None:
    def doc1_best(effect: Score) -> list[float]:
        return [1.0 if p == "doc1" else 0.0 for p in effect.passages]

    rrf = FusionConfig(method="rrf")
    result, _ = drive(phased(PhaseConfig("a", 3), PhaseConfig("b", 2, fusion=rrf)), doc1_best)
    # phase a (replace) puts doc1 first; phase b fuses by rrf over phase a's ranks and its own
    fused = result.reports[1].fused_scores
    assert (result.order[0], fused[1]) == (1, pytest.approx(1 / 61 + 1 / 61))


def test_phases_parse_from_the_request_shape() -> None:
    config = RerankConfig.from_value(
        {
            "phases": [
                {"model": "ms-marco-TinyBERT-L-2-v2", "window_size": 100},
                {"model": "ms-marco-MiniLM-L-12-v2", "window_size": 20, "fusion": "rrf"},
            ]
        }
    )
    assert [(p.model, p.window_size, p.fusion and p.fusion.method) for p in config.phases] == [
        ("ms-marco-TinyBERT-L-2-v2", 100, None),
        ("ms-marco-MiniLM-L-12-v2", 20, "rrf"),
    ]
    # the first phase's window is the window; every model is listed
    assert (config.window_size, config.models) == (
        100,
        ("ms-marco-TinyBERT-L-2-v2", "ms-marco-MiniLM-L-12-v2"),
    )


def test_a_section_naming_one_model_replaces_the_defaults_phases() -> None:
    defaults = {"phases": [{"model": "a", "window_size": 50}, {"model": "b", "window_size": 10}]}
    assert RerankConfig.from_value({"window_size": 30}, defaults).phases == ()
    assert RerankConfig.from_value(True, defaults).window_size == 50


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ({"phases": []}, "rerank.phases"),
        ({"phases": "nano"}, "rerank.phases"),
        ({"phases": [{"model": "a"}]}, "rerank.phases[0].window_size"),
        ({"phases": [{"window_size": 3}]}, "rerank.phases[0].model"),
        ({"phases": [{"model": "a", "window_size": 0}]}, "rerank.phases[0].window_size"),
        (
            {"phases": [{"model": "a", "window_size": 5}, {"model": "b", "window_size": 9}]},
            "rerank.phases[1].window_size",
        ),
        ({"phases": [{"model": "a", "window_size": 5, "colour": 1}]}, "rerank.phases[0].colour"),
        (
            {"phases": [{"model": "a", "window_size": 5, "fusion": {"method": "nope"}}]},
            "rerank.phases[0].fusion.method",
        ),
        (
            {"phases": [{"model": "a", "window_size": 5, "max_length": 0}]},
            "rerank.phases[0].max_length",
        ),
        ({"phases": [{"model": "", "window_size": 5}]}, "rerank.phases[0].model"),
        ({"phases": [{"model": "a", "window_size": 5}] * 5}, "rerank.phases"),
        ({"phases": [{"model": "a", "window_size": 5}], "window_size": 9}, "rerank.window_size"),
        ({"phases": [{"model": "a", "window_size": 5}], "min_score": 0.1}, "rerank.min_score"),
        ({"phases": [{"model": "a", "window_size": 900}]}, "rerank.window_size"),
    ],
)
def test_bad_phases_are_config_errors_naming_the_field(value: object, field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        RerankConfig.from_value(value)  # type: ignore[arg-type]
    assert caught.value.field == field


def test_parse_phases_accepts_built_phases() -> None:
    built = (PhaseConfig("a", 9), PhaseConfig("b", 3))
    assert parse_phases(list(built)) == built
