"""The scorer's caches: bytes bounds, counters, keys that cannot serve a stale score, the token
cache's exact scores and the bi-encoder's embedding cache."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from bridge.proxy.settings import ScorerSettings
from bridge.scoring import BiEncoderScorer, CrossEncoderScorer, load_scorer
from bridge.scoring.lru import BytesLRU
from bridge.scoring.score_cache import ScoreCache

QUERY = "cordless drill"
PASSAGES = [
    "DEWALT 20V MAX cordless drill kit",
    "white porcelain dinner plates",
    "Ryobi ONE+ 18V cordless compact drill/driver kit with 1.5 Ah battery and charger",
    "garden hose 50 ft",
]


def _lru(max_bytes: int) -> BytesLRU[str, bytes]:
    return BytesLRU(max_bytes=max_bytes, size_of=lambda key, value: len(value))


def test_a_bytes_lru_never_holds_more_than_its_bytes() -> None:
    cache = _lru(100)
    for i in range(50):
        cache.put_many([str(i)], [b"x" * 30])
    assert (cache.bytes, len(cache), cache.evictions) == (90, 3, 47)


def test_a_bytes_lru_drops_the_least_recently_used_first() -> None:
    cache = _lru(60)
    cache.put_many(["a", "b"], [b"x" * 30, b"y" * 30])
    cache.get_many(["a"])
    cache.put_many(["c"], [b"z" * 30])
    assert cache.get_many(["a", "b", "c"]) == [b"x" * 30, None, b"z" * 30]


def test_a_bytes_lru_skips_an_entry_larger_than_itself() -> None:
    cache = _lru(10)
    cache.put_many(["big"], [b"x" * 11])
    assert (len(cache), cache.bytes) == (0, 0)


def test_a_bytes_lru_counts_hits_misses_and_evictions() -> None:
    cache = _lru(30)
    cache.put_many(["a", "b"], [b"x" * 20, b"y" * 20])
    cache.get_many(["a", "b", "c"])
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.evictions, stats.entries) == (1, 2, 1, 1)


def test_the_score_cache_is_bounded_by_bytes_as_well_as_entries() -> None:
    cache = ScoreCache(10_000, max_bytes=4_000)
    keys = [("model", "query", f"passage {i}") for i in range(1000)]
    cache.put_many(keys, [0.5] * 1000)
    assert 0 < len(cache) < 1000
    assert cache.stats().bytes <= 4_000


def test_the_proxys_default_score_cache_is_bounded_by_its_bytes_not_a_count() -> None:
    """The old default of 10,000 entries (4.5 MiB of 64) evicted a Zipf stream's scores."""
    defaults = ScorerSettings()
    cache = ScoreCache(defaults.cache_size, max_bytes=defaults.cache_bytes)
    pairs = 60_000  # 3,000 searches of 20 product titles
    keys = [("model", f"query {i // 20}", f"product title number {i} 18V") for i in range(pairs)]
    cache.put_many(keys, [0.5] * pairs)
    assert (len(cache), cache.evictions) == (pairs, 0)
    assert cache.stats().bytes <= defaults.cache_bytes


@pytest.fixture
def model_copy(nano_cross_encoder_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "nano"
    shutil.copytree(nano_cross_encoder_dir, target, ignore=shutil.ignore_patterns("*.optimized-*"))
    return target


def _load(directory: Path, max_length: int = 128) -> CrossEncoderScorer:
    scorer = load_scorer(directory, max_length=max_length, cache_size=100)
    assert isinstance(scorer, CrossEncoderScorer)
    return scorer


def test_a_replaced_model_file_never_reads_the_old_files_scores(model_copy: Path) -> None:
    before = _load(model_copy)
    before.score(QUERY, PASSAGES)
    (onnx,) = (p for p in model_copy.glob("*.onnx") if ".optimized-" not in p.name)
    replacement = model_copy / "replacement.tmp"
    shutil.copyfile(onnx, replacement)
    os.replace(replacement, onnx)  # same bytes, same name: another file all the same
    after = _load(model_copy)
    after.cache = before.cache  # even one shared cache keeps them apart
    after.score(QUERY, PASSAGES)
    assert before.identity != after.identity
    assert before.cache is not None
    assert before.cache.hits == 0


def test_a_replaced_tokenizer_file_never_reads_the_old_files_scores(model_copy: Path) -> None:
    before = _load(model_copy)
    before.score(QUERY, PASSAGES)
    tokenizer = model_copy / "tokenizer.json"
    replacement = model_copy / "tokenizer.tmp"
    shutil.copyfile(tokenizer, replacement)
    os.replace(replacement, tokenizer)  # another vocabulary would change every score
    after = _load(model_copy)
    after.cache = before.cache
    after.score(QUERY, PASSAGES)
    assert before.identity != after.identity
    assert before.cache is not None
    assert before.cache.hits == 0


def test_another_max_length_never_reads_the_scores_of_the_first(model_copy: Path) -> None:
    long, short = _load(model_copy, 128), _load(model_copy, 16)
    short.cache = long.cache
    long.score(QUERY, PASSAGES)
    scores = short.score(QUERY, PASSAGES)
    assert long.cache is not None
    assert long.cache.hits == 0
    assert scores != long.score(QUERY, PASSAGES)


def test_the_same_file_and_options_share_cached_scores(model_copy: Path) -> None:
    first, second = _load(model_copy), _load(model_copy)
    second.cache = first.cache
    first.score(QUERY, PASSAGES)
    second.score(QUERY, PASSAGES)
    assert first.cache is not None
    assert first.cache.hits == len(PASSAGES)


def test_scores_through_the_token_cache_equal_the_uncached_scores(
    homedepot_cross_encoder_dir: Path,
) -> None:
    cached = load_scorer(homedepot_cross_encoder_dir, max_length=64)
    plain = load_scorer(homedepot_cross_encoder_dir, max_length=64, token_cache_bytes=0)
    cached.score("warm up", PASSAGES)  # the second call reads every passage from the cache
    assert cached.score(QUERY, PASSAGES) == plain.score(QUERY, PASSAGES)
    assert cached.cache_stats()["token"].hits == len(PASSAGES)


def test_the_bi_encoder_embeds_a_text_once_however_often_it_comes_back(
    bi_encoder_dir: Path,
) -> None:
    scorer = load_scorer(bi_encoder_dir, max_length=128)
    assert isinstance(scorer, BiEncoderScorer)
    first = scorer.score(QUERY, PASSAGES)
    tokenized = scorer.tokenize_seconds()
    again = scorer.score(QUERY, PASSAGES)
    stats = scorer.cache_stats()["embedding"]
    assert (again, scorer.tokenize_seconds(), stats.misses, stats.hits) == (
        first,
        tokenized,
        len(PASSAGES) + 1,
        len(PASSAGES) + 1,
    )


def test_cached_embeddings_match_fresh_ones(bi_encoder_dir: Path) -> None:
    cached = load_scorer(bi_encoder_dir, max_length=128)
    fresh = load_scorer(bi_encoder_dir, max_length=128, embedding_cache_bytes=0)
    cached.embed(PASSAGES[:2])
    assert np.allclose(cached.embed(PASSAGES), fresh.embed(PASSAGES), atol=1e-3)
