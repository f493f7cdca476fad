"""Pairs from cached passage token ids: the same products come back query after query.

A passage's token ids do not depend on the query it is paired with (BERT-style tokenizers
normalise and split each sequence of a pair on its own), so each passage is tokenized once, its ids
kept in a bytes-bounded LRU, and every pair is assembled from the query's ids and the passage's
with the tokenizer's own pair template and ``only_second`` truncation (the passage is cut from the
right so the pair fits ``max_length``). tests/unit/test_token_cache.py checks the result equal,
token for token, to `tokenizers`' own pair encoding on the Home Depot and TREC-DL pairs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from tokenizers import Tokenizer

from bridge.scoring.lru import ENTRY_OVERHEAD, BytesLRU, CacheStats
from bridge.scoring.surrogates import encode_well_formed

IdArray = npt.NDArray[np.int32]

# 32 MiB holds the ids of about 300,000 product titles (~20 tokens each) or 25,000 abstracts.
DEFAULT_TOKEN_CACHE_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class _Piece:
    """One item of a pair template: special token ids, or the sequence "A" or "B"."""

    sequence: str | None
    ids: tuple[int, ...]
    type_id: int


@dataclass(frozen=True)
class PairTemplate:
    """Where the query (A), the passage (B) and the special tokens go in a pair, with type ids."""

    pieces: tuple[_Piece, ...]

    @property
    def special_count(self) -> int:
        return sum(len(p.ids) for p in self.pieces if p.sequence is None)

    @classmethod
    def of(cls, tokenizer: Tokenizer) -> PairTemplate | None:
        """The tokenizer's pair template, or None for a post-processor this module does not know
        (the caller then tokenizes whole pairs as before)."""
        spec = json.loads(tokenizer.to_str()).get("post_processor") or {}
        kind = spec.get("type")
        if kind == "TemplateProcessing":
            return _from_template(spec)
        if kind == "BertProcessing":
            cls_id = spec["cls"][1]
            sep_id = spec["sep"][1]
            return cls(
                (
                    _Piece(None, (int(cls_id),), 0),
                    _Piece("A", (), 0),
                    _Piece(None, (int(sep_id),), 0),
                    _Piece("B", (), 1),
                    _Piece(None, (int(sep_id),), 1),
                )
            )
        return None


def _from_template(spec: dict[str, Any]) -> PairTemplate | None:
    specials = spec.get("special_tokens") or {}
    pieces: list[_Piece] = []
    for item in spec.get("pair") or []:
        if "Sequence" in item:
            seq = item["Sequence"]
            pieces.append(_Piece(str(seq["id"]), (), int(seq.get("type_id", 0))))
        elif "SpecialToken" in item:
            token = item["SpecialToken"]
            known = specials.get(token["id"])
            if known is None:
                return None
            pieces.append(_Piece(None, tuple(int(i) for i in known["ids"]), int(token["type_id"])))
        else:
            return None
    order = [p.sequence for p in pieces if p.sequence is not None]
    return PairTemplate(tuple(pieces)) if order == ["A", "B"] else None


def _ids_size(key: str, value: IdArray) -> int:
    return ENTRY_OVERHEAD + len(key.encode("utf-8", "surrogatepass")) + 49 + value.nbytes + 112


class PassageTokenCache:
    """Token ids (no special tokens, at most ``keep`` of them) of passages, by passage text."""

    def __init__(self, tokenizer: Tokenizer, *, keep: int, max_bytes: int) -> None:
        self._tokenizer = tokenizer  # configured by the owner: no padding, truncation to ``keep``
        self.keep = keep
        self._lru: BytesLRU[str, IdArray] = BytesLRU(max_bytes=max_bytes, size_of=_ids_size)

    def ids(self, passages: Sequence[str]) -> list[IdArray]:
        unique = list(dict.fromkeys(passages))
        found = self._lru.get_many(unique) if self._lru.enabled else [None] * len(unique)
        missing = [text for text, ids in zip(unique, found, strict=True) if ids is None]
        fresh: dict[str, IdArray] = {}
        if missing:
            fast = getattr(self._tokenizer, "encode_batch_fast", None)
            encode = fast or self._tokenizer.encode_batch
            encodings = encode_well_formed(encode, missing, add_special_tokens=False)
            fresh = {
                text: np.asarray(e.ids, dtype=np.int32)
                for text, e in zip(missing, encodings, strict=True)
            }
            self._lru.put_many(list(fresh), list(fresh.values()))
        by_text = {text: ids for text, ids in zip(unique, found, strict=True) if ids is not None}
        by_text.update(fresh)
        return [by_text[p] for p in passages]

    def stats(self) -> CacheStats:
        return self._lru.stats()

    def clear(self) -> None:
        self._lru.clear()


@dataclass(frozen=True)
class AssembledPairs:
    """Flattened pair ids, type ids and lengths (the fields of ``tokenize.Tokens``)."""

    ids: npt.NDArray[np.int64]
    type_ids: npt.NDArray[np.int64]
    lengths: npt.NDArray[np.int64]


def assemble_pairs(
    template: PairTemplate,
    queries: Sequence[IdArray],
    passages: Sequence[IdArray],
    *,
    max_length: int,
) -> AssembledPairs:
    """Each pair as the template lays it out, the passage cut from the right to fit
    ``max_length`` (``only_second``); the query must leave room (the caller caps it)."""
    special = template.special_count
    cut = [
        min(len(p), max(0, max_length - special - len(q)))
        for q, p in zip(queries, passages, strict=True)
    ]
    lengths = np.fromiter(
        (special + len(q) + c for q, c in zip(queries, cut, strict=True)),
        dtype=np.int64,
        count=len(cut),
    )
    total = int(lengths.sum())
    ids = np.empty(total, dtype=np.int64)
    type_ids = np.empty(total, dtype=np.int64)
    at = 0
    for q, p, c in zip(queries, passages, cut, strict=True):
        for piece in template.pieces:
            part: Sequence[int] | IdArray
            if piece.sequence is None:
                part = piece.ids
            elif piece.sequence == "A":
                part = q
            else:
                part = p[:c]
            n = len(part)
            if n:
                ids[at : at + n] = part
                type_ids[at : at + n] = piece.type_id
                at += n
    return AssembledPairs(ids=ids, type_ids=type_ids, lengths=lengths)


class TokenTimer:
    """Wall time spent tokenizing, summed across threads (the GIL makes ``+=`` on a float safe
    enough for a metric); read by the proxy's metrics and the Zipf benchmark."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = 0

    def add(self, started: float) -> None:
        self.seconds += time.perf_counter() - started
        self.calls += 1
