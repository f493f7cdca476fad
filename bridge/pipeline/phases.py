"""Phased reranking (Vespa's first/second phase): each phase rescores the top of the previous one.

``"phases": [{"model": "ms-marco-TinyBERT-L-2-v2", "window_size": 100},
             {"model": "ms-marco-MiniLM-L-12-v2", "window_size": 20}]``

A cheap model orders the engine's top 100, an expensive one the top 20 of that order. Each phase
fuses its model score with the score the previous phase left (the engine score for the first), by
its own ``fusion`` (default: the request's). One time budget covers every phase: a phase that
fails or misses it leaves the previous phase's order (fail-open per phase) and says so in its
``PhaseReport``. Pure: the scoring callable is injected, so every door can drive it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bridge.config import FusionConfig
from bridge.errors import BridgeError, ConfigError, RerankTimeout
from bridge.pipeline.fuse import fuse, fused_order

MAX_PHASES = 4


@dataclass(frozen=True)
class Phase:
    """One phase: which model scores how many of the previous phase's top hits, fused how."""

    model: str
    window_size: int
    fusion: FusionConfig | None = None  # None: the request's fusion
    max_length: int | None = None


def parse_phases(value: Any, *, path: str = "rerank.phases") -> tuple[Phase, ...]:
    """A validated list of phases; each window must fit inside the previous one."""
    if not isinstance(value, Sequence) or isinstance(value, (str, bytes)) or not value:
        raise ConfigError("must be a non-empty list of phases", field=path)
    if len(value) > MAX_PHASES:
        raise ConfigError(f"at most {MAX_PHASES} phases", field=path)
    phases: list[Phase] = []
    for i, raw in enumerate(value):
        where = f"{path}[{i}]"
        if not isinstance(raw, Mapping):
            raise ConfigError("must be an object", field=where)
        unknown = set(raw) - {"model", "window_size", "fusion", "max_length"}
        if unknown:
            raise ConfigError(f"unknown keys {sorted(unknown)}", field=where)
        model = raw.get("model")
        if not isinstance(model, str) or not model:
            raise ConfigError("must be a non-empty string", field=f"{where}.model")
        window = raw.get("window_size")
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ConfigError("must be an integer >= 1", field=f"{where}.window_size")
        if phases and window > phases[-1].window_size:
            raise ConfigError(
                f"{window} exceeds the previous phase's window_size {phases[-1].window_size}",
                field=f"{where}.window_size",
            )
        length = raw.get("max_length")
        if length is not None and (
            isinstance(length, bool) or not isinstance(length, int) or length < 8
        ):
            raise ConfigError("must be an integer >= 8", field=f"{where}.max_length")
        fusion = (
            FusionConfig.from_value(raw["fusion"], path=f"{where}.fusion")
            if "fusion" in raw
            else None
        )
        phases.append(Phase(model, window, fusion, length))
    return tuple(phases)


@dataclass
class PhaseReport:
    """What one phase did: status, its window, time, and its scores by hit (engine position)."""

    model: str
    window_size: int
    status: str = "skipped"  # reranked | timeout | error | skipped
    ms: float = 0.0
    reason: str | None = None
    model_scores: dict[int, float] = field(default_factory=dict)
    fused_scores: dict[int, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "model": self.model,
            "window_size": self.window_size,
            "status": self.status,
            "ms": round(self.ms, 3),
        }
        if self.reason:
            found["reason"] = self.reason
        return found


# (phase, query, passages, seconds left or None) -> model scores; raises on failure
PhaseScore = Callable[[Phase, str, list[str], "float | None"], Sequence[float]]


@dataclass
class PhasedOrder:
    """The final order (engine positions, best first), the score each position ended with and
    one report per phase."""

    order: list[int]
    scores: list[float | None]
    reports: list[PhaseReport]

    @property
    def status(self) -> str:
        """reranked if every phase ran; partial if a later phase failed open; else the first
        phase's status."""
        statuses = [r.status for r in self.reports]
        if all(s == "reranked" for s in statuses):
            return "reranked"
        return "partial" if statuses[0] == "reranked" else statuses[0]


def run_phases(
    query: str,
    texts: Sequence[str],
    engine_scores: Sequence[float | None],
    phases: Sequence[Phase],
    score: PhaseScore,
    *,
    fusion: FusionConfig,
    timeout_ms: float | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> PhasedOrder:
    """Run ``phases`` in turn over hits in engine order (``texts``/``engine_scores`` by
    position); beyond the first window hits keep engine order."""
    order = list(range(len(texts)))
    current: list[float | None] = list(engine_scores)
    deadline = None if timeout_ms is None else clock() + timeout_ms / 1000.0
    reports = [PhaseReport(p.model, p.window_size) for p in phases]
    for phase, report in zip(phases, reports, strict=True):
        left = None if deadline is None else deadline - clock()
        if left is not None and left <= 0:
            report.status, report.reason = "timeout", "no time left in timeout_ms"
            break
        top = order[: phase.window_size]
        if not top:
            report.status = "skipped"
            continue
        began = clock()
        try:
            model = [float(s) for s in score(phase, query, [texts[i] for i in top], left)]
            if len(model) != len(top):
                raise BridgeError(f"model returned {len(model)} scores for {len(top)} passages")
        except (RerankTimeout, TimeoutError) as exc:
            report.status, report.reason, report.ms = "timeout", str(exc), (clock() - began) * 1e3
            break
        except BridgeError as exc:  # fail open: the previous order stands, later phases go on
            report.status, report.reason, report.ms = "error", str(exc), (clock() - began) * 1e3
            continue
        report.ms = (clock() - began) * 1000.0
        if deadline is not None and clock() > deadline:
            report.status, report.reason = (
                "timeout",
                f"phase finished after timeout_ms={timeout_ms}",
            )
            break
        fused = fuse([current[i] for i in top], model, phase.fusion or fusion)
        ranked = fused_order(fused)
        report.status = "reranked"
        report.model_scores = {top[i]: model[i] for i in range(len(top))}
        report.fused_scores = {top[i]: fused[i] for i in range(len(top))}
        for i, position in enumerate(top):
            current[position] = fused[i]
        order = [top[i] for i in ranked] + order[phase.window_size :]
    return PhasedOrder(order=order, scores=current, reports=reports)
