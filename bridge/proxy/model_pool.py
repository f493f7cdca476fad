"""The proxy's models: one scorer (from `shared_scorers`) and one micro-batcher per model."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

from bridge.proxy.microbatch import MicroBatcher
from bridge.proxy.prometheus import ProxyMetrics
from bridge.proxy.settings import BatchingSettings, ScorerSettings

logger = logging.getLogger(__name__)

ModelKey = tuple[str, int | None]
Loader = Callable[[str, "int | None"], Any]


def _load(model: str, max_length: int | None, settings: ScorerSettings) -> Any:
    from bridge.scoring import shared_scorers
    from bridge.scoring.scorer import CacheBounds

    return shared_scorers.get(
        model,
        cache_dir=settings.cache_dir,
        max_length=max_length,
        threads=settings.threads,
        cache_size=settings.cache_size,
        caches=CacheBounds(
            settings.cache_bytes, settings.token_cache_bytes, settings.embedding_cache_bytes
        ),
    )


class ModelPool:
    def __init__(
        self,
        scorer: ScorerSettings,
        batching: BatchingSettings,
        metrics: ProxyMetrics,
        *,
        loader: Loader | None = None,
    ) -> None:
        self._scorer_settings = scorer
        self._loader: Loader = loader or (lambda model, length: _load(model, length, scorer))
        self._batching = batching
        self._metrics = metrics
        self._batchers: dict[ModelKey, MicroBatcher] = {}
        self._locks: dict[ModelKey, asyncio.Lock] = {}
        self.errors: dict[str, str] = {}

    async def scorer(self, model: str, max_length: int | None = None) -> Any:
        """The scorer itself (for embeddings of kNN query texts), loaded off the event loop."""
        return await asyncio.to_thread(self._loader, model, max_length)

    async def batcher(self, model: str, max_length: int | None = None) -> MicroBatcher:
        """The batcher for ``model``; loads it (off the event loop) on first use."""
        key = (model, max_length)
        found = self._batchers.get(key)
        if found is not None:
            return found
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            found = self._batchers.get(key)
            if found is not None:
                return found
            try:
                scorer = await asyncio.to_thread(self._loader, model, max_length)
            except Exception as exc:
                self.errors[model] = f"{type(exc).__name__}: {exc}"
                raise
            self.errors.pop(model, None)
            self._metrics.caches.watch(model, scorer)
            # cached pairs are answered before the queue; only misses wait for a model run
            lookup = getattr(scorer, "lookup_scores", None)
            score_pairs: Callable[[Sequence[tuple[str, str]]], list[float]] = scorer.score_pairs
            if getattr(scorer, "cache", None) is None or lookup is None:
                lookup = None
            else:
                score_pairs = scorer.compute_scores
            batcher = MicroBatcher(
                score_pairs,
                name=model,
                max_length=int(getattr(scorer, "max_length", 512)),
                enabled=self._batching.enabled,
                max_wait_s=self._batching.max_wait_ms / 1000,
                max_pairs=self._batching.max_batch_pairs,
                max_tokens=self._batching.max_batch_tokens,
                max_runs=self._batching.max_concurrent_runs,
                metrics=self._metrics,
                lookup=lookup,
            )
            self._batchers[key] = batcher
            return batcher

    async def preload(self, models: list[str]) -> None:
        for model in models:
            try:
                await self.batcher(model)
            except Exception as exc:  # start anyway: searches fail open and health says why
                logger.error("could not load model %s: %s", model, exc)

    def status(self) -> dict[str, str]:
        loaded = {key[0]: "loaded" for key in self._batchers}
        return {**{m: f"error: {e}" for m, e in self.errors.items()}, **loaded}

    async def aclose(self) -> None:
        for batcher in self._batchers.values():
            await batcher.aclose()
        self._batchers.clear()
