"""`train --precision`: training steps in bf16 autocast vs fp32, same batches, same run.

Two copies of the base model with the same fresh head train on the same real Home Depot batches
(each query's judged products plus random catalogue negatives, length-bucketed as `train` makes
them), one fp32 step and one bf16 step per batch, in alternating order so both see the same
machine load; the first steps are not timed. Prints one JSON line per precision (pairs/s and the
mean loss of each quarter of the steps, to compare the curves) and one with the speed ratio.

    .venv/bin/python benchmarks/train_precision.py --steps 80 --threads 2
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path
from typing import Any

WARM_STEPS = 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/homedepot"))
    parser.add_argument("--base", type=Path, help="checkpoint (default: all-MiniLM-L6-v2)")
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-5)
    args = parser.parse_args()

    import torch

    from bridge.training import torch_model as tm
    from bridge.training.judgments import load_judgments
    from bridge.training.pairs import NegativeSettings, build_pairs
    from bridge.training.train import pointwise_batches

    base = args.base or default_base()
    judgments = load_judgments(args.data)
    qids = sorted(judgments.queries)[:3000]
    negatives = NegativeSettings(per_query=0, random_per_query=2)
    pairs = build_pairs(judgments, qids, hits=None, negatives=negatives, seed=13)
    batches = pointwise_batches(pairs, args.batch_size, 13)[: args.steps]
    torch.set_num_threads(args.threads)
    tm.seed_everything(13)
    start = tm.load_cross_encoder(base)
    encoder = tm.PairEncoder(base / "tokenizer.json", 64)
    runs = {name: Run(copy.deepcopy(start), args.lr) for name in ("fp32", "bf16")}
    for i, (batch, targets) in enumerate(batches):
        order = list(runs.items()) if i % 2 == 0 else list(reversed(runs.items()))
        for name, run in order:
            run.step(encoder, batch, targets, bf16=name == "bf16", timed=i >= WARM_STEPS)
    speed = {}
    for name, run in runs.items():
        speed[name] = run.pairs / run.seconds
        quarter = max(1, len(run.losses) // 4)
        curve = [run.losses[q * quarter : (q + 1) * quarter] for q in range(4)]
        print(
            json.dumps(
                {
                    "precision": name,
                    "threads": args.threads,
                    "timed_pairs": run.pairs,
                    "seconds": round(run.seconds, 2),
                    "pairs_per_s": round(speed[name], 1),
                    "loss_by_quarter": [round(sum(c) / len(c), 4) for c in curve if c],
                }
            )
        )
    print(json.dumps({"bf16_over_fp32": round(speed["bf16"] / speed["fp32"], 3)}))


class Run:
    """One model, its AdamW (frozen word embeddings, as `train` does) and what its steps took."""

    def __init__(self, model: Any, lr: float) -> None:
        import torch

        model.base_model.embeddings.word_embeddings.weight.requires_grad_(False)
        model.train()
        self.model = model
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.params, lr=lr, weight_decay=0.01)
        self.seconds = 0.0
        self.pairs = 0
        self.losses: list[float] = []

    def step(
        self, encoder: Any, batch: list[Any], targets: list[float], *, bf16: bool, timed: bool
    ) -> None:
        """One training step, tokenizing included (as in `train`)."""
        import torch

        from bridge.training.torch_model import bce_loss

        started = time.perf_counter()
        features = encoder(batch)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = self.model(**features).logits.squeeze(-1)
        loss = bce_loss(logits.float(), targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if timed:
            self.seconds += time.perf_counter() - started
            self.pairs += len(targets)
        self.losses.append(float(loss.detach()))


def default_base() -> Path:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.support.build_models import minilm_checkpoint_dir

    return minilm_checkpoint_dir()


if __name__ == "__main__":
    main()
