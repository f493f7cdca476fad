"""Long documents at a short max_length: cut vs chunked, NDCG@10 and time, same run, one door.

Cranfield abstracts and TREC-DL-2019 passages are indexed into a real node; every query goes
through the library's door (``RerankingSearch``, the sync wrapper: plan, BM25 search, passages,
scoring, answer) once per system: the cross-encoder reranks the BM25 top ``--window`` at each
``max_length`` (64, 128) with the passage cut (``chunking`` off, today's behaviour) and with each
``--chunking`` value (default: MaxP over the default windows, and MaxP over the 2 windows that
best match the query, Elasticsearch's ``chunk_rescorer`` with ``size: 2``). Systems run in
alternating order per query. Scores are model-only (``replace``); the score cache and the token
cache are off so no system reuses another's work. JSON lines; needs ../shared and a node:

    export RERANK_BRIDGE_TEST_ES_URL=http://127.0.0.1:9200
    .venv/bin/python benchmarks/chunking.py --budget-s 300
"""

from __future__ import annotations

import argparse
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
DEFAULT_CHUNKINGS = ['{"aggregate": "max"}', '{"aggregate": "max", "size": 2}']


def emit(**record: Any) -> None:
    record["load_average_1m"] = round(os.getloadavg()[0], 2)
    print(json.dumps(record), flush=True)


class UncachedScorers:
    """The door's scorer registry: one scorer per (model, max_length), every cache off."""

    def __init__(self) -> None:
        self._scorers: dict[tuple[str, int | None], Any] = {}

    def get(self, model: str, *, max_length: int | None = None) -> Any:
        from bridge.scoring import load_scorer

        key = (model, max_length)
        if key not in self._scorers:
            self._scorers[key] = load_scorer(
                model, max_length=max_length, cache_size=0, token_cache_bytes=0
            )
        return self._scorers[key]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--upstream", default=os.environ.get("RERANK_BRIDGE_TEST_ES_URL"))
    parser.add_argument("--model", default=str(TRAINED))
    parser.add_argument(
        "--queries", type=int, default=0, help="judged queries per dataset (seeded; 0 = all)"
    )
    parser.add_argument("--window", type=int, default=20)
    parser.add_argument("--max-lengths", default="64,128")
    parser.add_argument(
        "--chunking", action="append", help="rerank.chunking JSON; repeatable (default: 2)"
    )
    parser.add_argument("--datasets", default="msmarco-dl19,cranfield")
    parser.add_argument(
        "--budget-s",
        type=float,
        help="per dataset: take no new query after this many seconds (the count is reported)",
    )
    args = parser.parse_args()
    if not args.upstream:
        parser.error("give --upstream URL or set RERANK_BRIDGE_TEST_ES_URL (a running node)")

    from bridge.eval.corpus_index import temporary_index
    from bridge.eval.datasets import load_dataset
    from bridge.eval.engine import connect
    from bridge.eval.ir_metrics import evaluate
    from bridge.search import RerankingSearch

    client, _ = connect(args.upstream)
    door = RerankingSearch(client, scorers=UncachedScorers())
    lengths = [int(v) for v in args.max_lengths.split(",")]
    chunkings = [json.loads(c) for c in args.chunking or DEFAULT_CHUNKINGS]
    emit(
        setup="chunking",
        door="RerankingSearch (sync wrapper)",
        model=args.model,
        window=args.window,
        chunkings=chunkings,
        started=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    )
    for name in args.datasets.split(","):
        dataset = load_dataset(SHARED / "data" / name, max_queries=args.queries or None)
        queries = dataset.judged_queries()
        fields = list(dataset.text_fields)
        systems: dict[str, dict[str, Any] | None] = {"bm25": None}
        for length in lengths:
            systems[f"cut@{length}"] = {"max_length": length, "chunking": None}
            for chunking in chunkings:
                label = chunking.get("aggregate", "max") + (
                    f" top{chunking['size']}" if chunking.get("size") else ""
                )
                systems[f"{label}@{length}"] = {"max_length": length, "chunking": chunking}
        runs: dict[str, dict[str, list[str]]] = {s: {} for s in systems}
        wall: dict[str, list[float]] = {s: [] for s in systems}
        model_ms: dict[str, list[float]] = {s: [] for s in systems}
        windows: dict[str, list[int]] = {s: [] for s in systems}
        with temporary_index(client, dataset, progress=False) as index:
            client.indices.refresh(index=index)
            for _, section in systems.items():  # load each session before timing
                if section is not None:
                    rerank = {"model": args.model, "fields": fields, "query": "x", **section}
                    door.search(index=index, body={"query": {"match_all": {}}}, rerank=rerank)
            began_dataset = time.perf_counter()
            done: dict[str, str] = {}
            for number, (qid, text) in enumerate(queries.items()):
                if args.budget_s and time.perf_counter() - began_dataset > args.budget_s:
                    break
                done[qid] = text
                body = {"query": {"multi_match": {"query": text, "fields": fields}}}
                body["size"] = args.window
                names = list(systems)
                if number % 2:
                    names.reverse()
                for system in names:
                    section = systems[system]
                    rerank: Any = None
                    if section is not None:
                        rerank = {
                            "model": args.model,
                            "fields": fields,
                            "query": text,
                            "window_size": args.window,
                            "timeout_ms": None,
                            "explain": True,
                            **section,
                        }
                    began = time.perf_counter()
                    answer = door.search(index=index, body=body, rerank=rerank)
                    wall[system].append((time.perf_counter() - began) * 1000)
                    hits = answer["hits"]["hits"]
                    runs[system][qid] = [str(h["_source"].get("doc_id", h["_id"])) for h in hits]
                    if section is not None:
                        summary = answer["rerank"]
                        if summary["status"] not in ("ok", "empty"):
                            raise RuntimeError(f"{system} {qid}: {summary}")
                        model_ms[system].append(summary["timings_ms"].get("model", 0.0))
                        bests = [h["_rerank"].get("best_window") for h in hits]
                        windows[system].append(sum(b["scored"] if b else 1 for b in bests))
        qrels = {qid: dataset.qrels[qid] for qid in done}
        for system in systems:
            length = (systems[system] or {}).get("max_length")
            cut = model_ms.get(f"cut@{length}") if length else None
            mean_model = statistics.fmean(model_ms[system]) if model_ms[system] else None
            emit(
                dataset=name,
                system=system,
                queries=len(done),
                judged_queries=len(queries),
                **{"ndcg@10": round(evaluate(qrels, runs[system]).mean["ndcg@10"], 4)},
                search_ms_mean=round(statistics.fmean(wall[system]), 1),
                model_ms_mean=round(mean_model, 1) if mean_model is not None else None,
                model_time_vs_cut=round(mean_model / statistics.fmean(cut), 2)
                if cut and mean_model is not None
                else None,
                pairs_per_query=round(statistics.fmean(windows[system]), 1)
                if windows[system]
                else None,
            )
    client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
