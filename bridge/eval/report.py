"""results.json and a markdown table from an EvalReport."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from bridge.eval.results import EvalReport, SystemResult

UNJUDGED_NOTE = "Unjudged documents count as non-relevant (gain 0)."


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 6)


def report_dict(report: EvalReport) -> dict[str, Any]:
    def system(s: SystemResult) -> dict[str, Any]:
        return {
            "label": s.label,
            "system": s.system,
            "model": s.model,
            "window": s.window,
            "fusion": s.fusion,
            "chunking": s.chunking,
            "metrics": {k: round(v, 6) for k, v in s.mean.items()},
            "latency_ms": {"p50": _finite(s.p50_ms), "p90": _finite(s.p90_ms)},
            "fallbacks": s.fallbacks,
            "per_query": s.per_query,
        }

    return {
        "dataset": report.dataset,
        "engine": report.engine,
        "queries": report.queries,
        "depth": report.depth,
        "notes": [UNJUDGED_NOTE, *report.notes],
        "warnings": report.warnings,
        "systems": [system(s) for s in report.systems],
    }


def markdown_table(report: EvalReport) -> str:
    """One row per system; Δ NDCG@10 against BM25 when BM25 was run."""
    metric_names = list(report.systems[0].mean) if report.systems else []
    base = report.baseline()
    header = ["system", *metric_names, "Δ NDCG@10", "p50 ms", "p90 ms"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for s in report.systems:
        delta = s.mean.get("ndcg@10", math.nan) - base.mean["ndcg@10"] if base else math.nan
        cells = [
            s.label,
            *(f"{s.mean[m]:.4f}" for m in metric_names),
            "—" if s is base or math.isnan(delta) else f"{delta:+.4f}",
            f"{s.p50_ms:.1f}",
            f"{s.p90_ms:.1f}",
        ]
        if s.fallbacks:
            cells[0] += f" ({s.fallbacks} fell back)"
        lines.append("| " + " | ".join(cells) + " |")
    notes = [UNJUDGED_NOTE, *report.notes, *(f"Warning: {w}" for w in report.warnings)]
    caption = (
        f"**{report.dataset}** — {report.queries} queries, engine {report.engine}; "
        "latency is the wall time of the whole search call (engine + rerank) per query."
    )
    return "\n".join([caption, "", *lines, "", *(f"- {n}" for n in notes)]) + "\n"


def write_report(report: EvalReport, out_dir: Path) -> dict[str, Path]:
    """Write results.json and results.md into `out_dir`; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "results.json"
    json_path.write_text(json.dumps(report_dict(report), indent=2) + "\n", encoding="utf-8")
    md_path = out_dir / "results.md"
    md_path.write_text(markdown_table(report), encoding="utf-8")
    return {"json": json_path, "markdown": md_path}
