"""The rerank flow, sans I/O: one generator that every door drives.

``rerank_flow(request)`` plans the search, then *yields* the effects it needs and receives their
results: ``Embed`` (vectors for kNN ``query_text``), ``Search`` (the engine's JSON answer) and
``Score`` (model scores for the window's passages, within ``timeout_s``). It returns a
``Reranked``: the plan, the scoring outcome and the caller's answer. A door performs effects and
nothing else; when performing one fails, the door throws the exception into the flow, which decides
what it means here, in one place: fail open or raise (``on_failure``), a timeout, whose mistake an
embedding model is. Timings (``engine``, ``texts``, ``model``, ``total``) are measured here too, so
every door's ``explain`` carries the same fields.

Drive it with ``run_flow`` (sync) or ``arun_flow`` (async) and an object that has one method per
effect name (``embed``, ``search``, ``score``); or step a ``Flow`` by hand (``send``/``throw``),
as ``_msearch`` does to send the searches of several flows as one engine request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Generator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from bridge.config import PhaseConfig, RerankConfig
from bridge.errors import (
    BridgeError,
    ConfigError,
    ModelError,
    ModelUnavailableError,
    RerankTimeout,
)
from bridge.pipeline.answer import Outcome, OutcomeStatus, build_answer, engine_score
from bridge.pipeline.effects import CheckVectors, Effect, Embed, Score, Search
from bridge.pipeline.phases import PhasedOrder, PhaseReport, run_phases
from bridge.pipeline.plan import Plan, plan_search, with_query_vectors
from bridge.pipeline.stored_vectors import stored_vector
from bridge.pipeline.texts import Passages, passage_texts

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SearchRequest:
    """A search to rerank: the body and URL parameters as the engine takes them, the config.

    ``section`` is the caller's ``rerank`` value as written: when it names ``embedding_model``,
    a model that cannot embed is the caller's mistake (``ConfigError``), not the server's.
    """

    body: Mapping[str, Any]
    config: RerankConfig
    params: Mapping[str, Any] = field(default_factory=dict)
    engine: str = "elasticsearch"
    section: object = None


@dataclass(frozen=True)
class Reranked:
    """What a flow returns: its plan, the scoring outcome and the answer for the caller."""

    plan: Plan
    outcome: Outcome
    answer: dict[str, Any]


FlowGen = Generator[Effect, Any, Reranked]


def rerank_flow(request: SearchRequest) -> FlowGen:
    """Plan, embed, search, score, answer; see the module docstring for the protocol."""
    plan = plan_search(request.body, request.config, request.params, engine=request.engine)
    if plan.status == "unsupported":
        logger.warning("search passed through without reranking: %s", plan.reason)
    if plan.embed_texts:
        try:
            vectors = yield Embed(plan.config.embedding_model, plan.embed_texts)
        except Exception as exc:
            raise _embedding_error(exc, request.section) from exc
        plan = with_query_vectors(plan, [[float(x) for x in row] for row in vectors])
    started = time.perf_counter()
    response = yield Search(plan.body, plan.params)
    engine_ms = _ms_since(started)
    outcome = yield from _score_window(response, plan)
    outcome = replace(outcome, timings_ms={**outcome.timings_ms, "engine": engine_ms})
    return Reranked(plan, outcome, build_answer(response, plan, outcome))


def _score_window(response: Mapping[str, Any], plan: Plan) -> Generator[Effect, Any, Outcome]:
    """Score the top ``plan.window`` hits, failing open unless ``on_failure="error"``.

    One scoring path: a single model is a one-phase run over the whole window, so phases,
    chunking, the budget and fail-open behave the same with one model or several.
    """
    if plan.status != "rerank":
        return Outcome(status=plan.status)
    hits = window_hits(response, plan)
    if not hits:
        return Outcome(status="empty")
    config = plan.config
    started = time.perf_counter()
    timings: dict[str, float] = {}
    try:
        passages = passage_texts(hits, config)
    except Exception as exc:
        return _failed(plan, "model_error", exc, started, timings)
    timings["texts"] = _ms_since(started)
    deadline = None if config.timeout_ms is None else started + config.timeout_ms / 1000.0
    phased = yield from run_phases(
        plan.query_text,
        passages.texts,
        [engine_score(hit) for hit in hits],
        config.phases or (PhaseConfig(config.model, len(hits)),),
        fusion=config.fusion,
        max_length=config.max_length,
        deadline=deadline,
        chunking=config.chunking,
        vectors={f: [stored_vector(hit, f) for hit in hits] for f in config.vector_fields},
        indices=[_index_of(hit) for hit in hits],
    )
    timings["model"] = round(sum(r.ms for r in phased.reports), 3)
    if not config.phases:
        return _one_model_outcome(plan, phased, passages, started, timings)
    failed = next((r for r in phased.reports if r.status in ("timeout", "model_error")), None)
    if failed is not None and (config.on_failure == "error" or not phased.reranked):
        status: OutcomeStatus = "timeout" if failed.status == "timeout" else "model_error"
        outcome = _failed(plan, status, _phase_error(failed, config), started, timings)
        return replace(outcome, phases=phased)
    error = None
    if failed is not None:  # a later phase failed open: the earlier phases' order stands
        error = _failed_open(failed.status, _phase_error(failed, config))
    timings["total"] = _ms_since(started)
    return Outcome(
        status="ok" if failed is None else "partial",
        error=error,
        missing=dict(passages.missing),
        timings_ms=timings,
        phases=phased,
    )


def _one_model_outcome(
    plan: Plan, phased: PhasedOrder, passages: Passages, started: float, timings: dict[str, float]
) -> Outcome:
    """A single model's run as scores by engine position (the answer fuses them, with
    ``min_score`` and ``rescore`` fusion, which phases do not take)."""
    report = phased.reports[0]
    if report.status == "timeout":
        reason = f"reranking exceeded timeout_ms={plan.config.timeout_ms}"
        return _failed(plan, "timeout", reason, started, timings)
    if report.status != "reranked":
        return _failed(plan, "model_error", report.error or "model error", started, timings)
    count = len(passages.texts)
    best = phased.last_best_windows()
    timings["total"] = _ms_since(started)
    return Outcome(
        status="ok",
        model_scores=[report.model_scores[i] for i in range(count)],
        missing=dict(passages.missing),
        timings_ms=timings,
        best_windows=[best[i] for i in range(count)] if best else None,
    )


def _index_of(hit: Mapping[str, Any]) -> str | None:
    index = hit.get("_index")
    return index if isinstance(index, str) else None


def _phase_error(report: PhaseReport, config: RerankConfig) -> BaseException | str:
    if report.status == "timeout":
        return f"phase {report.model!r} exceeded timeout_ms={config.timeout_ms}"
    return report.error or "model error"


def window_hits(response: Mapping[str, Any], plan: Plan) -> list[Mapping[str, Any]]:
    """The hits to rerank: the top ``plan.window`` of the engine response."""
    hits_obj = response.get("hits")
    hits = hits_obj.get("hits", []) if isinstance(hits_obj, Mapping) else []
    return list(hits[: plan.window])


def _embedding_error(exc: Exception, section: object) -> BridgeError:
    if not isinstance(exc, ModelError):
        return ModelError(f"embedding knn query_text failed: {exc}")
    if isinstance(section, Mapping) and "embedding_model" in section:
        return ConfigError(str(exc), field="rerank.embedding_model")
    return exc


def _failed(
    plan: Plan,
    status: OutcomeStatus,
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
    _failed_open(status, exc)
    return Outcome(
        status=status, error=message, timings_ms={**timings, "total": _ms_since(started)}
    )


def _failed_open(status: str, exc: BaseException | str) -> str:
    """Log a fail-open once (quietly when the model breaker already announced it)."""
    message = str(exc) if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
    # a model that cannot load was announced once, with its fix, by the model breaker
    announced = isinstance(exc, ModelUnavailableError) or getattr(exc, "announced", False)
    log = logger.debug if announced else logger.warning
    log("reranking failed open (%s), returning the previous order: %s", status, message)
    return message


def _ms_since(start: float) -> float:
    return round((time.perf_counter() - start) * 1000.0, 3)


class Flow:
    """A flow stepped by hand: ``effect`` is what it waits for, ``result`` once it is done.

    Creating one runs the flow up to its first effect, so planning errors raise here.
    """

    def __init__(self, gen: FlowGen) -> None:
        self._gen = gen
        self.effect: Effect | None = None
        self.result: Reranked | None = None
        self._step(gen.send, None)

    def send(self, value: Any) -> None:
        """Resume with the result of ``effect``."""
        self._step(self._gen.send, value)

    def throw(self, exc: BaseException) -> None:
        """Resume with the failure of ``effect``; what the flow does not handle raises here."""
        self._step(self._gen.throw, exc)

    def close(self) -> None:
        """Abandon the flow (its search was answered by someone else, e.g. an engine error)."""
        self._gen.close()
        self.effect = None

    def done(self) -> Reranked:
        if self.result is None:
            raise RuntimeError(f"flow is still waiting for {self.effect!r}")
        return self.result

    def _step(self, resume: Callable[[Any], Effect], value: Any) -> None:
        try:
            self.effect = resume(value)
        except StopIteration as stop:
            self.effect = None
            self.result = stop.value


def run_flow(flow: Flow, door: Any) -> Reranked:
    """Perform each effect with ``door.<effect.name>(effect)`` until the flow is done."""
    while flow.effect is not None:
        try:
            value = getattr(door, flow.effect.name)(flow.effect)
        except Exception as exc:
            flow.throw(exc)
        else:
            flow.send(value)
    return flow.done()


async def arun_flow(flow: Flow, door: Any, *, until: type[Search] | None = None) -> Flow:
    """Async twin: ``await door.<effect.name>(effect)``; stops early at an ``until`` effect."""
    while flow.effect is not None and not (until and isinstance(flow.effect, until)):
        perform: Callable[[Effect], Awaitable[Any]] = getattr(door, flow.effect.name)
        try:
            value = await perform(flow.effect)
        except Exception as exc:
            flow.throw(exc)
        else:
            flow.send(value)
    return flow


__all__ = [
    "CheckVectors",
    "Effect",
    "Embed",
    "Flow",
    "FlowGen",
    "Reranked",
    "Score",
    "Search",
    "SearchRequest",
    "arun_flow",
    "rerank_flow",
    "run_flow",
    "window_hits",
]
