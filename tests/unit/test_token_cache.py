"""Pairs assembled from cached passage token ids equal `tokenizers`' own pair encoding, token for
token, on every judged pair of the Home Depot and TREC-DL data at several max_lengths."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from bridge.eval.datasets import load_beir, load_homedepot
from bridge.scoring.token_cache import PairTemplate
from bridge.scoring.tokenize import PairTokenizer, Tokens

MAX_LENGTHS = (16, 64, 256)
CHUNK = 4096  # pairs per encode call: bounded memory, both cores busy inside tokenizers


def _pairs_of(dataset_pairs: list[tuple[str, str]]) -> Iterator[list[tuple[str, str]]]:
    for start in range(0, len(dataset_pairs), CHUNK):
        yield dataset_pairs[start : start + CHUNK]


def _split(tokens: Tokens) -> list[tuple[list[int], list[int]]]:
    bounds = np.concatenate([[0], np.cumsum(tokens.lengths)])
    return [
        (tokens.ids[a:b].tolist(), tokens.type_ids[a:b].tolist())
        for a, b in itertools.pairwise(bounds)
    ]


def _first_difference(
    pairs: list[tuple[str, str]], cached: Tokens, reference: Tokens
) -> tuple[str, str] | None:
    for pair, got, want in zip(pairs, _split(cached), _split(reference), strict=True):
        if got != want:
            return pair
    return None


def _assert_same_tokens(tokenizer_path: Path, pairs: list[tuple[str, str]]) -> None:
    for max_length in MAX_LENGTHS:
        cached = PairTokenizer(tokenizer_path, max_length=max_length)
        reference = PairTokenizer(tokenizer_path, max_length=max_length, token_cache_bytes=0)
        assert cached.token_cache is not None
        assert reference.token_cache is None
        for chunk in _pairs_of(pairs):
            got, want = cached.encode_pairs(chunk), reference.encode_pairs(chunk)
            same = (
                np.array_equal(got.lengths, want.lengths)
                and np.array_equal(got.ids, want.ids)
                and np.array_equal(got.type_ids, want.type_ids)
            )
            if not same:
                differing = _first_difference(chunk, got, want)
                pytest.fail(f"max_length {max_length}: pair {differing!r} differs")


@pytest.fixture(scope="module")
def homedepot_pairs(homedepot_dir: Path) -> list[tuple[str, str]]:
    data = load_homedepot(homedepot_dir)
    return [
        (data.queries[qid], data.corpus[pid]["title"])
        for qid, judged in data.qrels.items()
        for pid in judged
        if pid in data.corpus
    ]


@pytest.fixture(scope="module")
def dl19_pairs(msmarco_dir: Path) -> list[tuple[str, str]]:
    data = load_beir(msmarco_dir)
    pairs = []
    for qid, judged in data.qrels.items():
        for pid in judged:
            doc = data.corpus.get(pid)
            if doc is not None:
                pairs.append((data.queries[qid], " ".join(v for v in doc.values() if v)))
    return pairs


def test_pairs_from_cached_ids_equal_tokenizers_pair_encoding_on_every_homedepot_pair(
    homedepot_pairs: list[tuple[str, str]], homedepot_cross_encoder_dir: Path
) -> None:
    assert len(homedepot_pairs) > 50_000
    _assert_same_tokens(homedepot_cross_encoder_dir / "tokenizer.json", homedepot_pairs)


def test_pairs_from_cached_ids_equal_tokenizers_pair_encoding_on_every_dl19_pair(
    dl19_pairs: list[tuple[str, str]], homedepot_cross_encoder_dir: Path
) -> None:
    assert len(dl19_pairs) > 4_000
    _assert_same_tokens(homedepot_cross_encoder_dir / "tokenizer.json", dl19_pairs)


def test_long_queries_are_capped_as_the_pair_encoding_caps_them(
    dl19_pairs: list[tuple[str, str]], homedepot_cross_encoder_dir: Path
) -> None:
    # DL19 passages as queries: far longer than max_length // 2, so the query cap applies.
    swapped = [(passage, query) for query, passage in dl19_pairs[::7]]
    _assert_same_tokens(homedepot_cross_encoder_dir / "tokenizer.json", swapped)


def test_a_tiny_token_cache_evicts_and_still_builds_the_same_pairs(
    homedepot_pairs: list[tuple[str, str]], homedepot_cross_encoder_dir: Path
) -> None:
    path = homedepot_cross_encoder_dir / "tokenizer.json"
    pairs = homedepot_pairs[:3000]
    cached = PairTokenizer(path, max_length=64, token_cache_bytes=20_000)
    reference = PairTokenizer(path, max_length=64, token_cache_bytes=0)
    for start in range(0, len(pairs), 100):
        got, want = (
            cached.encode_pairs(pairs[start : start + 100]),
            reference.encode_pairs(pairs[start : start + 100]),
        )
        assert np.array_equal(got.ids, want.ids)
        assert np.array_equal(got.type_ids, want.type_ids)
    assert cached.token_cache is not None
    stats = cached.token_cache.stats()
    assert stats.evictions > 0
    assert stats.bytes <= 20_000


def test_a_warm_token_cache_answers_every_passage_from_memory(
    homedepot_pairs: list[tuple[str, str]], homedepot_cross_encoder_dir: Path
) -> None:
    tokenizer = PairTokenizer(homedepot_cross_encoder_dir / "tokenizer.json", max_length=64)
    pairs = homedepot_pairs[:500]
    tokenizer.encode_pairs(pairs)
    assert tokenizer.token_cache is not None
    before = tokenizer.token_cache.stats()
    tokenizer.encode_pairs([("another query", passage) for _, passage in pairs])
    after = tokenizer.token_cache.stats()
    assert (after.hits - before.hits, after.misses - before.misses) == (
        len({p for _, p in pairs}),
        0,
    )


def test_the_pair_template_is_read_from_the_tokenizer(
    homedepot_cross_encoder_dir: Path, tmp_path: Path
) -> None:
    from tokenizers import Tokenizer

    template = PairTemplate.of(
        Tokenizer.from_file(str(homedepot_cross_encoder_dir / "tokenizer.json"))
    )
    assert template is not None
    assert [p.sequence for p in template.pieces] == [None, "A", None, "B", None]
    assert template.special_count == 3


def test_a_tokenizer_without_a_known_pair_template_tokenizes_whole_pairs(
    homedepot_cross_encoder_dir: Path, tmp_path: Path
) -> None:
    spec = json.loads((homedepot_cross_encoder_dir / "tokenizer.json").read_text(encoding="utf-8"))
    spec["post_processor"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True}
    spec["post_processor"].update({"use_regex": True})
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(spec), encoding="utf-8")
    tokenizer = PairTokenizer(path, max_length=64)
    assert tokenizer.token_cache is None
    assert len(tokenizer.encode_pairs([("drill", "cordless drill kit")])) == 1
