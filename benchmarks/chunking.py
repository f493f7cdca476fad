"""Long documents at a short max_length: cut vs chunked (MaxP), NDCG@10 and time, same run.

Cranfield abstracts and TREC-DL-2019 passages are indexed into a real node; BM25 gives each query
its top ``--window`` once; the cross-encoder then reranks those same hits at each ``max_length``
(64, 128) with the passage cut (today's behaviour) and with ``chunking`` (windows of what the
query leaves under max_length, stride 3/4 of that, aggregate max/first/mean), in alternating order
per query. Scores are model-only (``replace``). JSON lines; needs ../shared and a node:

    export RERANK_BRIDGE_TEST_ES_URL=http://127.0.0.1:9200
    .venv/bin/python benchmarks/chunking.py
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


def emit(**record: Any) -> None:
    record["load_average_1m"] = round(os.getloadavg()[0], 2)
    print(json.dumps(record), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--upstream", default=os.environ.get("RERANK_BRIDGE_TEST_ES_URL"))
    parser.add_argument("--model", default=str(TRAINED))
    parser.add_argument("--queries", type=int, default=25, help="queries per dataset (seeded)")
    parser.add_argument("--window", type=int, default=20)
    parser.add_argument("--max-lengths", default="64,128")
    parser.add_argument("--aggregates", default="max,first,mean")
    parser.add_argument("--datasets", default="cranfield,msmarco-dl19")
    args = parser.parse_args()
    if not args.upstream:
        parser.error("give --upstream URL or set RERANK_BRIDGE_TEST_ES_URL (a running node)")

    from bridge.eval.corpus_index import temporary_index
    from bridge.eval.datasets import load_dataset
    from bridge.eval.engine import connect
    from bridge.eval.ir_metrics import evaluate
    from bridge.scoring import CrossEncoderScorer, load_scorer
    from bridge.scoring.chunking import ChunkingConfig

    client, _ = connect(args.upstream)
    lengths = [int(v) for v in args.max_lengths.split(",")]
    scorers: dict[int, CrossEncoderScorer] = {}
    for length in lengths:
        scorer = load_scorer(args.model, max_length=length, token_cache_bytes=0)
        assert isinstance(scorer, CrossEncoderScorer)
        scorers[length] = scorer
    emit(
        setup="chunking",
        model=args.model,
        window=args.window,
        queries_per_dataset=args.queries,
        started=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    )
    for name in args.datasets.split(","):
        dataset = load_dataset(SHARED / "data" / name, max_queries=args.queries)
        queries = dataset.judged_queries()
        systems: dict[str, Any] = {"bm25": None}
        for length in lengths:
            room = length - 3 - 8  # about what a short query leaves
            systems[f"cut@{length}"] = (length, None)
            for how in args.aggregates.split(","):
                chunking = ChunkingConfig(tokens=room, stride=max(1, room * 3 // 4), aggregate=how)  # type: ignore[arg-type]
                systems[f"{how}p@{length}"] = (length, chunking)
        runs: dict[str, dict[str, list[str]]] = {s: {} for s in systems}
        times: dict[str, list[float]] = {s: [] for s in systems}
        windows: dict[str, list[int]] = {s: [] for s in systems}
        with temporary_index(client, dataset, progress=False) as index:
            client.indices.refresh(index=index)
            for number, (qid, text) in enumerate(queries.items()):
                fields = list(dataset.text_fields)
                body = {"multi_match": {"query": text, "fields": fields}}
                hits = client.search(index=index, query=body, size=args.window).body["hits"]["hits"]
                ids = [str(h["_source"].get("doc_id", h["_id"])) for h in hits]
                texts = [
                    " ".join(str(h["_source"].get(f) or "") for f in fields).strip() for h in hits
                ]
                names = list(systems)
                if number % 2:
                    names.reverse()
                for system in names:
                    spec = systems[system]
                    began = time.perf_counter()
                    if spec is None:
                        scores = [float(len(hits) - i) for i in range(len(hits))]
                    elif spec[1] is None:
                        scores = scorers[spec[0]].score(text, texts) if texts else []
                    else:
                        found = scorers[spec[0]].score_chunked(text, texts, spec[1])
                        scores = found.scores
                        windows[system].append(sum(found.windows))
                    times[system].append((time.perf_counter() - began) * 1000)
                    ranked = sorted(range(len(ids)), key=lambda i: -scores[i])
                    runs[system][qid] = [ids[i] for i in ranked]
        qrels = {qid: dataset.qrels[qid] for qid in queries}
        for system in systems:
            emit(
                dataset=name,
                system=system,
                queries=len(queries),
                **{"ndcg@10": round(evaluate(qrels, runs[system]).mean["ndcg@10"], 4)},
                rerank_ms_mean=round(statistics.fmean(times[system]), 1),
                windows_per_query=round(statistics.fmean(windows[system]), 1)
                if windows[system]
                else None,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
