"""The scorer: ONNX sessions, batch tokenization, length-sorted batches and a score cache.

One idea per module: ``protocol`` (what callers need), ``onnx_model`` (a session and its batched
runs), ``cached_scoring`` (the score cache and text checks both kinds share), ``cross_encoder``
and ``bi_encoder`` (the two kinds), ``loader`` (the one loader) and ``shared`` (the process-wide
registry).
"""

from __future__ import annotations

from bridge.scoring.bi_encoder import BiEncoderScorer
from bridge.scoring.cross_encoder import CrossEncoderScorer
from bridge.scoring.loader import ScorerOptions, load_scorer
from bridge.scoring.protocol import Scorer
from bridge.scoring.score_cache import ScoreCache
from bridge.scoring.shared import SharedScorers, shared_scorers

__all__ = [
    "BiEncoderScorer",
    "CrossEncoderScorer",
    "ScoreCache",
    "Scorer",
    "ScorerOptions",
    "SharedScorers",
    "load_scorer",
    "shared_scorers",
]
