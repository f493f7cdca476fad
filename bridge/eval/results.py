"""The result types of an evaluation: one SystemResult per (system, model, window, fusion)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default), `q` in [0, 100]; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True)
class SystemResult:
    """Quality and latency of one way of answering every query."""

    system: str  # "bm25", "bm25+rerank", "knn", "hybrid+rerank"
    mean: dict[str, float]
    per_query: dict[str, dict[str, float]]
    latency_ms: list[float]
    model: str | None = None
    window: int | None = None
    fusion: str | None = None
    chunking: str | None = None  # e.g. "chunks 128/96 max" (rerank.chunking), None: passages cut
    fallbacks: int = 0  # queries answered in engine order because reranking failed open
    depth: int | None = None  # hits asked of the engine (recall@window is measured at this depth)

    @property
    def label(self) -> str:
        parts = [self.system]
        if self.model:
            parts.append(self.model)
        if self.window:
            parts.append(f"w={self.window}")
        elif self.depth:
            parts.append(f"top {self.depth}")
        if self.fusion and self.fusion != "replace":
            parts.append(self.fusion)
        if self.chunking:
            parts.append(self.chunking)
        return " ".join(parts)

    @property
    def p50_ms(self) -> float:
        return percentile(self.latency_ms, 50)

    @property
    def p90_ms(self) -> float:
        return percentile(self.latency_ms, 90)


@dataclass(frozen=True)
class EvalReport:
    """Everything `results.json`, the markdown table and the plots are made from."""

    dataset: str
    engine: str
    queries: int
    depth: int
    systems: list[SystemResult]
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def baseline(self) -> SystemResult | None:
        return next((s for s in self.systems if s.system == "bm25"), None)
