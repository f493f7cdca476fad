"""Long passages as overlapping token windows (MaxP and friends).

``"chunking": {"tokens": 128, "stride": 96, "aggregate": "max"}``: each passage's tokens are split
into windows of ``tokens`` (fewer when the query leaves less room under ``max_length``) starting
every ``stride`` tokens; every window is paired with the query and scored in the same batches;
the passage's score is the ``max`` (MaxP), the ``first`` window's or the ``mean``. The best window
is reported (index and token span) so ``explain`` can name it. Without chunking a passage longer
than ``max_length`` is cut.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from bridge.errors import ConfigError

Aggregate = Literal["max", "first", "mean"]
AGGREGATES: tuple[str, ...] = ("max", "first", "mean")


@dataclass(frozen=True)
class ChunkingConfig:
    tokens: int = 128
    stride: int = 96
    aggregate: Aggregate = "max"

    def __post_init__(self) -> None:
        if isinstance(self.tokens, bool) or not isinstance(self.tokens, int) or self.tokens < 1:
            raise ConfigError("must be an integer >= 1", field="chunking.tokens")
        if (
            isinstance(self.stride, bool)
            or not isinstance(self.stride, int)
            or not 1 <= self.stride <= self.tokens
        ):
            raise ConfigError(
                f"must be an integer from 1 to tokens ({self.tokens})", field="chunking.stride"
            )
        if self.aggregate not in AGGREGATES:
            raise ConfigError(f"must be one of {', '.join(AGGREGATES)}", field="chunking.aggregate")

    @classmethod
    def from_value(cls, value: Any, *, path: str = "rerank.chunking") -> ChunkingConfig | None:
        if value is None or isinstance(value, ChunkingConfig):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError("must be an object", field=path)
        unknown = set(value) - {"tokens", "stride", "aggregate"}
        if unknown:
            raise ConfigError(f"unknown keys {sorted(unknown)}", field=path)
        try:
            return cls(**dict(value))
        except ConfigError as exc:
            raise ConfigError(exc.reason.split("] ", 1)[-1], field=f"rerank.{exc.field}") from None


def window_starts(length: int, size: int, stride: int) -> list[int]:
    """Start offsets of windows of ``size`` every ``stride`` until one reaches the end (one
    window for a passage that fits, even an empty one)."""
    starts = [0]
    while starts[-1] + size < length:
        starts.append(starts[-1] + stride)
    return starts


@dataclass(frozen=True)
class WindowScores:
    """Per passage: the aggregated score, the best window's index and its token span."""

    scores: list[float]
    best_window: list[int]
    spans: list[tuple[int, int]]
    windows: list[int]


def aggregate(
    window_scores: npt.NDArray[np.float64],
    owners: Sequence[int],
    spans: Sequence[tuple[int, int]],
    passages: int,
    how: Aggregate,
) -> WindowScores:
    grouped: list[list[int]] = [[] for _ in range(passages)]
    for row, owner in enumerate(owners):
        grouped[owner].append(row)
    scores: list[float] = []
    best: list[int] = []
    best_spans: list[tuple[int, int]] = []
    for rows in grouped:
        values = window_scores[rows]
        top = int(np.argmax(values))
        if how == "max":
            scores.append(float(values[top]))
        elif how == "first":
            scores.append(float(values[0]))
        else:
            scores.append(float(values.mean()))
        best.append(top)
        best_spans.append(spans[rows[top]])
    return WindowScores(scores, best, best_spans, [len(rows) for rows in grouped])
