"""``RerankingSearch`` / ``AsyncRerankingSearch``: ``rerank=True`` over a user's search client.

Thin adapters over ``bridge.pipeline``: they merge keyword arguments into one search body, plan,
embed ``knn.query_text`` when asked, call the user's client, score the window and build the answer.
They return what the client returns (an ``ObjectApiResponse`` with the same ``meta`` for
elasticsearch-py, a ``dict`` for opensearch-py). Without ``rerank`` the call is passed through
untouched.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from bridge.config import RerankConfig
from bridge.errors import ModelError, UpstreamError
from bridge.pipeline import (
    Outcome,
    Plan,
    ScoreFn,
    build_answer,
    failed_outcome,
    plan_search,
    score_window,
    score_window_async,
    with_query_vectors,
)

logger = logging.getLogger(__name__)

# Search keyword arguments that belong in the request body (elasticsearch-py's body fields).
_BODY_KEYS = frozenset(
    {
        "aggregations",
        "aggs",
        "collapse",
        "docvalue_fields",
        "explain",
        "ext",
        "fields",
        "from",
        "highlight",
        "indices_boost",
        "knn",
        "min_score",
        "pit",
        "post_filter",
        "profile",
        "query",
        "rank",
        "rescore",
        "retriever",
        "runtime_mappings",
        "script_fields",
        "search_after",
        "seq_no_primary_term",
        "size",
        "slice",
        "sort",
        "_source",
        "stats",
        "stored_fields",
        "suggest",
        "terminate_after",
        "timeout",
        "track_scores",
        "track_total_hits",
        "version",
    }
)
_ALIASES = {
    "from_": "from",
    "source": "_source",
    "source_includes": "_source_includes",
    "source_excludes": "_source_excludes",
}


class _Scorer(Protocol):
    def score(self, query: str, passages: Sequence[str]) -> list[float]: ...

    def embed(self, texts: Sequence[str]) -> Any: ...


class ScorerRegistry(Protocol):
    """Where scorers come from: ``bridge.scoring.shared_scorers`` or any object like it."""

    def get(self, model: str, *, max_length: int | None = None) -> _Scorer: ...


def _default_registry() -> ScorerRegistry:
    from bridge.scoring import shared_scorers

    return shared_scorers


class _Base:
    def __init__(
        self,
        client: Any,
        *,
        defaults: RerankConfig | Mapping[str, Any] | None = None,
        scorers: ScorerRegistry | None = None,
        max_workers: int = 4,
        preload: bool = False,
    ) -> None:
        self.client = client
        self.defaults = RerankConfig.from_value(None, defaults)
        self._scorers = scorers
        self._max_workers = max_workers
        self._executor: ThreadPoolExecutor | None = None
        # The engines filter _source differently for wildcard patterns; restoring follows suit.
        module = type(client).__module__
        self.engine = "opensearch" if module.startswith("opensearchpy") else "elasticsearch"
        if preload:  # fail fast, here, with the typed error, rather than fail open on every search
            self.scorers.get(self.defaults.model, max_length=self.defaults.max_length)

    @property
    def scorers(self) -> ScorerRegistry:
        if self._scorers is None:
            self._scorers = _default_registry()
        return self._scorers

    def _pool(self) -> ThreadPoolExecutor:
        # Scoring runs here when a timeout applies: a timed-out ONNX run cannot be interrupted and
        # finishes in the background while the caller already has the engine's order.
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self._max_workers, thread_name_prefix="rerank")
        return self._executor

    def _shutdown(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None

    def _prepare(
        self, body: Mapping[str, Any] | None, rerank: Any, kwargs: dict[str, Any]
    ) -> Plan | None:
        section = rerank
        if body is not None and "rerank" in body and rerank in (None, True):
            section = body["rerank"]
        if section is None or section is False:
            return None
        config = RerankConfig.from_value(section, self.defaults)
        merged, params = split_search_args(body, kwargs)
        plan = plan_search(merged, config, params, engine=self.engine)
        if plan.status == "unsupported":
            logger.warning("search passed through without reranking: %s", plan.reason)
        return plan

    def _score_fn(self, config: RerankConfig) -> ScoreFn:
        return self.scorers.get(config.model, max_length=config.max_length).score

    def _embed(self, plan: Plan) -> Plan:
        try:
            scorer = self.scorers.get(plan.config.embedding_model)
            vectors = [[float(x) for x in row] for row in scorer.embed(list(plan.embed_texts))]
        except ModelError:
            raise
        except Exception as exc:
            raise ModelError(f"embedding knn query_text failed: {exc}") from exc
        return with_query_vectors(plan, vectors)


class RerankingSearch(_Base):
    """Wrap a sync elasticsearch-py / opensearch-py client; ``.search(..., rerank=True)``.

    ``defaults`` apply to every ``rerank=True``; ``scorers`` defaults to the process-wide
    ``bridge.scoring.shared_scorers``. ``preload=True`` loads the default model now and raises
    its typed error (``DownloadError``, ``OfflineError``, ``ModelNotFoundError``...) if it cannot;
    without it, a model that cannot load makes searches fail open (engine order), with one
    warning per model and process. Use as a context manager or call ``close()`` to stop the
    scoring threads (the client itself stays the caller's).
    """

    def search(
        self, *, body: Mapping[str, Any] | None = None, rerank: Any = None, **kwargs: Any
    ) -> Any:
        """Run a search; with ``rerank`` (``True``, a dict, a ``RerankConfig``) rerank it."""
        plan = self._prepare(body, rerank, kwargs)
        if plan is None:
            return self.client.search(**_passthrough(body, kwargs))
        if plan.embed_texts:
            plan = self._embed(plan)
        started = time.perf_counter()
        response = self.client.search(body=plan.body, **plan.params)
        engine_ms = _ms_since(started)
        raw = _body_of(response)
        if plan.status != "rerank":
            outcome = Outcome(status=plan.status)
        else:
            try:
                score = self._score_fn(plan.config)
            except Exception as exc:
                outcome = failed_outcome(plan, exc)
            else:
                executor = self._pool() if plan.config.timeout_ms is not None else None
                outcome = score_window(raw, plan, score, executor=executor)
        return _rebuild(response, build_answer(raw, plan, _with_engine_time(outcome, engine_ms)))

    def close(self) -> None:
        self._shutdown()

    def __enter__(self) -> RerankingSearch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncRerankingSearch(_Base):
    """Async twin of ``RerankingSearch`` for ``AsyncElasticsearch`` / ``AsyncOpenSearch``.

    Model loading, embedding and scoring run on worker threads so the event loop stays free
    (except ``preload=True``, which loads the default model in the constructor).
    """

    async def search(
        self, *, body: Mapping[str, Any] | None = None, rerank: Any = None, **kwargs: Any
    ) -> Any:
        """Run a search; with ``rerank`` (``True``, a dict, a ``RerankConfig``) rerank it."""
        plan = self._prepare(body, rerank, kwargs)
        if plan is None:
            return await self.client.search(**_passthrough(body, kwargs))
        loop = asyncio.get_running_loop()
        if plan.embed_texts:
            plan = await loop.run_in_executor(self._pool(), self._embed, plan)
        started = time.perf_counter()
        response = await self.client.search(body=plan.body, **plan.params)
        engine_ms = _ms_since(started)
        raw = _body_of(response)
        if plan.status != "rerank":
            outcome = Outcome(status=plan.status)
        else:
            try:
                score = await loop.run_in_executor(self._pool(), self._score_fn, plan.config)
            except Exception as exc:
                outcome = failed_outcome(plan, exc)
            else:
                outcome = await score_window_async(raw, plan, score, executor=self._pool())
        return _rebuild(response, build_answer(raw, plan, _with_engine_time(outcome, engine_ms)))

    async def close(self) -> None:
        self._shutdown()

    async def __aenter__(self) -> AsyncRerankingSearch:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def split_search_args(
    body: Mapping[str, Any] | None, kwargs: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """One body (``body=`` merged with body keyword arguments) and the remaining parameters."""
    merged = {k: v for k, v in (body or {}).items() if k != "rerank"}
    if "from_" in merged:
        merged["from"] = merged.pop("from_")
    params: dict[str, Any] = {}
    for key, value in kwargs.items():
        name = _ALIASES.get(key, key)
        if name in _BODY_KEYS:
            merged[name] = value
        else:
            params[name] = value
    return merged, params


def _passthrough(body: Mapping[str, Any] | None, kwargs: dict[str, Any]) -> dict[str, Any]:
    if body is None:
        return kwargs
    if "rerank" in body:  # rerank=False with a body section: the engine must not see it
        body = {k: v for k, v in body.items() if k != "rerank"}
    return {"body": body, **kwargs}


def _body_of(response: Any) -> Mapping[str, Any]:
    body = getattr(response, "body", response)
    if not isinstance(body, Mapping):
        raise UpstreamError(f"unexpected search response type {type(response).__name__}")
    return body


def _rebuild(response: Any, answer: dict[str, Any]) -> Any:
    # elasticsearch-py: same response class with the same transport meta (status, headers...).
    meta = getattr(response, "meta", None)
    if meta is not None and hasattr(response, "body"):
        return type(response)(body=answer, meta=meta)
    return answer


def _with_engine_time(outcome: Outcome, engine_ms: float) -> Outcome:
    timings = dict(outcome.timings_ms)
    timings["engine"] = engine_ms
    return Outcome(
        status=outcome.status,
        model_scores=outcome.model_scores,
        error=outcome.error,
        missing=outcome.missing,
        timings_ms=timings,
    )


def _ms_since(start: float) -> float:
    return round((time.perf_counter() - start) * 1000.0, 3)


__all__ = ["AsyncRerankingSearch", "RerankingSearch", "ScorerRegistry", "split_search_args"]
