"""A bounded, thread-safe LRU cache of model scores keyed by (model identity, query, passage text).

The scorer's model identity names the ONNX file by path, size and modification time and the text
options that change a score (``max_length``, the query cap), so a replaced model file or another
``max_length`` can never be answered from an older entry (``bridge.scoring.loader.model_identity``,
which names the tokenizer file the same way).
"""

from __future__ import annotations

import sys

from bridge.scoring.lru import ENTRY_OVERHEAD, BytesLRU, CacheStats

CacheKey = tuple[str, str, str]

# 64 MiB holds about 150,000 (query, product title) scores.
DEFAULT_SCORE_CACHE_BYTES = 64 * 1024 * 1024


def _entry_size(key: CacheKey, value: float) -> int:
    # The model identity string is shared by every key of a scorer: not counted per entry.
    return ENTRY_OVERHEAD + sys.getsizeof(key[1]) + sys.getsizeof(key[2]) + 24


class ScoreCache:
    """Least-recently-used score cache; ``maxsize`` entries and ``max_bytes`` at most."""

    def __init__(self, maxsize: int, *, max_bytes: int = DEFAULT_SCORE_CACHE_BYTES) -> None:
        if maxsize < 0:
            raise ValueError("maxsize must be >= 0")
        self.maxsize = maxsize
        self._lru: BytesLRU[CacheKey, float] = BytesLRU(
            max_bytes=max_bytes, size_of=_entry_size, max_entries=maxsize
        )

    def __len__(self) -> int:
        return len(self._lru)

    @property
    def hits(self) -> int:
        return self._lru.hits

    @property
    def misses(self) -> int:
        return self._lru.misses

    @property
    def evictions(self) -> int:
        return self._lru.evictions

    def get_many(self, keys: list[CacheKey]) -> list[float | None]:
        return self._lru.get_many(keys)

    def put_many(self, keys: list[CacheKey], values: list[float]) -> None:
        self._lru.put_many(keys, values)

    def stats(self) -> CacheStats:
        return self._lru.stats()

    def clear(self) -> None:
        self._lru.clear()
