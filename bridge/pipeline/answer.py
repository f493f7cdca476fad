"""Build the caller's answer from the engine response, the plan and the scoring outcome (pure).

The answer keeps exactly the engine's keys: hits are reordered, sliced to the page the caller
asked for, ``_score`` is the fused score, ``max_score`` the highest answered score, and
``_source`` is filtered back to what the caller asked. Order: the fused window first, then the
hits past it in the engine's order with their engine ``_score``; with ``rescore`` fusion the hits
past the window get ``query_weight * engine score`` and the whole list is sorted by score, as
Elasticsearch's rescore does (ties in engine order). Aggregations, suggest, total hits and the
rest are the engine's objects, untouched. Only with ``explain`` does a hit get ``_rerank`` and
the response a top-level ``rerank`` object.

A ``filter_path`` parameter is applied here, to the answer (the engine call went without it).
``min_score`` keeps only reranked hits whose model score reaches it: hits below it, and the
never-scored hits beyond the window, are left out (so pages stay slices of one list); when
scoring failed it does not apply. ``hits.total`` stays the engine's count.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from bridge.chunking import BestWindow
from bridge.pipeline.fuse import beyond_window_scores, fuse, fused_order
from bridge.pipeline.phases import PhasedOrder, PhaseReport
from bridge.pipeline.plan import Plan
from bridge.pipeline.source import apply_filter_path, apply_source_filter

OutcomeStatus = Literal[
    "ok", "partial", "empty", "timeout", "model_error", "skipped", "unsupported"
]


@dataclass(frozen=True)
class Outcome:
    """What scoring produced: model scores for the window hits (engine order) or why not.

    ``timings_ms`` holds ``texts``, ``model`` and, when the adapter measured it, ``engine``.
    ``best_windows``: with chunking, each window hit's best window (``bridge.chunking``).
    With phases, ``phases`` holds the order and every phase's report; ``partial``: a later
    phase failed open and the earlier phases' order stands.
    """

    status: OutcomeStatus
    model_scores: list[float] | None = None
    error: str | None = None
    missing: dict[str, int] = field(default_factory=dict)
    timings_ms: dict[str, float] = field(default_factory=dict)
    best_windows: list[BestWindow] | None = None
    phases: PhasedOrder | None = None

    @property
    def reranked(self) -> bool:
        if self.phases is not None:
            return self.status in ("ok", "partial") and self.phases.reranked
        return self.status == "ok" and self.model_scores is not None


def build_answer(response: Mapping[str, Any], plan: Plan, outcome: Outcome) -> dict[str, Any]:
    """The response the caller sees (a new top-level dict; untouched parts are shared)."""
    if plan.status != "rerank":
        answer = dict(response)
        if plan.config.explain:
            answer["rerank"] = _summary(plan, outcome, reranked=0, dropped=0)
        return answer

    hits_obj = response.get("hits")
    hits: list[Mapping[str, Any]] = (
        list(hits_obj.get("hits", [])) if isinstance(hits_obj, Mapping) else []
    )
    window_hits = hits[: plan.window]
    explain = plan.config.explain
    ordered: list[dict[str, Any]] = []
    max_score: Any = hits_obj.get("max_score") if isinstance(hits_obj, Mapping) else None
    dropped = 0

    scores = outcome.model_scores
    phased = outcome.phases
    if outcome.reranked and phased is not None and len(phased.scores) == len(window_hits):
        # phases: each phase ordered the top of the previous one; the window first, then the rest
        n = len(window_hits)
        engine_scores = [engine_score(h) for h in hits]
        last_model = phased.last_model_scores()
        best_windows = phased.last_best_windows() if explain else {}
        order = phased.order + list(range(n, len(hits)))
        for index in order:
            if index >= n:
                ordered.append(_unscored(hits[index], index, None, explain, reranked=True))
                continue
            hit = dict(window_hits[index])
            final = phased.scores[index]
            hit["_score"] = final
            if explain:
                hit["_rerank"] = {
                    "status": "reranked" if index in last_model else "engine_order",
                    "model_score": last_model.get(index),
                    "engine_score": engine_scores[index],
                    "engine_rank": index + 1,
                    "fused_score": final,
                    "phases": [_phase_scores(r, index) for r in phased.reports],
                }
                if index in best_windows:
                    hit["_rerank"]["best_window"] = best_windows[index].to_dict()
            ordered.append(hit)
        reranked = len(last_model)
        answered = [h for h in ordered[:n] if isinstance(h.get("_score"), (int, float))]
        if answered:
            max_score = max(h["_score"] for h in answered)
    elif outcome.reranked and scores is not None and len(scores) == len(window_hits):
        fusion = plan.config.fusion
        min_score = plan.config.min_score
        engine_scores = [engine_score(h) for h in hits]
        fused = fuse(engine_scores[: len(window_hits)], scores, fusion)
        n = len(window_hits)
        rest_scores: list[float] = []
        if min_score is not None:
            order = fused_order(fused)  # only judged hits qualify: the rest were never scored
        elif fusion.method == "rescore":
            # Elasticsearch's rescore: the rest get query_weight x engine score, all sorted
            # together; ties keep engine order (Lucene: shard, then doc id).
            rest_scores = beyond_window_scores(engine_scores[n:], fusion)
            order = fused_order(fused + rest_scores)
        else:
            order = fused_order(fused) + list(range(n, len(hits)))  # window first, then the rest
        for index in order:
            if index >= n:
                rest_score = rest_scores[index - n] if rest_scores else None
                ordered.append(_unscored(hits[index], index, rest_score, explain, reranked=True))
                continue
            if min_score is not None and scores[index] < min_score:
                dropped += 1
                continue
            hit = dict(window_hits[index])
            hit["_score"] = fused[index]
            if explain:
                hit["_rerank"] = {
                    "status": "reranked",
                    "model_score": scores[index],
                    "engine_score": engine_scores[index],
                    "engine_rank": index + 1,
                    "fused_score": fused[index],
                }
                if outcome.best_windows is not None:
                    hit["_rerank"]["best_window"] = outcome.best_windows[index].to_dict()
            ordered.append(hit)
        reranked = sum(1 for i in order if i < n) - dropped
        # rescore: the top of the whole list (as the engine reports it); else of the window.
        answered = ordered if rest_scores else ordered[:reranked]
        if answered:
            max_score = max(h["_score"] for h in answered)
    else:
        reranked = 0
        for index, engine_hit in enumerate(hits):
            ordered.append(_unscored(engine_hit, index, None, explain, reranked=False))

    page = ordered[plan.from_ : plan.from_ + plan.size]
    if plan.restore_source:
        for hit in page:
            _restore_source(hit, plan)
    if plan.added_fields:
        for hit in page:
            _drop_added_fields(hit, plan.added_fields)
    for final_rank, hit in enumerate(page, start=plan.from_ + 1):
        if explain:
            hit["_rerank"]["rank"] = final_rank

    answer = dict(response)
    if isinstance(hits_obj, Mapping):
        new_hits = dict(hits_obj)
        new_hits["hits"] = page
        if "max_score" in new_hits:
            new_hits["max_score"] = max_score
        answer["hits"] = new_hits
    if plan.filter_path:
        answer = apply_filter_path(answer, plan.filter_path)
    if explain:
        answer["rerank"] = _summary(plan, outcome, reranked=reranked, dropped=dropped)
    return answer


def _unscored(
    engine_hit: Mapping[str, Any],
    index: int,
    rest_score: float | None,
    explain: bool,
    *,
    reranked: bool,
) -> dict[str, Any]:
    """A hit the model did not score: its engine ``_score``, or ``rest_score`` (rescore's
    ``query_weight * engine score``) when given."""
    copy = dict(engine_hit)
    if rest_score is not None:
        copy["_score"] = rest_score
    if explain:
        copy["_rerank"] = {
            "status": "beyond_window" if reranked else "engine_order",
            "engine_score": engine_score(engine_hit),
            "engine_rank": index + 1,
        }
        if rest_score is not None:
            copy["_rerank"]["fused_score"] = rest_score
    return copy


def _phase_scores(report: PhaseReport, index: int) -> dict[str, float] | None:
    """One phase's scores for the hit at engine position ``index`` (None: not reranked)."""
    if index not in report.model_scores:
        return None
    return {"model_score": report.model_scores[index], "fused_score": report.fused_scores[index]}


