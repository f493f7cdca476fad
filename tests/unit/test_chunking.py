"""Long passages as token windows: layout, aggregation, the best window, config errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bridge.errors import ConfigError
from bridge.scoring import CrossEncoderScorer, load_scorer
from bridge.scoring.chunking import ChunkingConfig, aggregate, window_starts

QUERY = "cordless drill"
FILLER = " ".join(["white porcelain dinner plates with a blue rim"] * 12)
LATE = f"{FILLER}. DEWALT 20V MAX cordless drill kit with two batteries"


@pytest.fixture(scope="module")
def trained(homedepot_cross_encoder_dir: Path) -> CrossEncoderScorer:
    scorer = load_scorer(homedepot_cross_encoder_dir, max_length=32)
    assert isinstance(scorer, CrossEncoderScorer)
    return scorer


def test_windows_start_every_stride_until_one_reaches_the_end() -> None:
    assert (window_starts(10, 4, 3), window_starts(4, 4, 3), window_starts(0, 4, 3)) == (
        [0, 3, 6],
        [0],
        [0],
    )


def test_a_passage_that_fits_scores_as_without_chunking(trained: CrossEncoderScorer) -> None:
    chunked = trained.score_chunked(QUERY, ["DEWALT drill"], ChunkingConfig(tokens=20, stride=10))
    assert (chunked.scores, chunked.windows) == (trained.score(QUERY, ["DEWALT drill"]), [1])


def test_maxp_finds_the_drill_past_the_cut_and_names_its_window(
    trained: CrossEncoderScorer,
) -> None:
    cut = trained.score(QUERY, [LATE])[0]
    chunked = trained.score_chunked(QUERY, [LATE], ChunkingConfig(tokens=24, stride=16))
    assert chunked.scores[0] > cut + 0.2
    assert chunked.best_window[0] == chunked.windows[0] - 1  # the last window holds the drill


def test_every_window_of_every_passage_is_scored(trained: CrossEncoderScorer) -> None:
    result = trained.score_chunked(QUERY, [LATE, "drill"], ChunkingConfig(tokens=24, stride=16))
    assert (result.windows[0] > 3, result.windows[1], len(result.scores)) == (True, 1, 2)


def test_first_and_mean_aggregate_the_windows() -> None:
    scores = np.array([0.2, 0.8, 0.5, 0.9])
    spans = [(0, 4), (3, 7), (6, 9), (0, 2)]
    first = aggregate(scores, [0, 0, 0, 1], spans, 2, "first")
    mean = aggregate(scores, [0, 0, 0, 1], spans, 2, "mean")
    assert (first.scores, mean.scores, first.best_window, first.spans) == (
        [0.2, 0.9],
        [pytest.approx(0.5), 0.9],
        [1, 0],
        [(3, 7), (0, 2)],
    )


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ({"tokens": 0}, "rerank.chunking.tokens"),
        ({"tokens": 64, "stride": 65}, "rerank.chunking.stride"),
        ({"aggregate": "median"}, "rerank.chunking.aggregate"),
        ({"size": 3}, "rerank.chunking"),
        ("max", "rerank.chunking"),
    ],
)
def test_bad_chunking_is_a_config_error_naming_the_field(value: object, field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ChunkingConfig.from_value(value)
    assert caught.value.field == field
