"""Tokenization per reranked search on the Zipf stream: token cache off vs warm, same run.

The same seeded Zipf stream of Home Depot queries as ``zipf_load.py`` (same functions, same seed),
each query's reranking window (the engine's top ``--window`` product titles from a real
Elasticsearch/OpenSearch index of every Home Depot title) tokenized by the trained cross-encoder's
``PairTokenizer``, in this process, one search at a time, with no model run: this isolates the
tokenizer from the proxy, the model and the micro-batcher (whose batches mix searches).

- ``off``:  ``token_cache_bytes=0``: every pair encoded whole by `tokenizers` (the uncached path);
- ``warm``: the default token cache, warmed first by ``--warmup-requests`` of another seed of the
  same distribution (a running shop's earlier traffic), then measured on the same searches as
  ``off``, alternating which goes first.

Every measured search's pair tokens (ids, type ids, lengths) are compared between the two:
identical model inputs are identical scores. Printed as JSON lines (``token_cache_ms_per_search``).

The windows are fetched from the engine once (``_msearch``) and kept in ``--hits`` (JSON), so the
timed part needs no engine; a later run with the same file skips the engine.

    export RERANK_BRIDGE_TEST_ES_URL=http://127.0.0.1:9200
    .venv/bin/python benchmarks/token_cache.py
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from proxy_load import REPO, TRAINED, emit, load_index  # a sibling script, not a package
from zipf_load import all_titles, homedepot_queries, zipf_stream

from bridge.models import resolve_model
from bridge.scoring.tokenize import PairTokenizer, Tokens

STREAM_START = 1000  # zipf_load's measured rounds start here too


def fetch_windows(upstream: str, queries: list[str], window: int) -> dict[str, list[str]]:
    """Each query's top ``window`` titles from a fresh index of every Home Depot title."""
    index = load_index(upstream, all_titles())
    found: dict[str, list[str]] = {}
    try:
        for start in range(0, len(queries), 200):
            chunk = queries[start : start + 200]
            lines: list[str] = []
            for query in chunk:
                body = {"query": {"match": {"title": query}}, "size": window}
                lines += [json.dumps({"index": index}), json.dumps(body)]
            answer = httpx.post(
                f"{upstream}/_msearch",
                content="\n".join(lines) + "\n",
                headers={"Content-Type": "application/x-ndjson"},
                timeout=120,
            )
            answer.raise_for_status()
            for query, result in zip(chunk, answer.json()["responses"], strict=True):
                found[query] = [h["_source"]["title"] for h in result["hits"]["hits"]]
    finally:
        httpx.delete(f"{upstream}/{index}", timeout=60)
    return found


def same(a: Tokens, b: Tokens) -> bool:
    return (
        np.array_equal(a.ids, b.ids)
        and np.array_equal(a.type_ids, b.type_ids)
        and np.array_equal(a.lengths, b.lengths)
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--upstream", default=os.environ.get("RERANK_BRIDGE_TEST_ES_URL"))
    parser.add_argument("--model", default=str(TRAINED))
    parser.add_argument("--exponent", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--window", type=int, default=20)
    parser.add_argument("--warmup-requests", type=int, default=2000)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--max-length", type=int, default=None)
    parser.add_argument("--hits", type=Path, default=REPO / ".cache" / "bench-zipf-windows.json")
    args = parser.parse_args()

    ranked = homedepot_queries(args.seed)
    stream = zipf_stream(ranked, args.exponent, STREAM_START + args.requests, args.seed)
    measured = stream[STREAM_START:]
    warmup = zipf_stream(ranked, args.exponent, args.warmup_requests, args.seed + 1)
    needed = set(measured) | set(warmup)
    key = f"{args.seed}:{args.exponent}:{args.window}"
    windows: dict[str, list[str]] = {}
    if args.hits.is_file():
        saved = json.loads(args.hits.read_text(encoding="utf-8"))
        windows = saved.get(key, {})
    if not needed <= set(windows):
        if not args.upstream:
            parser.error("no saved windows: pass --upstream or set RERANK_BRIDGE_TEST_ES_URL")
        windows = fetch_windows(args.upstream, ranked, args.window)  # every query, once
        args.hits.parent.mkdir(parents=True, exist_ok=True)
        args.hits.write_text(json.dumps({key: windows}), encoding="utf-8")

    files = resolve_model(args.model, download=False)
    length = args.max_length or files.max_length
    off = PairTokenizer(files.tokenizer_path, max_length=length, token_cache_bytes=0)
    warm = PairTokenizer(files.tokenizer_path, max_length=length)
    assert warm.token_cache is not None
    emit(
        setup="token_cache",
        model=args.model,
        max_length=warm.max_length,
        window=args.window,
        distinct_queries=len(ranked),
        measured_searches=len(measured),
        warmup_requests=len(warmup),
        pairs_per_search=round(statistics.mean(len(windows[q]) for q in measured), 2),
        started=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    )

    began = time.perf_counter()
    for query in warmup:
        warm.encode_pairs([(query, p) for p in windows[query]])
    emit(phase="warmup", seconds=round(time.perf_counter() - began, 2))
    before = warm.token_cache.stats()
    timings: dict[str, list[float]] = {"off": [], "warm": []}
    differing = 0
    gc.disable()  # a collection landing in one side's call would be charged to it
    try:
        for i, query in enumerate(measured):
            pairs = [(query, p) for p in windows[query]]
            order = [("off", off), ("warm", warm)] if i % 2 else [("warm", warm), ("off", off)]
            got: dict[str, Tokens] = {}
            for name, tokenizer in order:
                started = time.perf_counter()
                got[name] = tokenizer.encode_pairs(pairs)
                timings[name].append((time.perf_counter() - started) * 1000)
            differing += not same(got["off"], got["warm"])
            if i % 500 == 499:
                gc.collect()
    finally:
        gc.enable()
    after = warm.token_cache.stats()
    hits, misses = after.hits - before.hits, after.misses - before.misses
    summary = {
        name: {
            "mean_ms": round(statistics.mean(ms), 4),
            "p50_ms": round(statistics.median(ms), 4),
            "p90_ms": round(sorted(ms)[int(0.9 * len(ms))], 4),
        }
        for name, ms in timings.items()
    }
    emit(
        figure="token_cache_ms_per_search",
        value=round(summary["off"]["mean_ms"] / summary["warm"]["mean_ms"], 2),
        target=">= 3x",
        off=summary["off"],
        warm=summary["warm"],
        p50_ratio=round(summary["off"]["p50_ms"] / summary["warm"]["p50_ms"], 2),
        token_hit_rate=round(hits / max(hits + misses, 1), 3),
        cache_entries=after.entries,
        cache_bytes=after.bytes,
        searches_with_different_tokens=differing,
        searches=len(measured),
    )
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
