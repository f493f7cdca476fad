"""Combine engine scores and model scores into one score per hit (pure).

Inputs are in engine order (rank 1 first). Formulas, with ``e`` the engine score and ``m`` the model
score of a hit:

- ``replace``: ``m``.
- ``linear``: ``query_weight * norm(e) + rerank_weight * norm(m)``, ``norm`` over the window:
  ``minmax`` ``(x - min) / (max - min)`` (all equal -> 1.0), ``zscore`` ``(x - mean) / std``
  (population std; all equal -> 0.0), ``none`` the raw value.
- ``rrf``: ``1 / (k + engine_rank) + 1 / (k + model_rank)``, ranks from 1, ``k = rank_constant``;
  model ties rank in engine order.
- ``rescore``: Elasticsearch's ``score_mode`` over ``a = query_weight * e`` and
  ``b = rescore_query_weight * m``: total ``a + b``, multiply ``a * b``, avg ``(a + b) / 2``,
  max, min. Hits past the window get ``query_weight * e`` (:func:`beyond_window_scores`), as
  Elasticsearch gives the hits it did not rescore, and the whole list is then ordered by score.
  Computed in 32-bit floats step by step, as Lucene does (a value outside float32's range makes
  the whole call fall back to 64-bit), and returned as the shortest decimal of that float32, so
  a score reads as the engine prints it.

A missing engine score (``None``, e.g. a hit without ``_score``) counts as 0.0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from bridge.config import FusionConfig
from bridge.errors import ConfigError


def fuse(
    engine_scores: Sequence[float | None],
    model_scores: Sequence[float],
    fusion: FusionConfig,
) -> list[float]:
    """Fused score per hit, same order as the inputs (engine order)."""
    if len(engine_scores) != len(model_scores):
        raise ConfigError(
            f"{len(engine_scores)} engine scores but {len(model_scores)} model scores",
            field="fusion",
        )
    engine = [0.0 if s is None else float(s) for s in engine_scores]
    model = [float(s) for s in model_scores]
    if fusion.method == "replace":
        return model
    if fusion.method == "linear":
        ne = normalize(engine, fusion.normalize)
        nm = normalize(model, fusion.normalize)
        return [
            fusion.engine_weight * a + fusion.rerank_weight * b for a, b in zip(ne, nm, strict=True)
        ]
    if fusion.method == "rrf":
        k = fusion.rank_constant
        model_rank = ranks(model)
        return [1.0 / (k + i + 1) + 1.0 / (k + model_rank[i]) for i in range(len(model))]
    return _rescore(engine, model, fusion)


def beyond_window_scores(
    engine_scores: Sequence[float | None], fusion: FusionConfig
) -> list[float]:
    """``query_weight * engine score`` per hit: what Elasticsearch's rescore gives hits past its
    window (and hits its rescore query does not match). Same arithmetic as :func:`fuse`."""
    engine = [0.0 if s is None else float(s) for s in engine_scores]
    return _rescore(engine, None, fusion)


def _rescore(engine: list[float], model: list[float] | None, fusion: FusionConfig) -> list[float]:
    """Lucene's float arithmetic when every value fits a float32, else the same formula in 64-bit.

    ``model`` None: the hits were not rescored, so the score is ``query_weight * e`` alone.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        out32 = _rescore_float32(engine, model, fusion)
    if all(math.isfinite(v) for v in out32):
        # The shortest decimal that reads back as the same float32: what the engine's JSON says.
        return [float(str(v)) for v in out32]
    qw, rw = fusion.engine_weight, fusion.rescore_query_weight
    if model is None:
        return [qw * a for a in engine]
    return [
        _score_mode(qw * a, rw * b, fusion.score_mode) for a, b in zip(engine, model, strict=True)
    ]


def _rescore_float32(
    engine: list[float], model: list[float] | None, fusion: FusionConfig
) -> list[np.float32]:
    f32 = np.float32
    qw, rw = f32(fusion.engine_weight), f32(fusion.rescore_query_weight)
    if model is None:
        return [f32(a) * qw for a in engine]
    out: list[np.float32] = []
    for a, b in zip(engine, model, strict=True):
        first, second = f32(a) * qw, f32(b) * rw
        out.append(f32(_score_mode(first, second, fusion.score_mode)))
    return out


def normalize(values: Sequence[float], method: str) -> list[float]:
    """Normalise a window of scores (``minmax``, ``zscore`` or ``none``)."""
    if not values or method == "none":
        return list(values)
    if method == "minmax":
        low, high = min(values), max(values)
        if high == low:
            return [1.0] * len(values)
        return [(v - low) / (high - low) for v in values]
    if method == "zscore":
        mean = sum(values) / len(values)
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
        if std == 0.0:
            return [0.0] * len(values)
        return [(v - mean) / std for v in values]
    raise ConfigError(f"unknown normalisation {method!r}", field="fusion.normalize")


def ranks(scores: Sequence[float]) -> list[int]:
    """1-based rank of each score, highest first; ties keep input order."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    out = [0] * len(scores)
    for rank, index in enumerate(order, start=1):
        out[index] = rank
    return out


def fused_order(fused: Sequence[float]) -> list[int]:
    """Indices sorted by fused score, highest first; ties keep engine order."""
    return sorted(range(len(fused)), key=lambda i: -fused[i])


def _score_mode(a: float, b: float, mode: str) -> float:
    # With float32 operands numpy keeps every step in float32, as Java's float arithmetic does.
    if mode == "total":
        return a + b
    if mode == "multiply":
        return a * b
    if mode == "avg":
        return (a + b) / 2
    if mode == "max":
        return max(a, b)
    return min(a, b)


__all__ = ["beyond_window_scores", "fuse", "fused_order", "normalize", "ranks"]
