"""PNG plots with matplotlib's Agg backend (no display needed)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from bridge.errors import EvalError
from bridge.eval.results import EvalReport


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise EvalError("plots need the 'eval' extra: pip install 'rerank-bridge[eval]'") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_quality_latency(report: EvalReport, path: Path) -> Path:
    """NDCG@10 against p50 latency: one point per system, lines join windows of one model."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    series: dict[str, list[tuple[float, float, int | None]]] = {}
    for s in report.systems:
        if math.isnan(s.p50_ms):
            continue
        key = s.system if s.model is None else f"{s.system} · {s.model}"
        if s.fusion and s.fusion != "replace":
            key += f" · {s.fusion}"
        if s.chunking:
            key += f" · {s.chunking}"
        series.setdefault(key, []).append((s.p50_ms, s.mean["ndcg@10"], s.window))
    for key, points in series.items():
        points.sort(key=lambda p: p[2] or 0)
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        ax.plot(xs, ys, marker="o", label=key)
        for x, y, window in points:
            if window:
                ax.annotate(f"w={window}", (x, y), textcoords="offset points", xytext=(4, 4))
    ax.set_xlabel("p50 latency per query (ms, engine + rerank)")
    ax.set_ylabel("NDCG@10")
    ax.set_title(f"{report.dataset}: quality vs latency ({report.queries} queries)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_ndcg_delta(report: EvalReport, path: Path) -> Path | None:
    """Histogram of per-query NDCG@10 change vs BM25 for the best reranked system."""
    base = report.baseline()
    reranked = [s for s in report.systems if "rerank" in s.system]
    if base is None or not reranked:
        return None
    best = max(reranked, key=lambda s: s.mean["ndcg@10"])
    deltas = [
        best.per_query[qid]["ndcg@10"] - base.per_query[qid]["ndcg@10"]
        for qid in base.per_query
        if qid in best.per_query
    ]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.hist(deltas, bins=30, color="#4472c4", edgecolor="white")
    ax.axvline(0.0, color="black", linewidth=1)
    better = sum(d > 0 for d in deltas)
    worse = sum(d < 0 for d in deltas)
    ax.set_xlabel(f"NDCG@10 ({best.label}) − NDCG@10 (bm25), per query")
    ax.set_ylabel("queries")
    ax.set_title(
        f"{report.dataset}: {better} better, {worse} worse, {len(deltas) - better - worse} equal"
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
