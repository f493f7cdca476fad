"""Judged-only reranking on three Home Depot query sets: does a model know some queries by heart?

Each model orders only the products judged for a query (no engine: the retailer's own candidates,
as the shared model's README measures), NDCG@10 with gain = grade - 1, on

- ``pinned``: the demo's 100-query sample (seed 13), the issue's acceptance sample;
- ``heldout``: the mixed-grade held-out queries of `train`'s split outside that sample;
- ``train``: as many mixed-grade queries of the split's *training* side (drawn with ``--seed``).

A model trained on a query set shows a larger gain over the judged order there than elsewhere:
`rerank-bridge train`'s models on ``train`` against ``heldout`` give the size of that signature,
and any model's ``pinned`` figure can be read against it.

    python benchmarks/sample_overlap.py --data ../shared/data/homedepot \
        --model ../shared/models/homedepot-minilm-l6-ce --model trained-v1
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from ranx import Qrels, Run, evaluate

from bridge import Ranker
from bridge.training.judgments import Judgments, load_judgments
from bridge.training.split import split_queries
from bridge.training.train import pinned_sample


def query_sets(judgments: Judgments, data: Path, holdout: float, seed: int) -> dict[str, list[str]]:
    split = split_queries(judgments.queries, holdout, pinned_sample(data, 100, 13))

    def mixed(qids: list[str]) -> list[str]:
        return [q for q in qids if len(set(judgments.gains[q].values())) > 1]

    heldout = mixed(sorted(set(split.held_out) - set(split.pinned)))
    train = sorted(random.Random(seed).sample(mixed(split.train), len(heldout)))
    return {"pinned": sorted(split.pinned), "heldout": heldout, "train": train}


def ndcg(judgments: Judgments, qids: list[str], scores: dict[str, dict[str, float]]) -> float:
    qrels = Qrels({q: dict(judgments.gains[q]) for q in qids})
    return float(evaluate(qrels, Run({q: scores[q] for q in qids}), "ndcg@10"))


def model_scores(model: str, judgments: Judgments, qids: list[str]) -> dict[str, dict[str, float]]:
    ranker = Ranker(model_name=model)
    scores: dict[str, dict[str, float]] = {}
    for qid in qids:
        pids = list(judgments.gains[qid])
        query = judgments.queries[qid]
        pairs = [(query, judgments.passages[pid]) for pid in pids]
        scores[qid] = dict(zip(pids, ranker.score_pairs(pairs), strict=True))
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--model", action="append", required=True)
    parser.add_argument("--holdout", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=99)
    args = parser.parse_args()
    judgments = load_judgments(args.data)
    sets = query_sets(judgments, args.data, args.holdout, args.seed)
    every = sorted({q for qids in sets.values() for q in qids})
    draw = random.Random(args.seed)
    floor = {q: {pid: draw.random() for pid in judgments.gains[q]} for q in every}
    rows = {"random order of the judged set": floor}
    for model in args.model:
        rows[model] = model_scores(model, judgments, every)
    for name, scores in rows.items():
        figures = {label: round(ndcg(judgments, qids, scores), 4) for label, qids in sets.items()}
        print(
            json.dumps(
                {
                    "model": name,
                    "ndcg@10": figures,
                    "queries": {label: len(qids) for label, qids in sets.items()},
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
