"""Long passages as token windows: layout, word edges, BM25 pick, aggregation, config errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bridge.chunking import (
    ChunkingConfig,
    Window,
    aggregate,
    best_matching,
    fitted,
    passage_windows,
)
from bridge.config import RerankConfig
from bridge.errors import ConfigError
from bridge.scoring import BiEncoderScorer, CrossEncoderScorer, load_scorer

QUERY = "cordless drill"
FILLER = " ".join(["white porcelain dinner plates with a blue rim"] * 12)
LATE = f"{FILLER}. DEWALT 20V MAX cordless drill kit with two batteries"


@pytest.fixture(scope="module")
def trained(homedepot_cross_encoder_dir: Path) -> CrossEncoderScorer:
    scorer = load_scorer(homedepot_cross_encoder_dir, max_length=32, cache_size=0)
    assert isinstance(scorer, CrossEncoderScorer)
    return scorer


@pytest.fixture(scope="module")
def bi(bi_encoder_dir: Path) -> BiEncoderScorer:
    scorer = load_scorer(bi_encoder_dir, max_length=32)
    assert isinstance(scorer, BiEncoderScorer)
    return scorer


def test_windows_start_every_stride_until_one_reaches_the_end() -> None:
    offsets = [(i, i + 1) for i in range(10)]
    found = passage_windows(0, "abcdefghij", offsets, list(range(10)), 4, 3)
    assert [w.tokens for w in found] == [(0, 4), (3, 7), (6, 10)]
    assert [w.text for w in found] == ["abcd", "defg", "ghij"]
    assert [w.tokens for w in passage_windows(0, "", [], [], 4, 3)] == [(0, 0)]


def test_windows_shrink_to_the_room_left_and_the_stride_in_proportion() -> None:
    chunking = ChunkingConfig(tokens=128, stride=96)
    assert (fitted(chunking, 500), fitted(chunking, 64), fitted(chunking, 0)) == (
        (128, 96),
        (64, 48),
        (1, 1),
    )


def test_window_edges_move_to_word_boundaries_and_no_word_is_lost() -> None:
    # "unbelievable" is 3 tokens of word 1: a window neither starts nor ends inside it
    offsets = [(0, 3), (4, 6), (6, 10), (10, 16), (17, 21), (22, 24)]
    words: list[int | None] = [0, 1, 1, 1, 2, 3]
    found = passage_windows(0, "the unbelievable feat is", offsets, words, 3, 2)
    assert [(w.tokens, w.text) for w in found] == [
        ((0, 1), "the"),
        ((1, 4), "unbelievable"),
        ((4, 6), "feat is"),
    ]


def test_a_window_inside_one_long_word_keeps_its_token_edges() -> None:
    offsets = [(0, 2), (2, 4), (4, 6), (6, 8)]
    found = passage_windows(0, "abcdefgh", offsets, [0, 0, 0, 0], 2, 2)
    assert [(w.tokens, w.text) for w in found] == [((0, 2), "abcd"), ((2, 4), "efgh")]


def test_bm25_picks_the_windows_holding_the_query_terms_in_passage_order() -> None:
    windows = [[1, 2, 3], [4, 5, 6], [7, 8, 9, 4], [4, 4, 9]]
    assert best_matching(windows, [9, 4], 2) == [2, 3]
    assert best_matching(windows, [42], 2) == [0, 1]  # no match: the leading windows


def test_a_passage_that_fits_scores_as_without_chunking(trained: CrossEncoderScorer) -> None:
    chunked = trained.score_chunked(QUERY, ["DEWALT drill"], ChunkingConfig(tokens=20, stride=10))
    assert (chunked.scores, chunked.windows) == (trained.score(QUERY, ["DEWALT drill"]), [1])
    assert chunked.best[0].text == "DEWALT drill"


def test_maxp_finds_the_drill_past_the_cut_and_names_its_window(
    trained: CrossEncoderScorer,
) -> None:
    cut = trained.score(QUERY, [LATE])[0]
    chunked = trained.score_chunked(QUERY, [LATE], ChunkingConfig(tokens=24, stride=16))
    best = chunked.best[0]
    assert chunked.scores[0] > cut + 0.2
    assert best.index == best.windows - 1  # the last window holds the drill
    assert "cordless drill" in best.text
    assert LATE[best.chars[0] : best.chars[1]] == best.text
    assert best.score == chunked.scores[0]


def test_windows_cover_the_passage_and_each_fits_beside_the_query(
    trained: CrossEncoderScorer,
) -> None:
    found = trained.windows(QUERY, [LATE], ChunkingConfig(tokens=24, stride=16))
    spans = [w.tokens for w in found.windows]
    covered = {t for start, end in spans for t in range(start, end)}
    assert covered == set(range(spans[-1][1]))
    lengths = trained._tokenizer.encode_pairs([(QUERY, w.text) for w in found.windows]).lengths
    assert max(lengths) <= trained.max_length
    assert (found.totals, len(found.windows)) == ([len(spans)], len(spans))


def test_every_window_of_every_passage_is_scored(trained: CrossEncoderScorer) -> None:
    result = trained.score_chunked(QUERY, [LATE, "drill"], ChunkingConfig(tokens=24, stride=16))
    assert (result.windows[0] > 3, result.windows[1], len(result.scores)) == (True, 1, 2)


def test_size_scores_only_the_best_matching_windows(trained: CrossEncoderScorer) -> None:
    every = trained.score_chunked(QUERY, [LATE], ChunkingConfig(tokens=24, stride=16))
    two = trained.score_chunked(QUERY, [LATE], ChunkingConfig(tokens=24, stride=16, size=2))
    assert (two.best[0].scored, two.best[0].windows) == (2, every.best[0].windows)
    assert two.best[0] == every.best[0].__class__(**{**vars(every.best[0]), "scored": 2})


def test_first_and_mean_aggregate_the_windows() -> None:
    windows = [
        Window(0, 0, (0, 4), (0, 10), "a"),
        Window(0, 1, (3, 7), (8, 20), "b"),
        Window(0, 2, (6, 9), (18, 30), "c"),
        Window(1, 0, (0, 2), (0, 5), "d"),
    ]
    scores = [0.2, 0.8, 0.5, 0.9]
    first = aggregate(windows, scores, [3, 1], "first")
    mean = aggregate(windows, scores, [3, 1], "mean")
    top = aggregate(windows, scores, [3, 1], "max")
    assert (first.scores, mean.scores, top.scores) == (
        [0.2, 0.9],
        [pytest.approx(0.5), 0.9],
        [0.8, 0.9],
    )
    assert [b.text for b in first.best] == ["b", "d"]  # the best window, whatever the aggregate


def test_a_bi_encoder_scores_a_passage_by_its_best_window_embedding(bi: BiEncoderScorer) -> None:
    chunking = ChunkingConfig(tokens=24, stride=16)
    found = bi.windows(QUERY, [LATE], chunking)
    per_window = bi.score(QUERY, [w.text for w in found.windows])
    chunked = bi.score_chunked(QUERY, [LATE], chunking)
    assert chunked.scores == [max(per_window)]
    assert chunked.scores[0] > bi.score(QUERY, [LATE])[0]
    assert "drill" in chunked.best[0].text


def test_chunking_true_is_the_defaults_and_stride_defaults_to_three_quarters() -> None:
    config = RerankConfig.from_value({"chunking": True})
    assert config.chunking == ChunkingConfig(tokens=128, stride=96, aggregate="max")
    assert ChunkingConfig.from_value({"tokens": 64}) == ChunkingConfig(tokens=64, stride=48)
    assert RerankConfig.from_value({"chunking": False}).chunking is None
    assert RerankConfig().to_dict()["chunking"] is None


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ({"tokens": 0}, "rerank.chunking.tokens"),
        ({"tokens": "64"}, "rerank.chunking.tokens"),
        ({"tokens": 64, "stride": 65}, "rerank.chunking.stride"),
        ({"stride": 0}, "rerank.chunking.stride"),
        ({"aggregate": "median"}, "rerank.chunking.aggregate"),
        ({"size": 0}, "rerank.chunking.size"),
        ({"size": True}, "rerank.chunking.size"),
        ({"overlap": 3}, "rerank.chunking.overlap"),
        ("max", "rerank.chunking"),
        (128, "rerank.chunking"),
    ],
)
def test_bad_chunking_is_a_config_error_naming_the_field(value: Any, field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        RerankConfig.from_value({"chunking": value})
    assert caught.value.field == field


def test_the_ranker_chunks_and_names_each_result_s_best_window(
    homedepot_cross_encoder_dir: Path,
) -> None:
    from bridge.ranker import Ranker, RerankRequest

    ranker = Ranker(
        str(homedepot_cross_encoder_dir), max_length=32, chunking={"tokens": 24, "stride": 16}
    )
    passages = [{"id": 1, "text": "porcelain soup bowls"}, {"id": 2, "text": LATE}]
    results = ranker.rerank(RerankRequest(query=QUERY, passages=passages))
    assert [r["id"] for r in results] == [2, 1]
    assert "cordless drill" in results[0]["best_window"]["text"]
    with pytest.raises(ConfigError) as caught:
        Ranker(str(homedepot_cross_encoder_dir), chunking={"tokens": -1})
    assert caught.value.field == "chunking.tokens"
