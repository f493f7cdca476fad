"""What both scorer kinds share: the ONNX model, the score cache and the text checks."""

from __future__ import annotations

from collections.abc import Sequence

import onnxruntime as ort

from bridge.chunking import ChunkedScores, ChunkingConfig, aggregate
from bridge.errors import InputError
from bridge.scoring.lru import CacheStats
from bridge.scoring.onnx_model import OnnxModel
from bridge.scoring.score_cache import ScoreCache
from bridge.scoring.tokenize import PairTokenizer, PassageWindows, TextTokenizer


def check_text(value: object, index: int, what: str = "text") -> str:
    if not isinstance(value, str):
        raise InputError(f"{what} must be a string, got {type(value).__name__}", index=index)
    return value


def _check_pairs(pairs: Sequence[tuple[str, str]]) -> None:
    for i, pair in enumerate(pairs):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise InputError("must be a (query, passage) pair", index=i)
        check_text(pair[0], i, "query")
        check_text(pair[1], i, "passage")


class CachedScoring:
    """What both kinds share: the ONNX model, the score cache (look up, compute the misses,
    store) and the text checks."""

    _tokenizer: PairTokenizer | TextTokenizer

    def __init__(
        self,
        session: ort.InferenceSession,
        *,
        model_name: str,
        output_name: str | None,
        cache: ScoreCache | None,
        token_budget: int,
        max_batch: int,
        parallel_batches: int,
    ) -> None:
        self._model = OnnxModel(
            session,
            output_name=output_name,
            token_budget=token_budget,
            max_batch=max_batch,
            parallel_batches=parallel_batches,
        )
        self.model_name = model_name
        self.cache = cache
        # What a cached score is keyed by besides its texts; set from the model file by the loader
        # (``model_identity``) so a replaced file or another max_length never reads a stale entry.
        self.identity = model_name

    @property
    def max_length(self) -> int:
        return self._tokenizer.max_length

    def cache_stats(self) -> dict[str, CacheStats]:
        """Hits, misses, evictions and bytes of each cache this scorer has, by cache name."""
        found: dict[str, CacheStats] = {}
        if self.cache is not None:
            found["score"] = self.cache.stats()
        return found

    def tokenize_seconds(self) -> float:
        """Wall time this scorer spent tokenizing pairs or texts since it was created."""
        return self._tokenizer.timer.seconds

    def _compute(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        raise NotImplementedError

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        found = self.lookup_scores(pairs)
        missing = [i for i, value in enumerate(found) if value is None]
        if missing:
            fresh = self.compute_scores([pairs[i] for i in missing])
            for i, value in zip(missing, fresh, strict=True):
                found[i] = value
        return [float(v) for v in found if v is not None]

    def lookup_scores(self, pairs: Sequence[tuple[str, str]]) -> list[float | None]:
        """Cached scores of ``pairs`` (None where not cached, or everywhere without a cache);
        cheap enough for an event loop: the proxy answers cached pairs before queueing."""
        _check_pairs(pairs)
        if self.cache is None:
            return [None] * len(pairs)
        return self.cache.get_many([(self.identity, q, p) for q, p in pairs])

    def compute_scores(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """Scores of ``pairs`` from the model (no cache look-up), stored in the cache."""
        _check_pairs(pairs)
        if not pairs:
            return []
        fresh = self._compute(pairs)
        if self.cache is not None:
            self.cache.put_many([(self.identity, q, p) for q, p in pairs], fresh)
        return fresh

    def score(self, query: str, passages: Sequence[str]) -> list[float]:
        check_text(query, 0, "query")
        for i, passage in enumerate(passages):
            check_text(passage, i)
        return self.score_pairs([(query, p) for p in passages])

    def windows(
        self, query: str, passages: Sequence[str], chunking: ChunkingConfig
    ) -> PassageWindows:
        """The windows ``score_chunked`` scores (``bridge.scoring.chunking``); the proxy scores
        them through its micro-batcher and aggregates them itself."""
        check_text(query, 0, "query")
        for i, passage in enumerate(passages):
            check_text(passage, i)
        return self._tokenizer.windows(query, passages, chunking)

    def score_chunked(
        self, query: str, passages: Sequence[str], chunking: ChunkingConfig
    ) -> ChunkedScores:
        """Each passage split into windows, every window scored as a passage (all in the same
        batches, through the score cache), each passage scored by ``chunking.aggregate``."""
        found = self.windows(query, passages, chunking)
        scores = self.score_pairs([(query, w.text) for w in found.windows])
        return aggregate(found.windows, scores, found.totals, chunking.aggregate)
