"""Fail-open scoring through the doors: timeouts, model errors, on_failure='error', sync and async.

Each test runs the rerank flow through a production door over a canned engine answer: the sync
and async wrappers' doors with a plain scoring function, the proxy's model door with a coroutine
one (what its micro-batcher is).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from bridge.config import RerankConfig
from bridge.errors import ModelError, RerankTimeout
from bridge.pipeline.answer import Outcome
from bridge.pipeline.flow import Flow, Reranked, SearchRequest, arun_flow, rerank_flow, run_flow
from bridge.proxy.search_routes import ModelDoor
from bridge.search import AsyncDoor, AsyncRerankingSearch, RerankingSearch, SyncDoor

RESPONSE: dict[str, Any] = {
    "hits": {
        "max_score": 3.0,
        "hits": [
            {"_id": str(i), "_score": 3.0 - i, "_source": {"title": f"title {i}"}} for i in range(3)
        ],
    }
}


def make_plan(**config: Any) -> SearchRequest:
    base = {"fields": ["title"], "window_size": 3, "timeout_ms": 200}
    body = {"query": {"match": {"title": "title"}}, "size": 3}
    return SearchRequest(body, RerankConfig.from_value({**base, **config}))


ScoreFn = Callable[[str, Sequence[str]], Any]


class Canned:
    """A search client that answers every search with the same engine response."""

    def __init__(self, response: dict[str, Any]) -> None:
        self.response = response

    def search(self, **kwargs: Any) -> dict[str, Any]:
        return self.response


class AsyncCanned(Canned):
    async def search(self, **kwargs: Any) -> dict[str, Any]:  # type: ignore[override]
        return self.response


class FnScorers:
    """A scorer registry whose every scorer is ``score``."""

    def __init__(self, score: ScoreFn) -> None:
        self.score = score

    def get(self, model: str, *, max_length: int | None = None) -> FnScorers:
        return self


class FnBatcher:
    """The proxy's model pool and micro-batcher, scoring with a coroutine function."""

    def __init__(self, score: ScoreFn) -> None:
        self.models = self
        self.fn = score

    async def batcher(self, model: str, max_length: int | None = None) -> FnBatcher:
        return self

    def lookup(self, pairs: Sequence[tuple[str, str]]) -> list[float | None]:
        return [None] * len(pairs)  # no score cache: every pair goes to the function

    async def score_missing(
        self, pairs: Sequence[tuple[str, str]], found: list[float | None]
    ) -> Any:
        return await self.score(pairs)

    async def score(self, pairs: Sequence[tuple[str, str]]) -> Any:
        raw = self.fn(pairs[0][0], [p for _, p in pairs])
        return await raw if inspect.isawaitable(raw) else raw


def rerank_response(
    response: dict[str, Any], request: SearchRequest, score: ScoreFn
) -> dict[str, Any]:
    return _sync(response, request, score).answer


def score_window(response: dict[str, Any], request: SearchRequest, score: ScoreFn) -> Outcome:
    return _sync(response, request, score).outcome


def _sync(response: dict[str, Any], request: SearchRequest, score: ScoreFn) -> Reranked:
    door = SyncDoor(RerankingSearch(Canned(response), scorers=FnScorers(score)))
    return run_flow(Flow(rerank_flow(request)), door)


async def score_window_async(
    response: dict[str, Any], request: SearchRequest, score: ScoreFn
) -> Outcome:
    """A coroutine ``score`` goes behind the proxy's door, a plain one the async wrapper's."""
    door: Any
    if inspect.iscoroutinefunction(score):
        door = _ProxyDoor(response, score)
    else:
        door = AsyncDoor(AsyncRerankingSearch(AsyncCanned(response), scorers=FnScorers(score)))
    return (await arun_flow(Flow(rerank_flow(request)), door)).done().outcome


