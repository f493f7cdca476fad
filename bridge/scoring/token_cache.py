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
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt
from tokenizers import Tokenizer

from bridge.scoring.lru import ENTRY_OVERHEAD, BytesLRU, CacheStats
from bridge.scoring.surrogates import encode_well_formed

IdArray = npt.NDArray[np.int32]
# Token ids packed as native int32 bytes: a cached passage costs its ids and no array object, and
# pairs are assembled by joining byte strings (one numpy read per call, not one call per piece).
PackedIds = bytes
ID_DTYPE = np.dtype(np.int32)
ID_BYTES = ID_DTYPE.itemsize

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

    @cached_property
    def special_count(self) -> int:
        return sum(len(p.ids) for p in self.pieces if p.sequence is None)

    @cached_property
    def _passage_at(self) -> int:
        return next(i for i, p in enumerate(self.pieces) if p.sequence == "B")

    @cached_property
    def tail(self) -> tuple[bytes, bytes]:
        """Ids and type ids (packed) of the special tokens after the passage (BERT: ``[SEP]``)."""
        after = self.pieces[self._passage_at + 1 :]
        return (
            _packed([i for p in after for i in p.ids]),
            _packed([p.type_id for p in after for _ in p.ids]),
        )

    def prefix(self, query: PackedIds) -> tuple[bytes, bytes]:
        """Ids and type ids (packed) of everything before the passage: ``[CLS] query [SEP]``."""
        ids: list[bytes] = []
        types: list[bytes] = []
        for piece in self.pieces[: self._passage_at]:
            part = query if piece.sequence == "A" else _packed(piece.ids)
            ids.append(part)
            types.append(_packed([piece.type_id]) * (len(part) // ID_BYTES))
        return b"".join(ids), b"".join(types)

    @cached_property
    def passage_type(self) -> bytes:
        return _packed([self.pieces[self._passage_at].type_id])

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


def ids_size(key: str, value: PackedIds) -> int:
    return ENTRY_OVERHEAD + len(key.encode("utf-8", "surrogatepass")) + 49 + len(value) + 33


def _packed(ids: Sequence[int]) -> PackedIds:
    return np.asarray(ids, dtype=ID_DTYPE).tobytes()


def packed(ids: Sequence[int] | npt.NDArray[np.integer[Any]]) -> PackedIds:
    """Token ids as :data:`PackedIds` (what :func:`assemble_pairs` and the caches hold)."""
    return _packed(ids)  # type: ignore[arg-type]


class PassageTokenCache:
    """Token ids (no special tokens, at most ``keep`` of them) of passages, by passage text,
    packed (:data:`PackedIds`)."""

    def __init__(self, tokenizer: Tokenizer, *, keep: int, max_bytes: int) -> None:
        self._tokenizer = tokenizer  # configured by the owner: no padding, truncation to ``keep``
        self.keep = keep
        self._lru: BytesLRU[str, PackedIds] = BytesLRU(max_bytes=max_bytes, size_of=ids_size)

    def ids(self, passages: Sequence[str]) -> list[PackedIds]:
        """Each passage's ids; every passage not cached is tokenized in ONE batch call."""
        unique = list(dict.fromkeys(passages))
        found = self._lru.get_many(unique) if self._lru.enabled else [None] * len(unique)
        if len(unique) == len(passages) and None not in found:
            return found  # type: ignore[return-value]  # the warm path: every passage cached
        missing = [text for text, ids in zip(unique, found, strict=True) if ids is None]
        fast = getattr(self._tokenizer, "encode_batch_fast", None)
        encode = fast or self._tokenizer.encode_batch
        encodings = encode_well_formed(encode, missing, add_special_tokens=False)
        fresh = [_packed(e.ids) for e in encodings]
        self._lru.put_many(missing, fresh)
        by_text = dict(zip(unique, found, strict=True))
        by_text.update(zip(missing, fresh, strict=True))
        return [by_text[p] for p in passages]  # type: ignore[misc]

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
    queries: Sequence[PackedIds | IdArray],
    passages: Sequence[PackedIds | IdArray],
    *,
    max_length: int,
) -> AssembledPairs:
    """Each pair as the template lays it out, the passage cut from the right to fit
    ``max_length`` (``only_second``); the query must leave room (the caller caps it).

    No per-token Python and no per-piece numpy call: each distinct query's prefix (``[CLS] query
    [SEP]``) is packed once, every pair is three byte strings (prefix, passage or its cut, tail)
    for the ids and three for the type ids, joined once and read by numpy once."""
    n = len(queries)
    if n != len(passages):
        raise ValueError(f"{n} queries for {len(passages)} passages")
    tail, tail_types = template.tail
    passage_type = template.passage_type
    tail_length = len(tail) // ID_BYTES
    prefixes: dict[int, tuple[bytes, bytes, int, int]] = {}  # by id(): one object per query
    ids: list[bytes] = []
    types: list[bytes] = []
    lengths: list[int] = []
    for query, passage in zip(queries, passages, strict=True):
        known = prefixes.get(id(query))
        if known is None:
            query_ids = query if isinstance(query, bytes) else packed(query)
            prefix, prefix_types = template.prefix(query_ids)
            room = max(max_length - template.special_count - len(query_ids) // ID_BYTES, 0)
            known = prefixes[id(query)] = (prefix, prefix_types, room, len(prefix) // ID_BYTES)
        prefix, prefix_types, room, prefix_length = known
        data = passage if isinstance(passage, bytes) else packed(passage)
        keep = min(len(data) // ID_BYTES, room)
        if keep * ID_BYTES < len(data):
            data = data[: keep * ID_BYTES]
        ids += (prefix, data, tail)
        types += (prefix_types, passage_type * keep, tail_types)
        lengths.append(prefix_length + keep + tail_length)
    return AssembledPairs(
        ids=np.frombuffer(b"".join(ids), dtype=ID_DTYPE).astype(np.int64),
        type_ids=np.frombuffer(b"".join(types), dtype=ID_DTYPE).astype(np.int64),
        lengths=np.array(lengths, dtype=np.int64),
    )


class TokenTimer:
    """Wall time spent tokenizing, summed across threads (the GIL makes ``+=`` on a float safe
    enough for a metric); read by the proxy's metrics and the Zipf benchmark."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = 0

    def add(self, started: float) -> None:
        self.seconds += time.perf_counter() - started
        self.calls += 1
