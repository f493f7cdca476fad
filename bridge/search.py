"""``RerankingSearch`` / ``AsyncRerankingSearch``: ``rerank=True`` over a user's search client.

Thin doors over ``bridge.pipeline.flow``: they merge keyword arguments into one search body and
drive ``rerank_flow``, performing its effects (embed kNN query texts, search with the user's
client, score the window) and nothing else. They return what the client returns (an
``ObjectApiResponse`` with the same ``meta`` for elasticsearch-py, a ``dict`` for opensearch-py).
Without ``rerank`` the call is passed through untouched.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

from bridge.chunking import ChunkedScores
from bridge.config import RerankConfig
from bridge.errors import ModelError, UpstreamError
from bridge.pipeline.flow import (
    CheckVectors,
    Embed,
    Flow,
    Score,
    Search,
    SearchRequest,
    arun_flow,
    rerank_flow,
    run_flow,
)
from bridge.vectors.checks import VectorChecks, Verdicts, mappings_of

_T = TypeVar("_T")

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
        self.vector_checks = VectorChecks()  # which model wrote an index's stored vectors
        # The engines filter _source differently for wildcard patterns; restoring follows suit.
        module = type(client).__module__
        self.engine = "opensearch" if module.startswith("opensearchpy") else "elasticsearch"
        if preload:  # fail fast, here, with the typed error, rather than fail open on every search
            for phase in self.defaults.phase_list():
                length = phase.max_length or self.defaults.max_length
                self.scorers.get(phase.model, max_length=length)

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

    def _request(
        self, body: Mapping[str, Any] | None, rerank: Any, kwargs: dict[str, Any]
    ) -> SearchRequest | None:
        section = rerank
        if body is not None and "rerank" in body and rerank in (None, True):
            section = body["rerank"]
        if section is None or section is False:
            return None
        config = RerankConfig.from_value(section, self.defaults)
        merged, params = split_search_args(body, kwargs)
        return SearchRequest(merged, config, params, engine=self.engine, section=section)


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
        request = self._request(body, rerank, kwargs)
        if request is None:
            return self.client.search(**_passthrough(body, kwargs))
        door = SyncDoor(self)
        done = run_flow(Flow(rerank_flow(request)), door)
        return _rebuild(door.response, done.answer)

    def close(self) -> None:
        self._shutdown()

    def __enter__(self) -> RerankingSearch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SyncDoor:
    """Performs one flow's effects in the caller's thread; scoring under a timeout on the pool."""

    def __init__(self, owner: _Base) -> None:
        self.owner = owner
        self.response: Any = None

    def embed(self, effect: Embed) -> Any:
        scorer = self.owner.scorers.get(effect.model, max_length=effect.max_length)
        return scorer.embed(list(effect.texts))

    def search(self, effect: Search) -> Mapping[str, Any]:
        self.response = self.owner.client.search(body=effect.body, **effect.params)
        return _body_of(self.response)

    def check_vectors(self, effect: CheckVectors) -> Verdicts:
        def read(indices: Sequence[str]) -> Mapping[str, Any]:
            return mappings_of(_body_of(self.owner.client.indices.get_mapping(index=indices)))

        return self.owner.vector_checks.check(effect, read)

    def scorer(self, effect: Score) -> _Scorer:
        return self.owner.scorers.get(effect.model, max_length=effect.max_length)

    def score(self, effect: Score) -> list[float] | ChunkedScores:
        scoring = scoring_of(self.scorer(effect), effect)
        if effect.timeout_s is None:
            return scoring()
        return self.owner._pool().submit(scoring).result(timeout=effect.timeout_s)


def scoring_of(scorer: Any, effect: Score) -> Callable[[], list[float] | ChunkedScores]:
    """The model work of a Score effect: whole passages, or with ``chunking`` their windows."""
    if effect.chunking is None:
        return functools.partial(scorer.score, effect.query, effect.passages)
    score_chunked = getattr(scorer, "score_chunked", None)
    if score_chunked is None:
        raise ModelError(f"{type(scorer).__name__} cannot score passages as windows (chunking)")
    return functools.partial(score_chunked, effect.query, effect.passages, effect.chunking)


class AsyncRerankingSearch(_Base):
    """Async twin of ``RerankingSearch`` for ``AsyncElasticsearch`` / ``AsyncOpenSearch``.

    Model loading, embedding and scoring run on worker threads so the event loop stays free
    (except ``preload=True``, which loads the default model in the constructor).
    """

    async def search(
        self, *, body: Mapping[str, Any] | None = None, rerank: Any = None, **kwargs: Any
    ) -> Any:
        """Run a search; with ``rerank`` (``True``, a dict, a ``RerankConfig``) rerank it."""
        request = self._request(body, rerank, kwargs)
        if request is None:
            return await self.client.search(**_passthrough(body, kwargs))
        door = AsyncDoor(self)
        flow = await arun_flow(Flow(rerank_flow(request)), door)
        return _rebuild(door.response, flow.done().answer)

    async def close(self) -> None:
        self._shutdown()

    async def __aenter__(self) -> AsyncRerankingSearch:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class AsyncDoor:
    """Performs one flow's effects from the event loop: model work on the wrapper's threads."""

    def __init__(self, owner: _Base) -> None:
        self.owner = owner
        self.sync = SyncDoor(owner)
        self.response: Any = None

    async def embed(self, effect: Embed) -> Any:
        return await self._off_loop(self.sync.embed, effect)

    async def search(self, effect: Search) -> Mapping[str, Any]:
        self.response = await self.owner.client.search(body=effect.body, **effect.params)
        return _body_of(self.response)

    async def check_vectors(self, effect: CheckVectors) -> Verdicts:
        async def read(indices: Sequence[str]) -> Mapping[str, Any]:
            answer = await self.owner.client.indices.get_mapping(index=list(indices))
            return mappings_of(_body_of(answer))

        return await self.owner.vector_checks.acheck(effect, read, self._off_loop)

    async def score(self, effect: Score) -> list[float] | ChunkedScores:
        scorer = await self._off_loop(self.sync.scorer, effect)
        scoring = self._off_loop(scoring_of(scorer, effect))
        return await asyncio.wait_for(scoring, effect.timeout_s)

    def _off_loop(self, fn: Callable[..., _T], *args: Any) -> asyncio.Future[_T]:
        return asyncio.get_running_loop().run_in_executor(self.owner._pool(), fn, *args)


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


__all__ = ["AsyncRerankingSearch", "RerankingSearch", "ScorerRegistry", "split_search_args"]
