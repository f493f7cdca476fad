"""Fusion invariants over arbitrary score windows."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bridge.config import FusionConfig
from bridge.pipeline.fuse import fuse, fused_order, normalize, ranks

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


@given(windows(), st.sampled_from(["total", "multiply", "avg", "max", "min"]))
def test_rescore_with_unit_weights_matches_es_score_mode(
    window: tuple[list[float], list[float]], mode: str
) -> None:
    engine, model = window
    fusion = FusionConfig(method="rescore", score_mode=mode)  # type: ignore[arg-type]
    combine = {
        "total": lambda a, b: a + b,
        "multiply": lambda a, b: a * b,
        "avg": lambda a, b: (a + b) / 2,
        "max": max,
        "min": min,
    }[mode]
    assert fuse(engine, model, fusion) == [
        combine(a, b) for a, b in zip(engine, model, strict=True)
    ]
