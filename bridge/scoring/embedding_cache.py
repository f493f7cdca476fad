"""Bi-encoder embeddings by text: a product is embedded once however many queries bring it back.

Embeddings are L2-normalised float32 rows; the cache holds them in a bytes-bounded LRU keyed by the
text (one cache per scorer, so the model and ``max_length`` are fixed). With int8 dynamically
quantized files a text's embedding moves slightly (~1e-3) with its batch mates, as the score of a
cross-encoder pair does; a cached row is the one its first batch produced.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from bridge.scoring.lru import ENTRY_OVERHEAD, BytesLRU, CacheStats

FloatArray = npt.NDArray[np.float32]

# 32 MiB holds about 20,000 embeddings of 384 dimensions.
DEFAULT_EMBEDDING_CACHE_BYTES = 32 * 1024 * 1024


def _row_size(key: str, value: FloatArray) -> int:
    return ENTRY_OVERHEAD + len(key.encode("utf-8", "surrogatepass")) + 49 + value.nbytes + 112


class EmbeddingCache:
    """Normalised embeddings of texts, at most ``max_bytes``."""

    def __init__(self, max_bytes: int) -> None:
        self._lru: BytesLRU[str, FloatArray] = BytesLRU(max_bytes=max_bytes, size_of=_row_size)

    def embed(
        self, texts: Sequence[str], compute: Callable[[Sequence[str]], FloatArray]
    ) -> FloatArray:
        """Rows for ``texts`` in order, computing (in one call) only the texts not cached."""
        unique = list(dict.fromkeys(texts))
        found = self._lru.get_many(unique)
        missing = [text for text, row in zip(unique, found, strict=True) if row is None]
        rows = {text: row for text, row in zip(unique, found, strict=True) if row is not None}
        if missing:
            fresh = compute(missing)
            computed = [np.array(row, dtype=np.float32) for row in fresh]  # own copies
            self._lru.put_many(missing, computed)
            rows.update(zip(missing, computed, strict=True))
        return np.stack([rows[text] for text in texts]).astype(np.float32, copy=False)

    def stats(self) -> CacheStats:
        return self._lru.stats()

    def clear(self) -> None:
        self._lru.clear()
