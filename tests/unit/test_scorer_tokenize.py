"""Pair and text tokenization: truncation keeps the query, no padding, settings fixed at load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer

from bridge.scoring.tokenize import PairTokenizer, TextTokenizer

LONG_PASSAGE = " ".join(["cordless drill battery charger kit"] * 80)


@pytest.fixture(scope="module")
def tokenizer_path(nano_cross_encoder_dir: Path) -> Path:
    return nano_cross_encoder_dir / "tokenizer.json"


def _query_ids(path: Path, query: str) -> list[int]:
    return Tokenizer.from_file(str(path)).encode(query, add_special_tokens=False).ids


def _first_segment(tokens_ids: np.ndarray, type_ids: np.ndarray) -> list[int]:
    # [CLS] query [SEP] are the type-0 tokens; drop the two special tokens.
    return tokens_ids[type_ids == 0][1:-1].tolist()


def test_pairs_are_truncated_to_max_length(tokenizer_path: Path) -> None:
    tokens = PairTokenizer(tokenizer_path, max_length=64).encode_pairs([("drill", LONG_PASSAGE)])
    assert tokens.lengths.tolist() == [64]


def test_truncation_keeps_the_whole_query(tokenizer_path: Path) -> None:
    query = "twenty volt max brushless cordless hammer drill with two batteries"
    tokens = PairTokenizer(tokenizer_path, max_length=48).encode_pairs([(query, LONG_PASSAGE)])
    assert _first_segment(tokens.ids, tokens.type_ids) == _query_ids(tokenizer_path, query)


def test_a_query_longer_than_the_cap_is_cut_to_the_cap(tokenizer_path: Path) -> None:
    query = " ".join(["drill"] * 100)
    tokenizer = PairTokenizer(tokenizer_path, max_length=64, query_max_tokens=10)
    tokens = tokenizer.encode_pairs([(query, LONG_PASSAGE)])
    assert len(_first_segment(tokens.ids, tokens.type_ids)) == 10


def test_pairs_are_not_padded(tokenizer_path: Path) -> None:
    tokens = PairTokenizer(tokenizer_path, max_length=128).encode_pairs(
        [("drill", "a"), ("drill", "a much longer passage about a cordless drill kit")]
    )
    assert tokens.lengths[0] < tokens.lengths[1]


def test_max_length_is_capped_by_the_model_limit(tokenizer_path: Path) -> None:
    assert PairTokenizer(tokenizer_path, max_length=100_000).max_length == 512


def test_texts_are_truncated_to_max_length(bi_encoder_dir: Path) -> None:
    tokenizer = TextTokenizer(bi_encoder_dir / "tokenizer.json", max_length=32)
    assert tokenizer.encode_texts([LONG_PASSAGE, "drill"]).lengths[0] == 32


def test_a_lone_surrogate_is_tokenized_as_the_replacement_character(tokenizer_path: Path) -> None:
    tokenizer = PairTokenizer(tokenizer_path, max_length=64)
    hostile = tokenizer.encode_pairs([("drill \ud800", "bit \udfff set")])
    clean = tokenizer.encode_pairs([("drill \ufffd", "bit \ufffd set")])
    assert hostile.ids.tolist() == clean.ids.tolist()


def test_a_lone_surrogate_in_a_text_is_tokenized_as_the_replacement_character(
    bi_encoder_dir: Path,
) -> None:
    tokenizer = TextTokenizer(bi_encoder_dir / "tokenizer.json", max_length=64)
    hostile = tokenizer.encode_texts(["garden \ud800 hose"])
    assert hostile.ids.tolist() == tokenizer.encode_texts(["garden \ufffd hose"]).ids.tolist()