def _restore_source(hit: dict[str, Any], plan: Plan) -> None:
    source = hit.get("_source")
    if not plan.source.enabled:
        hit.pop("_source", None)
    elif isinstance(source, Mapping):
        hit["_source"] = apply_source_filter(source, plan.source, plan.engine)


def _drop_added_fields(hit: dict[str, Any], added: tuple[str, ...]) -> None:
    """Take the stored vectors the phases asked for out of the hit's ``fields``."""
    found = hit.get("fields")
    if not isinstance(found, Mapping):
        return
    kept = {k: v for k, v in found.items() if k not in added}
    if kept:
        hit["fields"] = kept
    else:
        hit.pop("fields", None)


def engine_score(hit: Mapping[str, Any]) -> float | None:
    score = hit.get("_score")
    return float(score) if isinstance(score, (int, float)) else None


def _summary(plan: Plan, outcome: Outcome, *, reranked: int, dropped: int) -> dict[str, Any]:
    config = plan.config
    out: dict[str, Any] = {
        "status": outcome.status if plan.status == "rerank" else plan.status,
        "model": config.model,
        "query": plan.query_text or None,
        "window_size": plan.window,
        "reranked": reranked,
        "dropped_below_min_score": dropped,
        "fusion": config.fusion.to_dict(),
        "min_score": config.min_score,
        "timings_ms": dict(outcome.timings_ms),
        "missing_fields": dict(outcome.missing),
    }
    if config.chunking is not None:
        out["chunking"] = config.chunking.to_dict()
    if config.phases:
        out["model"] = config.phases[-1].model
        reports = outcome.phases.reports if outcome.phases is not None else []
        out["phases"] = [
            {**phase.to_dict(), **(reports[i].to_dict() if reports else {"status": "skipped"})}
            for i, phase in enumerate(config.phases)
        ]
    if plan.reason:
        out["reason"] = plan.reason
    if outcome.error:
        out["error"] = outcome.error
    return out


__all__ = ["Outcome", "OutcomeStatus", "build_answer"]
