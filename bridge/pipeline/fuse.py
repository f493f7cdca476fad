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
  max, min.

A missing engine score (``None``, e.g. a hit without ``_score``) counts as 0.0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

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
    return [
        _score_mode(fusion.engine_weight * a, fusion.rescore_query_weight * b, fusion.score_mode)
        for a, b in zip(engine, model, strict=True)
    ]


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
    if mode == "total":
        return a + b
    if mode == "multiply":
        return a * b
    if mode == "avg":
        return (a + b) / 2.0
    if mode == "max":
        return max(a, b)
    return min(a, b)


__all__ = ["fuse", "fused_order", "normalize", "ranks"]
