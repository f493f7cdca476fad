"""`Ranker` and `RerankRequest`: FlashRank's surface over a bridge scorer.

Code written for FlashRank runs with only the import line changed. Differences on purpose: results
are new dicts (the caller's passages are never mutated), scores are Python floats (JSON-safe), the
model may be a local directory, logging is never configured, and batching is bounded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bridge.chunking import ChunkingConfig
from bridge.config import DEFAULT_MODEL
from bridge.errors import InputError
from bridge.scoring import BiEncoderScorer, CrossEncoderScorer, shared_scorers
from bridge.scoring.token_cache import DEFAULT_TOKEN_CACHE_BYTES


@dataclass
class RerankRequest:
    """A query and the passages to reorder: dicts with a ``text`` key and any others."""

    query: str | None = None
    passages: Sequence[Mapping[str, Any]] | None = field(default_factory=list)


def _passage_texts(passages: Sequence[Mapping[str, Any]]) -> list[str]:
    texts = []
    for i, passage in enumerate(passages):
        if not isinstance(passage, Mapping):
            raise InputError(
                f"must be a dict with a 'text' key, got {type(passage).__name__}", index=i
            )
        if "text" not in passage:
            raise InputError("has no 'text' key", index=i)
        text = passage["text"]
        if not isinstance(text, str):
            raise InputError(f"'text' must be a string, got {type(text).__name__}", index=i)
        texts.append(text)
    return texts


class Ranker:
    """Reranks passages for a query with a cross-encoder (or bi-encoder) ONNX model.

    ``model_name`` is a FlashRank model name (fetched once into ``cache_dir``) or the path of a
    local model directory. Sessions are shared process-wide through ``shared_scorers``, so several
    ``Ranker`` objects over the same model cost one session.
    """

    def __init__(
        self,
        model_name: str = DEFAULT_MODEL,
        cache_dir: str | Path | None = None,
        max_length: int = 512,
        log_level: str | None = None,
        *,
        providers: Sequence[str] | None = None,
        threads: int | None = None,
        cache_size: int = 0,
        spin: bool = False,
        token_cache_bytes: int = DEFAULT_TOKEN_CACHE_BYTES,
        chunking: ChunkingConfig | Mapping[str, Any] | bool | None = None,
    ) -> None:
        # log_level is accepted for FlashRank compatibility; a library leaves logging to the app.
        del log_level
        self.model_name = model_name
        self.max_length = max_length
        # long passages as windows (bridge.chunking); each result then names its best window
        self.chunking = ChunkingConfig.from_value(chunking, path="chunking")
        self.scorer: CrossEncoderScorer | BiEncoderScorer = shared_scorers.get(
            model_name,
            cache_dir=cache_dir,
            max_length=max_length,
            providers=providers,
            threads=threads,
            cache_size=cache_size,
            spin=spin,
            token_cache_bytes=token_cache_bytes,
        )

    def rerank(self, request: RerankRequest, *, top_n: int | None = None) -> list[dict[str, Any]]:
        """Passages as new dicts (all keys kept) with a float ``score``, best first."""
        if request.query is None or not isinstance(request.query, str):
            raise InputError("query must be a string")
        if top_n is not None and top_n < 0:
            raise InputError("top_n must be >= 0")
        passages = list(request.passages or [])
        texts = _passage_texts(passages)
        if not texts:
            return []
        extra: list[dict[str, Any]] = [{} for _ in texts]
        if self.chunking is None:
            scores = self.scorer.score(request.query, texts)
        else:
            chunked = self.scorer.score_chunked(request.query, texts, self.chunking)
            scores = chunked.scores
            extra = [{"best_window": best.to_dict()} for best in chunked.best]
        # Stable: equal scores keep the input order.
        order = sorted(range(len(scores)), key=lambda i: -scores[i])
        if top_n is not None:
            order = order[:top_n]
        return [{**passages[i], "score": scores[i], **extra[i]} for i in order]

    async def arerank(
        self, request: RerankRequest, *, top_n: int | None = None
    ) -> list[dict[str, Any]]:
        """``rerank`` in a worker thread, so the event loop keeps serving."""
        return await asyncio.to_thread(self.rerank, request, top_n=top_n)

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """Scores of (query, passage) pairs, in order; queries may differ between pairs."""
        return self.scorer.score_pairs(pairs)

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """L2-normalised embeddings (bi-encoder models only; a cross-encoder raises ModelError)."""
        return self.scorer.embed(texts)
