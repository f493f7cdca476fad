"""The scorer: ONNX sessions, batch tokenization, length-sorted batches and a score cache."""

from __future__ import annotations

from bridge.scoring.score_cache import ScoreCache
from bridge.scoring.scorer import (
    BiEncoderScorer,
    CrossEncoderScorer,
    Scorer,
    SharedScorers,
    load_scorer,
    shared_scorers,
)

__all__ = [
    "BiEncoderScorer",
    "CrossEncoderScorer",
    "ScoreCache",
    "Scorer",
    "SharedScorers",
    "load_scorer",
    "shared_scorers",
]
