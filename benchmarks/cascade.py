"""Phased reranking on Home Depot through the library wrapper: a cheap first phase at 100 -> the
trained cross-encoder at 20, against the cross-encoder alone at window 50 (NDCG@10 and reranking
time per query, same run).

The 100-query demo sample (``load_homedepot(max_queries=100)``, seed 13) is indexed into a real
Elasticsearch node. Every system is a ``RerankingSearch`` call (the door users call: the flow plans,
searches BM25 top 100, builds passages from ``title`` and scores), in alternating order per query so
drifting machine load hits all of them:

- ``bm25``: the engine's order (no ``rerank``);
- ``ce@50``: ``{"model": <cross-encoder>, "window_size": 50}`` (``replace`` fusion);
- ``cascade``: ``{"phases": [{"model": <--first>, "window_size": 100, "fusion": <--first-fusion>},
  {"model": <cross-encoder>, "window_size": 20}]}``. With the default bi-encoder first phase, its
  embedding cache is filled before the timed run with every candidate product (what steady-state
  traffic reaches: each product is embedded once, like stored kNN vectors; the time is printed as
  ``catalogue_embed_s``), so a query costs one query embedding plus the cross-encoder at 20;
- ``cascade-cold`` (``--cold``): the same with the first phase's embedding cache off: every
  product embedded again for every query;
- ``cascade-stored`` (``--vector-field FIELD``, with ``--index`` naming an index that holds the
  catalogue's vectors, written beforehand by ``rerank-bridge embed``): the first phase reads each
  hit's stored vector (``"vector_field": FIELD``) and embeds only the query, its embedding cache
  off; the run checks that every reranked hit came with a stored vector.

Time per query: ``rerank_ms`` is the flow's own ``explain`` timing (passages + every phase's
scoring, ``timings_ms.total``); ``search_ms`` is the wall time of the whole wrapper call (engine
included). Each system has its own scorer objects (own caches: no system reuses another's scores).
Prints JSON lines; needs ../shared and a node:

    export RERANK_BRIDGE_TEST_ES_URL=http://127.0.0.1:9200
    .venv/bin/python benchmarks/cascade.py --first-fusion linear
    .venv/bin/python benchmarks/cascade.py --first-fusion linear --cold-only
    .venv/bin/rerank-bridge embed --engine $RERANK_BRIDGE_TEST_ES_URL --index hd-vectors \
        --field title --into title_vector --model .cache/models/all-MiniLM-L6-v2
    .venv/bin/python benchmarks/cascade.py --first-fusion linear --index hd-vectors \
        --vector-field title_vector --stored-only --cold

(``--index``: an index already holding the sample's corpus, e.g. made once by
``bridge.eval.corpus_index.load_corpus``; without it a temporary index is made and deleted.)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("RERANK_BRIDGE_SHARED", REPO.parent / "shared"))
TRAINED = SHARED / "models" / "homedepot-minilm-l6-ce"
BI = REPO / ".cache" / "models" / "all-MiniLM-L6-v2"


def emit(**record: Any) -> None:
    record["load_average_1m"] = round(os.getloadavg()[0], 2)
    print(json.dumps(record), flush=True)


class Scorers:
    """A scorer registry of its own (own caches) for one system; ``options`` for load_scorer."""

    def __init__(self, **options: Any) -> None:
        self.options = options
        self.loaded: dict[tuple[str, int | None], Any] = {}

    def get(self, model: str, *, max_length: int | None = None) -> Any:
        from bridge.scoring import load_scorer

        key = (model, max_length)
        if key not in self.loaded:
            self.loaded[key] = load_scorer(model, max_length=max_length, **self.options)
        return self.loaded[key]


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
        "--cold-only",
        action="store_true",
        help="run bm25, the cross-encoder alone and cascade-cold only (no catalogue embedding)",
    )
    parser.add_argument(
        "--first-fusion", default="replace", help="the first phase's fusion method (e.g. linear)"
    )
    parser.add_argument("--index", help="search this existing index (the corpus, loaded before)")
    parser.add_argument(
        "--vector-field", help="also run cascade-stored: the first phase reads this vector field"
    )
    parser.add_argument(
        "--stored-only",
        action="store_true",
        help="no warm-cache cascade (no catalogue embedding): bm25, the cross-encoder alone, "
        "cascade-stored (and cascade-cold with --cold)",
    )
    args = parser.parse_args()
    if not args.upstream:
        parser.error("give --upstream URL or set RERANK_BRIDGE_TEST_ES_URL (a running node)")

    from bridge.eval.corpus_index import temporary_index
    from bridge.eval.datasets import load_homedepot
    from bridge.eval.engine import connect
    from bridge.eval.ir_metrics import evaluate
    from bridge.search import RerankingSearch

    dataset = load_homedepot(SHARED / "data" / "homedepot", max_queries=args.queries)
    client, _ = connect(args.upstream)
    common = {"fields": ["title"], "timeout_ms": None, "explain": True}
    cascade = {
        **common,
        "phases": [
            {"model": args.first, "window_size": args.first_window, "fusion": args.first_fusion},
            {"model": args.model, "window_size": args.second_window},
        ],
    }
    alone_name = f"ce@{args.alone_window}"
    systems: dict[str, tuple[RerankingSearch, dict[str, Any] | None]] = {
        "bm25": (RerankingSearch(client, scorers=Scorers()), None),
        alone_name: (
            RerankingSearch(client, scorers=Scorers()),
            {**common, "model": args.model, "window_size": args.alone_window},
        ),
    }
    if not (args.cold_only or args.stored_only):
        systems["cascade"] = (RerankingSearch(client, scorers=Scorers()), cascade)
    if args.vector_field:
        first_phase: dict[str, Any] = {
            "model": args.first,
            "window_size": args.first_window,
            "fusion": args.first_fusion,
            "vector_field": args.vector_field,
        }
        second_phase = {"model": args.model, "window_size": args.second_window}
        stored = {**common, "phases": [first_phase, second_phase]}
        door = RerankingSearch(client, scorers=Scorers(embedding_cache_bytes=0))
        systems["cascade-stored"] = (door, stored)
    if args.cold or args.cold_only:
        cold = RerankingSearch(client, scorers=Scorers(embedding_cache_bytes=0))
        systems["cascade-cold"] = (cold, cascade)
    depth = max(args.first_window, args.alone_window)
    emit(
        setup="cascade through RerankingSearch",
        queries=len(dataset.queries),
        model=args.model,
        first=args.first,
        index=args.index or "temporary",
        vector_field=args.vector_field,
        windows={"first": args.first_window, "second": args.second_window},
        first_fusion=args.first_fusion,
        alone_window=args.alone_window,
        started=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    )
    runs: dict[str, dict[str, list[str]]] = {name: {} for name in systems}
    rerank_ms: dict[str, list[float]] = {name: [] for name in systems}
    search_ms: dict[str, list[float]] = {name: [] for name in systems}
    vector_counts = {"stored": 0, "embedded": 0}
    in_index = (
        contextlib.nullcontext(args.index)
        if args.index
        else temporary_index(client, dataset, progress=False)
    )
    with in_index as index:
        client.indices.refresh(index=index)
        if args.index and client.count(index=index)["count"] != len(dataset.corpus):
            raise SystemExit(f"{index} does not hold the {len(dataset.corpus)} corpus documents")

        def search(name: str, text: str) -> tuple[list[str], dict[str, Any], float]:
            door, section = systems[name]
            body = {"query": {"match": {"title": text}}, "size": depth}
            began = time.perf_counter()
            answer = door.search(index=index, body=body, rerank=section or False)
            took = (time.perf_counter() - began) * 1000
            hits = answer["hits"]["hits"]
            ids = [str(h["_source"].get("doc_id", h["_id"])) for h in hits]
            return ids, dict(answer.get("rerank") or {}), took

        if "cascade" in systems and Path(args.first).is_dir():
            # the catalogue's embeddings, once (index-time work): every candidate product title
            titles: set[str] = set()
            for text in dataset.queries.values():
                response = client.search(
                    index=index, query={"match": {"title": text}}, size=depth
                ).body
                titles.update(
                    str(h["_source"].get("title") or "") for h in response["hits"]["hits"]
                )
            first = systems["cascade"][0].scorers.get(args.first)
            catalogue = sorted(titles)
            began = time.perf_counter()
            for start in range(0, len(catalogue), 256):
                first.embed(catalogue[start : start + 256])
            emit(
                catalogue_products=len(catalogue),
                catalogue_embed_s=round(time.perf_counter() - began, 1),
            )
        warm_text = next(iter(dataset.queries.values()))
        for name in systems:  # load every model session before the timed run
            search(name, warm_text)
        for number, (qid, text) in enumerate(dataset.queries.items()):
            names = list(systems)
            if number % 2:
                names.reverse()
            for name in names:
                ids, summary, took = search(name, text)
                # `empty`: BM25 found nothing for this query, so there is nothing to rerank
                if systems[name][1] is not None and summary.get("status") not in ("ok", "empty"):
                    raise SystemExit(f"{name} did not rerank {text!r}: {summary}")
                runs[name][qid] = ids
                for phase in summary.get("phases", []):
                    for key in vector_counts:
                        vector_counts[key] += phase.get("vectors", {}).get(key, 0)
                search_ms[name].append(took)
                rerank_ms[name].append(float(summary.get("timings_ms", {}).get("total", 0.0)))
    if args.vector_field:
        emit(cascade_stored_vectors=vector_counts)
        if vector_counts["embedded"]:
            raise SystemExit(f"cascade-stored embedded {vector_counts['embedded']} hits")
    figures: dict[str, dict[str, Any]] = {}
    for name in systems:
        ndcg = evaluate(dataset.qrels, runs[name]).mean["ndcg@10"]
        figures[name] = {
            "ndcg@10": round(ndcg, 4),
            "rerank_ms_p50": round(statistics.median(rerank_ms[name]), 2),
            "rerank_ms_mean": round(statistics.fmean(rerank_ms[name]), 2),
            "search_ms_p50": round(statistics.median(search_ms[name]), 2),
            "search_ms_mean": round(statistics.fmean(search_ms[name]), 2),
        }
        emit(system=name, **figures[name])
    alone = figures[alone_name]
    for name in [n for n in systems if n.startswith("cascade")]:
        mine = figures[name]
        emit(
            figure=f"{name}_vs_{alone_name}",
            ndcg_delta=round(mine["ndcg@10"] - alone["ndcg@10"], 4),
            rerank_time_ratio_mean=round(mine["rerank_ms_mean"] / alone["rerank_ms_mean"], 3),
            rerank_time_ratio_p50=round(mine["rerank_ms_p50"] / alone["rerank_ms_p50"], 3),
            search_time_ratio_mean=round(mine["search_ms_mean"] / alone["search_ms_mean"], 3),
            target="ndcg_delta >= 0 and time ratio <= 0.60",
        )
    for door, _ in systems.values():
        door.close()
    client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
