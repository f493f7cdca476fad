"""NDCG@10 of rerank models on the held-out queries `rerank-bridge train` leaves out, minus the
pinned acceptance sample: a larger comparison set that never touches the demo's 100 queries.

    python benchmarks/heldout_selection.py --engine $ES --data ../shared/data/homedepot \
        --model ../shared/models/homedepot-minilm-l6-ce --model trained-v1 [--random 400]

The split is recomputed with the training code (same hash, `--holdout`, pinned sample), a
temporary index of the data's passages is made, and every model reranks BM25's top 20 and 50
(fusion replace) through the product's eval. Default: every mixed-grade held-out query outside the
pinned sample (the population that sample is drawn from); `--random N`: N held-out queries.
`--out FILE` also writes the eval's results.json (per-query figures too, for paired_gap.py).
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from bridge.eval.report import report_dict
from bridge.eval.systems import EvalRunner, EvalSettings
from bridge.training import engine as engine_mod
from bridge.training.judgments import Judgments, load_judgments
from bridge.training.split import split_queries
from bridge.training.train import pinned_sample


def selection_queries(
    judgments: Judgments, data: Path, holdout: float, pinned: int, sample: int | None, seed: int
) -> list[str]:
    split = split_queries(judgments.queries, holdout, pinned_sample(data, pinned, 13))
    rest = sorted(set(split.held_out) - set(split.pinned))
    if sample is not None:
        return sorted(random.Random(seed).sample(rest, min(sample, len(rest))))
    return [q for q in rest if len(set(judgments.gains[q].values())) > 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--model", action="append", required=True)
    parser.add_argument("--holdout", type=float, default=0.1)
    parser.add_argument("--holdout-sample", type=int, default=100)
    parser.add_argument("--random", type=int, help="N random held-out queries instead")
    parser.add_argument("--seed", type=int, default=99)
    parser.add_argument(
        "--out", type=Path, help="also write the report (per-query figures too) as this JSON file"
    )
    args = parser.parse_args()
    judgments = load_judgments(args.data)
    qids = selection_queries(
        judgments, args.data, args.holdout, args.holdout_sample, args.random, args.seed
    )
    client = engine_mod.connect_engine(args.engine)
    with engine_mod.passage_index(client, judgments, None, progress=False) as (index, fields):
        settings = EvalSettings(
            models=list(args.model), windows=[20, 50], text_fields=tuple(fields), progress=False
        )
        report = EvalRunner(client, index, settings).run(
            {q: judgments.queries[q] for q in qids},
            {q: judgments.gains[q] for q in qids},
            dataset=f"{judgments.name} held-out selection",
        )
    if args.out is not None:
        args.out.write_text(json.dumps(report_dict(report), indent=1), encoding="utf-8")
    for system in report.systems:
        print(
            json.dumps(
                {
                    "queries": len(qids),
                    "system": system.system,
                    "model": system.model,
                    "window": system.window,
                    "ndcg@10": round(system.mean["ndcg@10"], 4),
                }
            )
        )


if __name__ == "__main__":
    main()
