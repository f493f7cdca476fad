"""What merging concurrent searches into one model call can gain, on the bare scorer.

The proxy's micro-batching merges the (query, title) pairs of concurrent searches into one
scoring call. Its end-to-end gain cannot exceed what that merge saves in the scorer itself, so
this measures exactly that, in one process, with no HTTP or engine: groups of ``--clients``
searches of ``--window`` Home Depot titles each, scored

- one search after another (one caller),
- four searches at a time on a thread pool (the proxy with batching off: its executor has four
  threads),
- as one merged call per group (the proxy with batching on, perfectly merged).

Prints one JSON line with searches/s for each and the merged / four-at-a-time ratio.

    .venv/bin/python benchmarks/merge_gain.py [--model DIR] [--clients 16] [--groups 12]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from proxy_load import NANO, products, queries

Pair = tuple[str, str]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=str(NANO))
    parser.add_argument("--clients", type=int, default=16, help="searches merged per call")
    parser.add_argument("--window", type=int, default=20, help="titles per search")
    parser.add_argument("--groups", type=int, default=12, help="groups of --clients searches")
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads per run")
    parser.add_argument("--token-budget", type=int, default=None, help="padded tokens per run")
    args = parser.parse_args()

    from bridge import load_scorer

    budget = {"token_budget": args.token_budget} if args.token_budget else {}
    # token cache off: both sides tokenize every pair, as the merge saves nothing there
    scorer = load_scorer(args.model, threads=args.threads, token_cache_bytes=0, **budget)
    rng = random.Random(0)
    titles, terms = products(10000), queries(500)
    searches: list[list[Pair]] = [
        [(rng.choice(terms), title) for title in rng.sample(titles, args.window)]
        for _ in range(args.clients * args.groups)
    ]
    groups = [searches[i : i + args.clients] for i in range(0, len(searches), args.clients)]
    scorer.score_pairs(searches[0])  # warm-up: session, tokenizer, thread pools
    pool = ThreadPoolExecutor(4)

    def seconds(run: Callable[[list[list[Pair]]], object]) -> float:
        started = time.perf_counter()
        for group in groups:
            run(group)
        return time.perf_counter() - started

    one_by_one = seconds(lambda group: [scorer.score_pairs(s) for s in group])
    four_at_a_time = seconds(lambda group: list(pool.map(scorer.score_pairs, group)))
    merged = seconds(lambda group: scorer.score_pairs([pair for s in group for pair in s]))
    n = len(searches)
    print(
        json.dumps(
            {
                "benchmark": "merge_gain",
                "model": Path(args.model).name,
                "clients": args.clients,
                "window": args.window,
                "token_budget": scorer._model.token_budget,
                "searches": n,
                "one_by_one_per_s": round(n / one_by_one, 1),
                "four_at_a_time_per_s": round(n / four_at_a_time, 1),
                "merged_per_s": round(n / merged, 1),
                "merged_vs_four_at_a_time": round(four_at_a_time / merged, 2),
                "load_average_1m": round(os.getloadavg()[0], 2),
            }
        ),
        flush=True,
    )
    pool.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
