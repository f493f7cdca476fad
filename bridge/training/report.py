"""What a training run leaves beside the model: training.json, results.md and training.png."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bridge.eval.plots import _pyplot
from bridge.eval.report import markdown_table
from bridge.eval.results import EvalReport
from bridge.training.torch_model import FitLog

TRAINING_FILE = "training.json"
RESULTS_FILE = "results.md"
PLOT_FILE = "training.png"


def write_training_json(out: Path, record: Mapping[str, Any]) -> Path:
    path = out / TRAINING_FILE
    path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def read_training_json(model_dir: Path) -> dict[str, Any]:
    path = model_dir / TRAINING_FILE
    if not path.is_file():
        return {}
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def plot_training(
    out: Path, log: FitLog, ndcg: Mapping[str, float], labels: Mapping[str, str]
) -> Path:
    """Loss curve (left) and held-out NDCG@10 before/after (right)."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    if log.losses:
        left.plot([p for p, _ in log.losses], [v for _, v in log.losses], color="#4472c4")
    left.set_xlabel("pairs seen")
    left.set_ylabel("training loss")
    left.set_title(f"{log.pairs:,} pairs in {log.seconds:.0f} s ({log.pairs_per_second:.0f}/s)")
    left.grid(alpha=0.3)
    names = list(ndcg)
    values = [ndcg[n] for n in names]
    bars = right.bar([labels.get(n, n) for n in names], values, color="#70ad47")
    for bar, value in zip(bars, values, strict=True):
        right.annotate(
            f"{value:.4f}", (bar.get_x() + bar.get_width() / 2, value), ha="center", va="bottom"
        )
    right.set_ylabel("NDCG@10 (held-out queries)")
    right.set_title("held-out NDCG@10 before / after")
    right.tick_params(axis="x", labelsize="small")
    fig.tight_layout()
    path = out / PLOT_FILE
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_results(
    out: Path,
    title: str,
    summary: Mapping[str, Any],
    report: EvalReport | None,
    labels: Mapping[str, str],
) -> Path:
    lines = [f"# {title}", "", "| | |", "|---|---|"]
    lines += [f"| {key} | {value} |" for key, value in summary.items()]
    lines.append("")
    if report is not None:
        lines.append("## Held-out evaluation (before / after)")
        lines.append("")
        lines += [f"- `{name}`: {what}" for name, what in labels.items()]
        lines.append("")
        lines.append(markdown_table(report))
    lines.append(f"![loss and held-out NDCG@10]({PLOT_FILE})")
    path = out / RESULTS_FILE
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
