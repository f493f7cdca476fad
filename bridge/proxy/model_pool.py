"""The proxy's models: one scorer (from `shared_scorers`) and one micro-batcher per model."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

from bridge.proxy.microbatch import MicroBatcher
from bridge.proxy.prometheus import ProxyMetrics
from bridge.proxy.settings import BatchingSettings, ScorerSettings
from bridge.scoring.availability import ModelBreaker

logger = logging.getLogger(__name__)

ModelKey = tuple[str, int | None]
Loader = Callable[[str, "int | None"], Any]


# ScorerSettings fields passed to the scorer loader as they are (its options of the same names)
_SCORER_OPTIONS = (
    "cache_dir",
    "threads",
    "cache_size",
    "cache_bytes",
    "token_cache_bytes",
    "embedding_cache_bytes",
)


def _load(model: str, max_length: int | None, settings: ScorerSettings) -> Any:
    from bridge.scoring import shared_scorers

    options = {name: getattr(settings, name) for name in _SCORER_OPTIONS}
    return shared_scorers.get(model, max_length=max_length, **options)


class ModelPool:
    """Scorers and micro-batchers of the proxy's models, behind the model breaker.

    A model that failed to load is unavailable at once for every request (they fail open) while
    the breaker retries it in the background; ``status()`` and ``ready()`` feed the health check.
    """

    def __init__(
        self,
        scorer: ScorerSettings,
        batching: BatchingSettings,
        metrics: ProxyMetrics,
        *,
        loader: Loader | None = None,
    ) -> None:
        self._scorer_settings = scorer
        self._where: dict[str, str | None] = {}
        if loader is None:  # the process-wide loader, whose breaker every door shares
            from bridge.scoring import shared_scorers

            self.breaker = shared_scorers.breaker
            self._load: Loader = lambda model, length: _load(model, length, scorer)
            # the shared breaker keys a model by where its name resolves in this cache folder
            self._locate: Callable[[str], str | None] = lambda model: shared_scorers.where(
                model, scorer.cache_dir
            )
        else:  # injected (tests, faults): a breaker of its own around it
            self.breaker = ModelBreaker()
            self._load = lambda model, length: self.breaker.load(
                model, lambda: loader(model, length)
            )
            self._locate = lambda model: None
        self._batching = batching
        self._metrics = metrics
        self._batchers: dict[ModelKey, MicroBatcher] = {}
        self._locks: dict[ModelKey, asyncio.Lock] = {}
        self.configured: list[str] = []  # loaded at start-up: health waits for these
        self._asked: set[str] = set()  # every model this pool was asked for

    def where(self, model: str) -> str | None:
        """Where ``model`` resolves (the breaker's key beside the name), worked out once."""
        if model not in self._where:
            self._where[model] = self._locate(model)
        return self._where[model]

    def _guard(self, model: str) -> None:
        self.breaker.guard(model, where=self.where(model))

    async def _loaded(self, model: str, max_length: int | None) -> Any:
        self._asked.add(model)
        self._guard(model)  # unavailable: fail now, not after a thread hop
        return await asyncio.to_thread(self._load, model, max_length)

    async def scorer(self, model: str, max_length: int | None = None) -> Any:
        """The scorer itself (for embeddings of kNN query texts), loaded off the event loop."""
        return await self._loaded(model, max_length)

    async def batcher(self, model: str, max_length: int | None = None) -> MicroBatcher:
        """The batcher for ``model``; loads it (off the event loop) on first use."""
        key = (model, max_length)
        found = self._batchers.get(key)
        if found is not None:
            return found
        self._asked.add(model)
        self._guard(model)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            found = self._batchers.get(key)
            if found is not None:
                return found
            scorer = await self._loaded(model, max_length)
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
                nice=self._batching.model_nice,
                metrics=self._metrics,
                lookup=lookup,
            )
            self._batchers[key] = batcher
            return batcher

    async def preload(self, models: list[str]) -> None:
        """Load the configured models now; one that fails leaves the proxy up, health 503."""
        self.configured = list(models)
        for model in models:
            try:
                await self.batcher(model)
            except Exception as exc:  # the breaker logged it once, with the fix
                logger.debug("could not load model %s at start-up: %s", model, exc)
        self.update_metrics()

    def status(self) -> dict[str, dict[str, Any]]:
        """Per model: ``loaded``, ``unavailable`` (with reason, fix, retry) or ``not loaded``."""
        loaded = {key[0] for key in self._batchers}
        states: dict[str, dict[str, Any]] = {}
        for model in sorted({*self.configured, *self._asked, *loaded}):
            failure = self.breaker.failure(model, where=self.where(model))
            if failure is not None:
                states[model] = failure
            elif model in loaded:
                states[model] = {"state": "loaded"}
            elif model in self.configured:
                states[model] = {"state": "not loaded"}  # e.g. loaded by a retry, not yet used
        return states

    def ready(self) -> bool:
        """Every configured model loaded and no model this pool serves unavailable."""
        return all(state["state"] == "loaded" for state in self.status().values())

    async def refresh(self) -> None:
        """Pick up configured models the breaker's retry has loaded since (cached: no reload)."""
        loaded = {key[0] for key in self._batchers}
        for model in self.configured:
            if model not in loaded and not self.breaker.is_open(model, where=self.where(model)):
                with contextlib.suppress(Exception):
                    await self.batcher(model)
        self.update_metrics()

    def update_metrics(self) -> None:
        """`rerank_bridge_model_available{model}` (1/0) and its failed load attempts."""
        for model, state in self.status().items():
            available = state["state"] == "loaded"
            self._metrics.model_available.labels(model).set(1 if available else 0)
            self._metrics.model_load_failures.labels(model).set(state.get("failures", 0))

    async def aclose(self) -> None:
        for batcher in self._batchers.values():
            await batcher.aclose()
        self._batchers.clear()
