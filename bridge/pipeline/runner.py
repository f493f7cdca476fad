"""Score the window of an engine response, failing open (sync and async twins).

The scoring callable is injected: ``score(query, passages) -> list[float]`` (the wrapper passes a
``Scorer.score``; the proxy its micro-batcher, which may be a coroutine function). ``timeout_ms``
bounds passage building plus scoring. A model error or an exceeded timeout gives an ``Outcome``
that keeps the engine's order (logged as a warning) or, with ``on_failure="error"``, raises
``ModelError`` / ``RerankTimeout``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from bridge.errors import BridgeError, ModelError, ModelUnavailableError, RerankTimeout
from bridge.pipeline.answer import Outcome, build_answer
from bridge.pipeline.plan import Plan
from bridge.pipeline.texts import Passages, passage_texts

logger = logging.getLogger(__name__)

ScoreFn = Callable[[str, Sequence[str]], Sequence[float]]
AsyncScoreFn = Callable[[str, Sequence[str]], Awaitable[Sequence[float]]]
AnyScoreFn = ScoreFn | AsyncScoreFn


def window_hits(response: Mapping[str, Any], plan: Plan) -> list[Mapping[str, Any]]:
    """The hits to rerank: the top ``plan.window`` of the engine response."""
    hits_obj = response.get("hits")
    hits = hits_obj.get("hits", []) if isinstance(hits_obj, Mapping) else []
    return list(hits[: plan.window])


def score_window(
    response: Mapping[str, Any],
    plan: Plan,
    score: ScoreFn,
    *,
    executor: Executor | None = None,
) -> Outcome:
    """Score the window synchronously; a timeout runs the work on ``executor`` (or a new thread)."""
    if plan.status != "rerank":
        return Outcome(status=plan.status)
    hits = window_hits(response, plan)
    if not hits:
        return Outcome(status="empty")
    started = time.perf_counter()
    timings: dict[str, float] = {}

    def work() -> tuple[Passages, list[float]]:
        began = time.perf_counter()
        passages = passage_texts(hits, plan.config)
        timings["texts"] = _ms_since(began)
        scored_at = time.perf_counter()
        scores = _checked(score(plan.query_text, passages.texts), len(hits))
        timings["model"] = _ms_since(scored_at)
        return passages, scores

    timeout = plan.config.timeout_ms
    try:
        if timeout is None:
            passages, scores = work()
        else:
            owned = executor is None
            pool = executor or ThreadPoolExecutor(max_workers=1, thread_name_prefix="rerank")
            try:
                passages, scores = pool.submit(work).result(timeout=timeout / 1000.0)
            finally:
                if owned:
                    pool.shutdown(wait=False)
    except FutureTimeout:
        return _failed(
            plan, "timeout", f"reranking exceeded timeout_ms={timeout}", started, timings
        )
    except Exception as exc:
        return _failed(plan, "model_error", exc, started, timings)
    timings["total"] = _ms_since(started)
    return _ok(passages, scores, timings)


async def score_window_async(
    response: Mapping[str, Any],
    plan: Plan,
    score: AnyScoreFn,
    *,
    executor: Executor | None = None,
) -> Outcome:
    """Async twin: a coroutine ``score`` is awaited; a plain one runs on ``executor``."""
    if plan.status != "rerank":
        return Outcome(status=plan.status)
    hits = window_hits(response, plan)
    if not hits:
        return Outcome(status="empty")
    started = time.perf_counter()
    timings: dict[str, float] = {}
    loop = asyncio.get_running_loop()

    async def work() -> tuple[Passages, list[float]]:
        began = time.perf_counter()
        passages = passage_texts(hits, plan.config)
        timings["texts"] = _ms_since(began)
        scored_at = time.perf_counter()
        if inspect.iscoroutinefunction(score):
            raw = await score(plan.query_text, passages.texts)
        else:
            raw = await loop.run_in_executor(executor, score, plan.query_text, passages.texts)
            if inspect.isawaitable(raw):
                raw = await raw
        scores = _checked(raw, len(hits))
        timings["model"] = _ms_since(scored_at)
        return passages, scores

    timeout = plan.config.timeout_ms
    try:
        passages, scores = await asyncio.wait_for(
            work(), None if timeout is None else timeout / 1000.0
        )
    except asyncio.TimeoutError:
        return _failed(
            plan, "timeout", f"reranking exceeded timeout_ms={timeout}", started, timings
        )
    except Exception as exc:
        return _failed(plan, "model_error", exc, started, timings)
    timings["total"] = _ms_since(started)
    return _ok(passages, scores, timings)


def failed_outcome(plan: Plan, exc: BaseException | str) -> Outcome:
    """Outcome for a failure before scoring (e.g. the model would not load); honours on_failure."""
    return _failed(plan, "model_error", exc, time.perf_counter(), {})


def rerank_response(
    response: Mapping[str, Any],
    plan: Plan,
    score: ScoreFn,
    *,
    executor: Executor | None = None,
) -> dict[str, Any]:
    """``score_window`` then ``build_answer``."""
    return build_answer(response, plan, score_window(response, plan, score, executor=executor))


def _checked(raw: Sequence[float], expected: int) -> list[float]:
    scores = [float(s) for s in raw]
    if len(scores) != expected:
        raise ModelError(f"scorer returned {len(scores)} scores for {expected} passages")
    if not all(math.isfinite(s) for s in scores):
        raise ModelError("scorer returned a non-finite score")
    return scores


def _ok(passages: Passages, scores: list[float], timings: dict[str, float]) -> Outcome:
    return Outcome(
        status="ok", model_scores=scores, missing=dict(passages.missing), timings_ms=dict(timings)
    )


def _failed(
    plan: Plan,
    status: Any,
    exc: BaseException | str,
    started: float,
    timings: dict[str, float],
) -> Outcome:
    message = str(exc) if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
    if plan.config.on_failure == "error":
        if status == "timeout":
            raise RerankTimeout(message)
        if isinstance(exc, BridgeError):
            raise exc
        raise ModelError(message) from (exc if isinstance(exc, BaseException) else None)
    # a model that cannot load was announced once, with its fix, by the model breaker
    announced = isinstance(exc, ModelUnavailableError) or getattr(exc, "announced", False)
    log = logger.debug if announced else logger.warning
    log("reranking failed open (%s), returning engine order: %s", status, message)
    elapsed = dict(timings)
    elapsed["total"] = _ms_since(started)
    return Outcome(status=status, error=message, timings_ms=elapsed)


def _ms_since(start: float) -> float:
    return round((time.perf_counter() - start) * 1000.0, 3)


__all__ = [
    "AnyScoreFn",
    "AsyncScoreFn",
    "ScoreFn",
    "failed_outcome",
    "rerank_response",
    "score_window",
    "score_window_async",
    "window_hits",
]
