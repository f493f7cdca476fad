"""Fusion invariants over arbitrary score windows."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.config import FusionConfig
from bridge.pipeline.fuse import beyond_window_scores, fuse, fused_order, normalize, ranks

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)
unit = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)


@st.composite
def windows(draw: st.DrawFn) -> tuple[list[float], list[float]]:
    n = draw(st.integers(1, 40))
    return draw(st.lists(finite, min_size=n, max_size=n)), draw(
        st.lists(unit, min_size=n, max_size=n)
    )


@given(windows())
def test_replace_is_the_model_score(window: tuple[list[float], list[float]]) -> None:
    engine, model = window
    assert fuse(engine, model, FusionConfig(method="replace")) == model


@given(windows())
def test_minmax_stays_within_unit_interval(window: tuple[list[float], list[float]]) -> None:
    engine, _ = window
    assert all(0.0 <= v <= 1.0 for v in normalize(engine, "minmax"))


@given(windows())
def test_linear_without_engine_weight_orders_like_the_model(
    window: tuple[list[float], list[float]],
) -> None:
    engine, model = window
    fused = fuse(engine, model, FusionConfig(method="linear", query_weight=0.0, rerank_weight=1.0))
    ordered = [model[i] for i in fused_order(fused)]
    assert ordered == sorted(model, reverse=True)


@given(windows())
def test_rrf_score_is_bounded_by_two_over_k_plus_one(
    window: tuple[list[float], list[float]],
) -> None:
    engine, model = window
    fused = fuse(engine, model, FusionConfig(method="rrf", rank_constant=60))
    assert all(0.0 < v <= 2.0 / 61 + 1e-12 for v in fused)


@given(st.lists(finite, min_size=1, max_size=40))
def test_ranks_are_a_permutation(values: list[float]) -> None:
    assert sorted(ranks(values)) == list(range(1, len(values) + 1))


COMBINE = {
    "total": lambda a, b: a + b,
    "multiply": lambda a, b: a * b,
    "avg": lambda a, b: (a + b) / 2,
    "max": max,
    "min": min,
}
weights = st.floats(min_value=0.0, max_value=10.0, allow_nan=False)


@given(windows(), st.sampled_from(sorted(COMBINE)), weights, weights)
def test_rescore_is_lucenes_float32_arithmetic(
    window: tuple[list[float], list[float]], mode: str, qw: float, rw: float
) -> None:
    """Each step rounded to float32 as Java's float math does: QueryRescorer's combine."""
    engine, model = window
    fusion = FusionConfig(
        method="rescore",
        score_mode=mode,  # type: ignore[arg-type]
        query_weight=qw,
        rescore_query_weight=rw,
    )
    f32 = np.float32
    expected = [
        COMBINE[mode](f32(a) * f32(qw), f32(b) * f32(rw))
        for a, b in zip(engine, model, strict=True)
    ]
    got = fuse(engine, model, fusion)
    assert [f32(v) for v in got] == expected
    # ... and within float32 rounding of the same formula in exact arithmetic.
    exact = [COMBINE[mode](qw * a, rw * b) for a, b in zip(engine, model, strict=True)]
    assert got == pytest.approx(exact, rel=1e-6, abs=1e-6)


@given(st.lists(finite, min_size=1, max_size=40), weights)
def test_rescore_beyond_the_window_is_query_weight_times_engine_score(
    engine: list[float], qw: float
) -> None:
    fusion = FusionConfig(method="rescore", query_weight=qw)
    got = beyond_window_scores(engine, fusion)
    assert [np.float32(v) for v in got] == [np.float32(a) * np.float32(qw) for a in engine]


def test_rescore_outside_float32_range_falls_back_to_64_bit() -> None:
    fusion = FusionConfig(method="rescore", query_weight=2.0)
    assert fuse([1e39], [0.5], fusion) == [2e39 + 0.5]
    assert beyond_window_scores([1e39, None], fusion) == [2e39, 0.0]
