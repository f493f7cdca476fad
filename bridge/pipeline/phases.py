"""Phased reranking (Vespa's first/second phase), a step of the rerank flow: each phase rescores
the top of the previous phase's order.

``"phases": [{"model": "ms-marco-TinyBERT-L-2-v2", "window_size": 100},
             {"model": "ms-marco-MiniLM-L-12-v2", "window_size": 20}]``

A cheap model orders the engine's top 100, an expensive one the top 20 of that order. Each phase
fuses its model score with the score the previous phase left (the engine score for the first), by
its own ``fusion`` (default: the section's); hits a phase does not reach keep the previous order
below it. Each phase is one ``Score`` effect carrying the phase's model, so every door runs
phases. One time budget covers every phase: a phase that fails leaves the previous order and the
later phases go on; a phase that misses the budget leaves the previous order and ends the run
(fail-open per phase). ``PhaseReport`` says what each phase did.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from bridge.chunking import BestWindow, ChunkedScores, ChunkingConfig
from bridge.config import FusionConfig, PhaseConfig
from bridge.errors import ModelError
from bridge.pipeline.effects import TIMEOUTS, CheckVectors, Embed, Score
from bridge.pipeline.fuse import fuse, fused_order
from bridge.pipeline.stored_vectors import Vector, VectorReport, stored_vector_scores

PhaseStatus = Literal["reranked", "timeout", "model_error", "skipped"]


@dataclass
class PhaseReport:
    """What one phase did: status, its window, time, and its scores by hit (engine position)."""

    model: str
    window_size: int
    status: PhaseStatus = "skipped"
    ms: float = 0.0
    error: BaseException | str | None = None
    model_scores: dict[int, float] = field(default_factory=dict)
    fused_scores: dict[int, float] = field(default_factory=dict)
    best_windows: dict[int, BestWindow] = field(default_factory=dict)  # with chunking
    vectors: VectorReport | None = None  # a vector_field phase: stored vs embedded

    @property
    def reason(self) -> str | None:
        if self.error is None or isinstance(self.error, str):
            return self.error
        return f"{type(self.error).__name__}: {self.error}"

    def to_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "model": self.model,
            "window_size": self.window_size,
            "status": self.status,
            "reranked": len(self.model_scores),
            "ms": round(self.ms, 3),
        }
        if self.reason:
            found["error"] = self.reason
        if self.vectors is not None:
            found["vectors"] = self.vectors.to_dict()
        return found


@dataclass
class PhasedOrder:
    """The order of the first window (engine positions, best first), the score each position
    ended with (the engine's where no phase reranked it) and one report per phase."""

    order: list[int]
    scores: list[float | None]
    reports: list[PhaseReport]

    @property
    def reranked(self) -> bool:
        return any(r.status == "reranked" for r in self.reports)

    def last_model_scores(self) -> dict[int, float]:
        """Per position, the model score of the last phase that reranked it."""
        out: dict[int, float] = {}
        for report in self.reports:
            out.update(report.model_scores)
        return out

    def last_best_windows(self) -> dict[int, BestWindow]:
        """Per position, the best window the last phase that reranked it chose (chunking)."""
        out: dict[int, BestWindow] = {}
        for report in self.reports:
            if report.model_scores:
                for position in report.model_scores:
                    out.pop(position, None)
                out.update(report.best_windows)
        return out


def run_phases(
    query: str,
    texts: Sequence[str],
    engine_scores: Sequence[float | None],
    phases: Sequence[PhaseConfig],
    *,
    fusion: FusionConfig,
    max_length: int | None,
    deadline: float | None,
    chunking: ChunkingConfig | None = None,
    clock: Callable[[], float] = time.perf_counter,
    vectors: Mapping[str, Sequence[Vector | None]] | None = None,
    indices: Sequence[str | None] | None = None,
) -> Generator[Score | Embed | CheckVectors, Any, PhasedOrder]:
    """Run ``phases`` in turn over the first window (``texts``/``engine_scores`` by engine
    position), one ``Score`` effect per phase, within ``deadline`` (a ``clock()`` time).

    A phase with ``vector_field`` scores from ``vectors[field]`` (the stored vector of each
    position, or None) instead, embedding only what it must (``bridge.pipeline.stored_vectors``;
    ``indices``: each position's ``_index``); its budget is checked once its vectors are in."""
    order = list(range(len(texts)))
    current: list[float | None] = list(engine_scores)
    reports = [PhaseReport(p.model, p.window_size) for p in phases]
    for phase, report in zip(phases, reports, strict=True):
        left = None if deadline is None else deadline - clock()
        if left is not None and left <= 0:
            report.status, report.error = "timeout", "no time left in timeout_ms"
            break
        top = order[: phase.window_size]
        if not top:
            continue
        began = clock()
        passages = tuple(texts[i] for i in top)
        try:
            if phase.vector_field is not None:
                model, report.vectors = yield from _stored_vector_phase(
                    phase, phase.max_length or max_length, query, passages, top, vectors, indices
                )
                best = None
                if deadline is not None and clock() > deadline:
                    raise TimeoutError("the phase's vectors came in after timeout_ms")
            else:
                length = phase.max_length or max_length
                raw = yield Score(phase.model, length, query, passages, left, chunking)
                model, best = unpacked_scores(raw, len(top))
        except TIMEOUTS as exc:
            report.status, report.error, report.ms = "timeout", exc, _ms(clock() - began)
            break
        except Exception as exc:  # fail open: the previous order stands, later phases go on
            report.status, report.error, report.ms = "model_error", exc, _ms(clock() - began)
            continue
        report.ms = _ms(clock() - began)
        fused = fuse([current[i] for i in top], model, phase.fusion or fusion)
        report.status = "reranked"
        report.model_scores = {top[i]: model[i] for i in range(len(top))}
        report.fused_scores = {top[i]: fused[i] for i in range(len(top))}
        if best is not None:
            report.best_windows = {top[i]: best[i] for i in range(len(top))}
        for i, position in enumerate(top):
            current[position] = fused[i]
        order = [top[i] for i in fused_order(fused)] + order[phase.window_size :]
    return PhasedOrder(order=order, scores=current, reports=reports)


def _stored_vector_phase(
    phase: PhaseConfig,
    max_length: int | None,
    query: str,
    passages: Sequence[str],
    top: Sequence[int],
    vectors: Mapping[str, Sequence[Vector | None]] | None,
    indices: Sequence[str | None] | None,
) -> Generator[Embed | CheckVectors, Any, tuple[list[float], VectorReport]]:
    name = phase.vector_field or ""
    stored = (vectors or {}).get(name)
    scores, report = yield from stored_vector_scores(
        phase.model,
        max_length,
        name,
        query,
        passages,
        [stored[i] if stored is not None and i < len(stored) else None for i in top],
        [indices[i] if indices is not None and i < len(indices) else None for i in top],
    )
    return checked_scores(scores, len(top)), report


def unpacked_scores(raw: Any, expected: int) -> tuple[list[float], list[BestWindow] | None]:
    """A Score result: the scores, and each passage's best window when it was chunked."""
    if not isinstance(raw, ChunkedScores):
        return checked_scores(raw, expected), None
    if len(raw.best) != expected:
        raise ModelError(f"scorer returned {len(raw.best)} windows for {expected} passages")
    return checked_scores(raw.scores, expected), list(raw.best)


def checked_scores(raw: Sequence[float], expected: int) -> list[float]:
    """The model's scores as floats: one per passage, all finite (else ``ModelError``)."""
    scores = [float(s) for s in raw]
    if len(scores) != expected:
        raise ModelError(f"scorer returned {len(scores)} scores for {expected} passages")
    if not all(math.isfinite(s) for s in scores):
        raise ModelError("scorer returned a non-finite score")
    return scores


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 3)


__all__ = ["PhaseReport", "PhasedOrder", "checked_scores", "run_phases", "unpacked_scores"]
