"""Fusion formulas against hand computations."""

from __future__ import annotations

import pytest

from bridge.config import FusionConfig
from bridge.errors import ConfigError
from bridge.pipeline.fuse import fuse, fused_order, normalize, ranks

ENGINE = [10.0, 6.0, 2.0]
MODEL = [0.1, 0.9, 0.5]


def test_replace_returns_model_scores() -> None:
    assert fuse(ENGINE, MODEL, FusionConfig(method="replace")) == MODEL


def test_linear_minmax() -> None:
    # engine -> [1, 0.5, 0]; model -> [0, 1, 0.5]
    fused = fuse(ENGINE, MODEL, FusionConfig(method="linear", query_weight=0.2, rerank_weight=0.8))
    assert fused == pytest.approx([0.2, 0.1 + 0.8, 0.4])


def test_linear_zscore() -> None:
    # engine mean 6, std sqrt(32/3); model mean 0.5, std sqrt(0.32/3)
    se, sm = (32 / 3) ** 0.5, (0.32 / 3) ** 0.5
    expected = [
        0.5 * (10 - 6) / se + 0.5 * (0.1 - 0.5) / sm,
        0.5 * 0.0 + 0.5 * (0.9 - 0.5) / sm,
        0.5 * (2 - 6) / se + 0.0,
    ]
    fusion = FusionConfig(method="linear", normalize="zscore", query_weight=0.5, rerank_weight=0.5)
    assert fuse(ENGINE, MODEL, fusion) == pytest.approx(expected)


def test_linear_none_uses_raw_scores() -> None:
    fusion = FusionConfig(method="linear", normalize="none", query_weight=0.1, rerank_weight=2.0)
    assert fuse(ENGINE, MODEL, fusion) == pytest.approx([1.2, 2.4, 1.2])


def test_rrf() -> None:
    # engine ranks 1,2,3; model ranks 3,1,2; k=60
    expected = [1 / 61 + 1 / 63, 1 / 62 + 1 / 61, 1 / 63 + 1 / 62]
    assert fuse(ENGINE, MODEL, FusionConfig(method="rrf", rank_constant=60)) == pytest.approx(
        expected
    )


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("total", [2 * 10 + 3 * 0.1, 2 * 6 + 3 * 0.9, 2 * 2 + 3 * 0.5]),
        ("multiply", [20 * 0.3, 12 * 2.7, 4 * 1.5]),
        ("avg", [(20 + 0.3) / 2, (12 + 2.7) / 2, (4 + 1.5) / 2]),
        ("max", [20, 12, 4]),
        ("min", [0.3, 2.7, 1.5]),
    ],
)
def test_rescore_score_modes(mode: str, expected: list[float]) -> None:
    fusion = FusionConfig.from_value(
        {"method": "rescore", "score_mode": mode, "query_weight": 2, "rescore_query_weight": 3}
    )
    assert fuse(ENGINE, MODEL, fusion) == pytest.approx(expected)


def test_missing_engine_score_counts_as_zero() -> None:
    fusion = FusionConfig(method="rescore")
    assert fuse([None, 1.0], [0.5, 0.5], fusion) == pytest.approx([0.5, 1.5])


def test_length_mismatch_is_an_error() -> None:
    with pytest.raises(ConfigError):
        fuse([1.0], [0.1, 0.2], FusionConfig())


def test_minmax_of_equal_scores_is_one() -> None:
    assert normalize([3.0, 3.0], "minmax") == [1.0, 1.0]


def test_zscore_of_equal_scores_is_zero() -> None:
    assert normalize([3.0, 3.0], "zscore") == [0.0, 0.0]


def test_ranks_break_ties_in_input_order() -> None:
    assert ranks([0.5, 0.9, 0.5]) == [2, 1, 3]


def test_fused_order_breaks_ties_in_engine_order() -> None:
    assert fused_order([0.2, 0.7, 0.7, 0.1]) == [1, 2, 0, 3]