class _ProxyDoor(ModelDoor):
    """The proxy's model door, plus the engine answer the route would have sent in."""

    def __init__(self, response: dict[str, Any], score: ScoreFn) -> None:
        super().__init__(FnBatcher(score))  # type: ignore[arg-type]
        self.response = response

    async def search(self, effect: Any) -> dict[str, Any]:
        return self.response


def by_length_reversed(query: str, passages: Sequence[str]) -> list[float]:
    return [float(i) for i in range(len(passages))]


def slow(query: str, passages: Sequence[str]) -> list[float]:
    time.sleep(0.6)
    return [1.0] * len(passages)


def broken(query: str, passages: Sequence[str]) -> list[float]:
    raise RuntimeError("session exploded")


def test_scores_come_back_in_engine_order() -> None:
    assert score_window(RESPONSE, make_plan(), by_length_reversed).model_scores == [0.0, 1.0, 2.0]


def test_scorer_receives_query_text_and_passages() -> None:
    seen: list[tuple[str, list[str]]] = []

    def record(query: str, passages: Sequence[str]) -> list[float]:
        seen.append((query, list(passages)))
        return [0.0] * len(passages)

    score_window(RESPONSE, make_plan(), record)
    assert seen == [("title", ["title 0", "title 1", "title 2"])]


def test_timeout_fails_open() -> None:
    assert score_window(RESPONSE, make_plan(), slow).status == "timeout"


def test_timeout_returns_engine_order() -> None:
    answer = rerank_response(RESPONSE, make_plan(), slow)
    assert [h["_id"] for h in answer["hits"]["hits"]] == ["0", "1", "2"]


def test_timeout_raises_with_on_failure_error() -> None:
    with pytest.raises(RerankTimeout):
        score_window(RESPONSE, make_plan(on_failure="error"), slow)


def test_model_error_fails_open() -> None:
    outcome = score_window(RESPONSE, make_plan(), broken)
    assert (outcome.status, "session exploded" in (outcome.error or "")) == ("model_error", True)


def test_model_error_raises_model_error_with_on_failure_error() -> None:
    with pytest.raises(ModelError):
        score_window(RESPONSE, make_plan(on_failure="error"), broken)


def test_wrong_number_of_scores_is_a_model_error() -> None:
    outcome = score_window(RESPONSE, make_plan(), lambda q, p: [1.0])
    assert outcome.status == "model_error"


def test_non_finite_score_is_a_model_error() -> None:
    outcome = score_window(RESPONSE, make_plan(), lambda q, p: [float("nan")] * len(p))
    assert outcome.status == "model_error"


def test_no_timeout_runs_inline() -> None:
    outcome = score_window(RESPONSE, make_plan(timeout_ms=None), slow)
    assert outcome.status == "ok"


def test_empty_response_is_not_scored() -> None:
    empty = {"hits": {"max_score": None, "hits": []}}
    assert score_window(empty, make_plan(), broken).status == "empty"


async def test_async_plain_scorer() -> None:
    outcome = await score_window_async(RESPONSE, make_plan(), by_length_reversed)
    assert outcome.model_scores == [0.0, 1.0, 2.0]


async def test_async_coroutine_scorer() -> None:
    async def score(query: str, passages: Sequence[str]) -> list[float]:
        return [0.5] * len(passages)

    assert (await score_window_async(RESPONSE, make_plan(), score)).model_scores == [0.5] * 3


async def test_async_timeout_fails_open() -> None:
    async def score(query: str, passages: Sequence[str]) -> list[float]:
        await asyncio.sleep(1)
        return [0.5] * len(passages)

    assert (await score_window_async(RESPONSE, make_plan(), score)).status == "timeout"


async def test_async_timeout_raises_with_on_failure_error() -> None:
    async def score(query: str, passages: Sequence[str]) -> list[float]:
        await asyncio.sleep(1)
        return [0.5] * len(passages)

    with pytest.raises(RerankTimeout):
        await score_window_async(RESPONSE, make_plan(on_failure="error"), score)


async def test_async_model_error_fails_open() -> None:
    assert (await score_window_async(RESPONSE, make_plan(), broken)).status == "model_error"
