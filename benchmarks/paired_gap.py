"""How sure is a gap in NDCG@10 between two rerank models on the same queries? A paired look.

Reads the results.json that `rerank-bridge eval --out DIR` (or `heldout_selection.py --out`)
writes, takes two rerank systems' per-query NDCG@10 at each window both were run at, and prints
per window: the mean gap (A minus B), a paired bootstrap 95 % interval of it (queries resampled
with replacement, seeded), the two-sided p-value of a paired randomization test (the sign of each
query's gap flipped at random), and how many queries each side wins. A gap whose interval holds 0
is one the query sample cannot tell from luck.

With ``--subsets N`` (and ``--subset-size K``, default 100), also: out of N random K-query
subsets of these queries (drawn without replacement, seeded), the share where A is ahead at each
window and at every window at once, and the share where A's gap is at or below a given one
(``--at-most X``, at the last window): how often a sample the size of an acceptance sample says
what the whole set says.

    python benchmarks/paired_gap.py eval-out/homedepot/results.json \
        --a trained-t1 --b homedepot-minilm-l6-ce [--resamples 10000] [--seed 7]
    python benchmarks/paired_gap.py heldout.json --a trained-t1 --b homedepot-minilm-l6-ce \
        --subsets 20000 --subset-size 100 --at-most -0.0137

``--a``/``--b`` pick a system by a part of its model name (it must match exactly one model).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

METRIC = "ndcg@10"


def per_query(systems: list[dict[str, Any]], part: str) -> dict[int, dict[str, float]]:
    """{window: {query: NDCG@10}} of the rerank systems whose model name holds ``part``."""
    chosen = [s for s in systems if s.get("model") and part in str(s["model"])]
    models = {str(s["model"]) for s in chosen}
    if len(models) != 1:
        raise SystemExit(f"--a/--b {part!r} matches {len(models)} models: {sorted(models)}")
    runs: dict[int, dict[str, float]] = {}
    for system in chosen:
        window = int(system["window"])
        if window in runs:  # e.g. two fusions or chunkings: which one is meant is not said
            raise SystemExit(f"{part!r} has more than one system at window {window}")
        runs[window] = {q: float(v[METRIC]) for q, v in system["per_query"].items()}
    return runs


def paired_gap(
    a: dict[str, float], b: dict[str, float], resamples: int, seed: int
) -> dict[str, Any]:
    queries = sorted(set(a) & set(b))
    if not queries:
        raise SystemExit("the two systems share no query")
    gaps = np.array([a[q] - b[q] for q in queries])
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(gaps), size=(resamples, len(gaps)))
    means = gaps[picks].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    signs = rng.choice(np.array([-1.0, 1.0]), size=(resamples, len(gaps)))
    flipped = np.abs((signs * gaps).mean(axis=1))
    observed = abs(gaps.mean())
    p_value = (1 + int((flipped >= observed - 1e-12).sum())) / (resamples + 1)
    return {
        "queries": len(queries),
        "mean_gap": round(float(gaps.mean()), 4),
        "ci95": [round(float(low), 4), round(float(high), 4)],
        "p_randomization": round(p_value, 4),
        "a_wins": int((gaps > 0).sum()),
        "b_wins": int((gaps < 0).sum()),
        "ties": int((gaps == 0).sum()),
    }


def subset_shares(
    a_runs: dict[int, dict[str, float]],
    b_runs: dict[int, dict[str, float]],
    subsets: int,
    size: int,
    at_most: float | None,
    seed: int,
) -> dict[str, Any]:
    """How often a random ``size``-query subset shows A ahead of B (per window, every window)."""
    windows = sorted(set(a_runs) & set(b_runs))
    queries = sorted(set.intersection(*(set(a_runs[w]) & set(b_runs[w]) for w in windows)))
    if size > len(queries):
        raise SystemExit(f"--subset-size {size} is more than the {len(queries)} shared queries")
    gaps = np.array([[a_runs[w][q] - b_runs[w][q] for q in queries] for w in windows])
    rng = np.random.default_rng(seed)
    picks = np.array([rng.choice(len(queries), size=size, replace=False) for _ in range(subsets)])
    means = gaps[:, picks].mean(axis=2)  # [window, subset]
    ahead = means > 0
    figures: dict[str, Any] = {
        "queries": len(queries),
        "subsets": subsets,
        "subset_size": size,
        "a_ahead_share": {str(w): round(float(ahead[i].mean()), 4) for i, w in enumerate(windows)},
        "a_ahead_at_every_window_share": round(float(ahead.all(axis=0).mean()), 4),
    }
    if at_most is not None:
        figures[f"gap_at_most_{at_most}_share_w{windows[-1]}"] = round(
            float((means[-1] <= at_most).mean()), 4
        )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="an eval results.json")
    parser.add_argument("--a", required=True, help="part of system A's model name")
    parser.add_argument("--b", required=True, help="part of system B's model name")
    parser.add_argument("--resamples", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--subsets", type=int, default=0, help="random query subsets to draw")
    parser.add_argument("--subset-size", type=int, default=100)
    parser.add_argument("--at-most", type=float, help="a gap to count subsets at or below")
    args = parser.parse_args()
    if args.resamples < 100:
        parser.error("--resamples must be at least 100")
    if args.subsets < 0 or args.subset_size < 1:
        parser.error("--subsets must be 0 or more and --subset-size at least 1")
    try:
        report = json.loads(args.results.read_text(encoding="utf-8"))
        systems = report["systems"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        sys.exit(f"{args.results}: not an eval results.json ({exc})")
    try:
        a_runs, b_runs = per_query(systems, args.a), per_query(systems, args.b)
    except (KeyError, TypeError, ValueError) as exc:
        sys.exit(f"{args.results}: a system without per-query {METRIC} figures ({exc!r})")
    windows = sorted(set(a_runs) & set(b_runs))
    if not windows:
        sys.exit(f"{args.a!r} and {args.b!r} were not run at a common window")
    for window in windows:
        figures = paired_gap(a_runs[window], b_runs[window], args.resamples, args.seed)
        print(json.dumps({"window": window, "a": args.a, "b": args.b, **figures}))
    if args.subsets:
        shares = subset_shares(
            a_runs, b_runs, args.subsets, args.subset_size, args.at_most, args.seed
        )
        print(json.dumps({"a": args.a, "b": args.b, **shares}))


if __name__ == "__main__":
    main()
