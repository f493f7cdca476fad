"""Phased reranking on Home Depot: a cheap first phase at 100 -> the trained cross-encoder at 20,
against the cross-encoder alone at window 50 (NDCG@10 and reranking time per query, same run).

The 100-query demo sample (``load_homedepot(max_queries=100)``, seed 13) is indexed into a real
Elasticsearch node; for each query BM25 returns 100 hits once and every system reranks those same
hits, in alternating order per query so drifting machine load hits all of them:

- ``bm25``: the engine's order;
- ``ce@50``: the cross-encoder over the top 50 (``replace`` fusion);
- ``cascade``: ``bridge.pipeline.phases.run_phases`` with ``--first`` (default: the
  all-MiniLM-L6-v2 bi-encoder) at 100, then the cross-encoder at 20. The bi-encoder's embedding
  cache is filled before the timed run with every candidate product (what a shop does once at
  index time, like stored kNN vectors; its time is printed as ``catalogue_embed_s``), so a query
  costs one query embedding plus the cross-encoder at 20;
- ``cascade-cold`` (``--cold``): the same with the first phase's embedding cache off: every
  product embedded again for every query.

Each system has its own scorer objects (own caches). Prints JSON lines; needs ../shared and a node:

    export RERANK_BRIDGE_TEST_ES_URL=http://127.0.0.1:9200
    .venv/bin/python benchmarks/cascade.py
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("RERANK_BRIDGE_SHARED", REPO.parent / "shared"))
TRAINED = SHARED / "models" / "homedepot-minilm-l6-ce"
BI = REPO / ".cache" / "models" / "all-MiniLM-L6-v2"


def emit(**record: Any) -> None:
    record["load_average_1m"] = round(os.getloadavg()[0], 2)
    print(json.dumps(record), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--upstream", default=os.environ.get("RERANK_BRIDGE_TEST_ES_URL"))
    parser.add_argument("--model", default=str(TRAINED), help="the expensive cross-encoder")
    parser.add_argument("--first", default=str(BI), help="the first phase's model")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--first-window", type=int, default=100)
    parser.add_argument("--second-window", type=int, default=20)
    parser.add_argument("--alone-window", type=int, default=50)
    parser.add_argument("--cold", action="store_true", help="also run cascade-cold")
    parser.add_argument(
        "--first-fusion", default="replace", help="the first phase's fusion method (e.g. linear)"
    )
    args = parser.parse_args()
    if not args.upstream:
        parser.error("give --upstream URL or set RERANK_BRIDGE_TEST_ES_URL (a running node)")

    from bridge.config import FusionConfig
    from bridge.eval.corpus_index import temporary_index
    from bridge.eval.datasets import load_homedepot
    from bridge.eval.engine import connect
    from bridge.eval.ir_metrics import evaluate
    from bridge.pipeline.phases import Phase, run_phases
    from bridge.scoring import load_scorer

    dataset = load_homedepot(SHARED / "data" / "homedepot", max_queries=args.queries)
    client, _ = connect(args.upstream)
    alone = load_scorer(args.model)
    second = load_scorer(args.model)
    first = load_scorer(args.first)
    first_cold = load_scorer(args.first, embedding_cache_bytes=0)
    second_cold = load_scorer(args.model)
    replace = FusionConfig()
    emit(
        setup="cascade",
        queries=len(dataset.queries),
        model=args.model,
        first=args.first,
        windows={"first": args.first_window, "second": args.second_window},
        first_fusion=args.first_fusion,
        alone_window=args.alone_window,
        started=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    )

    def phased(first_scorer: Any, second_scorer: Any) -> Callable[..., list[int]]:
        models = {"first": first_scorer, "second": second_scorer}
        phases = [
            Phase("first", args.first_window, FusionConfig.from_value(args.first_fusion)),
            Phase("second", args.second_window),
        ]

        def score(phase: Phase, query: str, passages: list[str], left: float | None) -> Any:
            return models[phase.model].score(query, passages)

        def run(query: str, texts: list[str], engine: list[float]) -> list[int]:
            result = run_phases(query, texts, engine, phases, score, fusion=replace)
            if texts and result.status != "reranked":  # a query without hits has nothing to do
                raise SystemExit(f"cascade did not rerank: {result.reports}")
            return result.order

        return run

    def ce_alone(query: str, texts: list[str], engine: list[float]) -> list[int]:
        window = args.alone_window
        scores = alone.score(query, texts[:window])
        top = sorted(range(len(scores)), key=lambda i: -scores[i])
        return top + list(range(window, len(texts)))

    def bm25(query: str, texts: list[str], engine: list[float]) -> list[int]:
        return list(range(len(texts)))

    systems: dict[str, Callable[[str, list[str], list[float]], list[int]]] = {
        "bm25": bm25,
        f"ce@{args.alone_window}": ce_alone,
        "cascade": phased(first, second),
    }
    if args.cold:
        systems["cascade-cold"] = phased(first_cold, second_cold)
    runs: dict[str, dict[str, list[str]]] = {name: {} for name in systems}
    times: dict[str, list[float]] = {name: [] for name in systems}
    depth = max(args.first_window, args.alone_window)
    with temporary_index(client, dataset, progress=False) as index:
        client.indices.refresh(index=index)
        candidates = {}
        for qid, text in dataset.queries.items():
            response = client.search(index=index, query={"match": {"title": text}}, size=depth).body
            hits = response["hits"]["hits"]
            candidates[qid] = (
                [str(h["_source"].get("doc_id", h["_id"])) for h in hits],
                [str(h["_source"].get("title") or "") for h in hits],
                [float(h["_score"]) for h in hits],
            )
        catalogue = sorted({t for _, texts, _ in candidates.values() for t in texts})
        began = time.perf_counter()
        for start in range(0, len(catalogue), 256):
            first.embed(catalogue[start : start + 256])
        emit(
            catalogue_products=len(catalogue),
            catalogue_embed_s=round(time.perf_counter() - began, 1),
        )
        for number, (qid, text) in enumerate(dataset.queries.items()):
            ids, texts, engine = candidates[qid]
            names = list(systems)
            if number % 2:
                names.reverse()
            for name in names:
                began = time.perf_counter()
                order = systems[name](text, texts, engine)
                times[name].append((time.perf_counter() - began) * 1000)
                runs[name][qid] = [ids[i] for i in order]
    alone_name = f"ce@{args.alone_window}"
    figures: dict[str, dict[str, Any]] = {}
    for name in systems:
        ndcg = evaluate(dataset.qrels, runs[name]).mean["ndcg@10"]
        figures[name] = {
            "ndcg@10": round(ndcg, 4),
            "rerank_ms_p50": round(statistics.median(times[name]), 2),
            "rerank_ms_mean": round(statistics.fmean(times[name]), 2),
        }
        emit(system=name, **figures[name])
    for name in [n for n in systems if n.startswith("cascade")]:
        emit(
            figure=f"{name}_vs_{alone_name}",
            ndcg_delta=round(figures[name]["ndcg@10"] - figures[alone_name]["ndcg@10"], 4),
            time_ratio_mean=round(
                figures[name]["rerank_ms_mean"] / figures[alone_name]["rerank_ms_mean"], 3
            ),
            time_ratio_p50=round(
                figures[name]["rerank_ms_p50"] / figures[alone_name]["rerank_ms_p50"], 3
            ),
            target="ndcg_delta >= 0 and time ratio <= 0.60",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
