"""Cross-encoders: each (query, passage) pair read jointly; logits -> probability."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from bridge.errors import ModelError
from bridge.scoring.cached_scoring import CachedScoring
from bridge.scoring.lru import CacheStats
from bridge.scoring.onnx_model import (
    DEFAULT_MAX_BATCH,
    DEFAULT_PARALLEL_BATCHES,
    DEFAULT_TOKEN_BUDGET,
)
from bridge.scoring.protocol import FloatArray, ScorerKind
from bridge.scoring.score_cache import ScoreCache
from bridge.scoring.tokenize import PairTokenizer


def _probabilities(logits: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    values = np.asarray(logits, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    if values.shape[1] == 1:
        result: npt.NDArray[np.float64] = 1.0 / (1.0 + np.exp(-values[:, 0]))
        return result
    if values.shape[1] == 2:
        shifted = values - values.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        result = exp[:, 1] / exp.sum(axis=1)
        return result
    raise ModelError(f"cross-encoder output has {values.shape[1]} logits; expected 1 or 2")


class CrossEncoderScorer(CachedScoring):
    """Scores (query, passage) pairs jointly; 1 logit -> sigmoid, 2 logits -> softmax column 1."""

    def __init__(
        self,
        session: ort.InferenceSession,
        tokenizer: PairTokenizer,
        *,
        model_name: str,
        output_name: str | None = None,
        cache: ScoreCache | None = None,
        token_budget: int = DEFAULT_TOKEN_BUDGET,
        max_batch: int = DEFAULT_MAX_BATCH,
        parallel_batches: int = DEFAULT_PARALLEL_BATCHES,
    ) -> None:
        super().__init__(
            session,
            model_name=model_name,
            output_name=output_name,
            cache=cache,
            token_budget=token_budget,
            max_batch=max_batch,
            parallel_batches=parallel_batches,
        )
        self._tokenizer: PairTokenizer = tokenizer

    @property
    def kind(self) -> ScorerKind:
        return "cross"

    def cache_stats(self) -> dict[str, CacheStats]:
        found = super().cache_stats()
        tokens = self._tokenizer.cache_stats()
        if tokens is not None:
            found["token"] = tokens
        return found

    def _compute(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        tokens = self._tokenizer.encode_pairs(pairs)
        scores = np.empty(len(pairs), dtype=np.float64)
        for batch, logits in self._model.run(tokens, self._tokenizer.pad_id):
            scores[batch.index] = _probabilities(logits)
        result: list[float] = scores.tolist()
        return result

    def embed(self, texts: Sequence[str]) -> FloatArray:
        raise ModelError(f"{self.model_name} is a cross-encoder; embed() needs a bi-encoder")
