"""Evaluation: dataset loaders, metrics, the eval runner, reports and plots (the `eval` extra)."""

from __future__ import annotations

from bridge.eval.datasets import Dataset, detect_format, load_dataset, load_qrels, load_queries
from bridge.eval.ir_metrics import Scores, evaluate

__all__ = [
    "Dataset",
    "Scores",
    "detect_format",
    "evaluate",
    "load_dataset",
    "load_qrels",
    "load_queries",
]
