"""Bi-encoders: texts embedded apart (pooled, L2-normalised); a pair's score is their cosine."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from bridge.errors import ModelError
from bridge.scoring.cached_scoring import CachedScoring, check_text
from bridge.scoring.embedding_cache import DEFAULT_EMBEDDING_CACHE_BYTES, EmbeddingCache
from bridge.scoring.lru import CacheStats
from bridge.scoring.onnx_model import (
    DEFAULT_MAX_BATCH,
    DEFAULT_PARALLEL_BATCHES,
    DEFAULT_TOKEN_BUDGET,
)
from bridge.scoring.protocol import FloatArray, ScorerKind
from bridge.scoring.score_cache import ScoreCache
from bridge.scoring.tokenize import TextTokenizer

_POOLINGS = frozenset({None, "mean", "cls"})


def _normalise(vectors: npt.NDArray[Any]) -> FloatArray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    result: FloatArray = vectors / np.maximum(norms, np.float32(1e-12))
    return result


class BiEncoderScorer(CachedScoring):
    """Embeds texts (mean-pooled, L2-normalised); a pair's score is the cosine of its embeddings."""

    def __init__(
        self,
        session: ort.InferenceSession,
        tokenizer: TextTokenizer,
        *,
        model_name: str,
        output_name: str | None = None,
        cache: ScoreCache | None = None,
        token_budget: int = DEFAULT_TOKEN_BUDGET,
        max_batch: int = DEFAULT_MAX_BATCH,
        pooling: str | None = None,
        parallel_batches: int = DEFAULT_PARALLEL_BATCHES,
        embedding_cache_bytes: int = DEFAULT_EMBEDDING_CACHE_BYTES,
    ) -> None:
        if pooling not in _POOLINGS:
            raise ModelError(f"unsupported pooling {pooling!r}; expected 'mean' or 'cls'")
        super().__init__(
            session,
            model_name=model_name,
            output_name=output_name,
            cache=cache,
            token_budget=token_budget,
            max_batch=max_batch,
            parallel_batches=parallel_batches,
        )
        self._tokenizer: TextTokenizer = tokenizer
        self.pooling = pooling or "mean"
        self.embedding_cache = (
            EmbeddingCache(embedding_cache_bytes) if embedding_cache_bytes > 0 else None
        )

    @property
    def kind(self) -> ScorerKind:
        return "bi"

    def cache_stats(self) -> dict[str, CacheStats]:
        found = super().cache_stats()
        if self.embedding_cache is not None:
            found["embedding"] = self.embedding_cache.stats()
        return found

    def embed(self, texts: Sequence[str]) -> FloatArray:
        for i, text in enumerate(texts):
            check_text(text, i)
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        if self.embedding_cache is not None:
            return self.embedding_cache.embed(texts, self._embed_uncached)
        return self._embed_uncached(texts)

    def _embed_uncached(self, texts: Sequence[str]) -> FloatArray:
        tokens = self._tokenizer.encode_texts(texts)
        rows: list[FloatArray] = []
        index: list[npt.NDArray[np.int64]] = []
        for batch, output in self._model.run(tokens, self._tokenizer.pad_id):
            if output.ndim == 3:  # per-token outputs: pool over the real tokens
                output = self._pool(output, batch.attention_mask)
            rows.append(_normalise(output))
            index.append(batch.index)
        stacked = np.concatenate(rows)
        result: FloatArray = np.empty_like(stacked)
        result[np.concatenate(index)] = stacked
        return result

    def _pool(self, tokens: npt.NDArray[Any], attention_mask: npt.NDArray[np.int64]) -> FloatArray:
        if self.pooling == "cls":
            first: FloatArray = tokens[:, 0, :].astype(np.float32)
            return first
        mask = attention_mask[:, :, None].astype(np.float32)
        mean: FloatArray = (tokens * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1.0)
        return mean

    def _compute(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        unique = list(dict.fromkeys(t for pair in pairs for t in pair))
        vectors = self.embed(unique)
        where = {text: i for i, text in enumerate(unique)}
        left = vectors[[where[q] for q, _ in pairs]]
        right = vectors[[where[p] for _, p in pairs]]
        scores: npt.NDArray[np.float64] = np.einsum("ij,ij->i", left, right).astype(np.float64)
        result: list[float] = scores.tolist()
        return result
