"""What the wrapper adds to a reranked search: bridge time minus engine time minus model time.

For 20 hits, ``RerankingSearch.search(..., rerank=...)`` is timed end to end while the engine call
and the model call are timed where they happen (a timing client and a timing scorer registry), so

    overhead = total - engine - model

is the cost of plan, passages, fusion, reordering, ``_source`` restore and response rebuilding,
plus the thread hand-off that enforces ``timeout_ms``. The peer figure is the engine's own time for
the same request; the ratio is overhead / engine. A pipeline-only figure (no engine, a canned
20-hit response) is printed too.

    .venv/bin/python benchmarks/wrapper_overhead.py --es-url http://127.0.0.1:9200

``--es-url`` defaults to ``RERANK_BRIDGE_TEST_ES_URL``. Prints JSON lines.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bridge.config import RerankConfig
from bridge.scoring import shared_scorers
from bridge.search import RerankingSearch

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("RERANK_BRIDGE_SHARED", REPO.parent / "shared"))
QUERIES = [
    "cordless drill",
    "garden hose",
    "interior paint white",
    "kitchen faucet",
    "led light bulb",
    "tool chest",
    "lawn mower",
    "shower head",
    "wire strippers",
    "ceiling fan",
]


def default_model() -> str:
    trained = SHARED / "models" / "homedepot-minilm-l6-ce"
    if (trained / "model.onnx").is_file():
        return str(trained)
    return str(REPO / ".cache" / "models" / "cross-nano")


def titles(limit: int) -> list[str]:
    products = SHARED / "data" / "homedepot" / "products.jsonl"
    if products.is_file():
        with products.open() as handle:
            return [
                json.loads(line)["title"] for _, line in zip(range(limit), handle, strict=False)
            ]
    words = ["cordless", "drill", "hose", "paint", "faucet", "bulb", "chest", "mower", "fan"]
    return [" ".join(words[(i + j) % len(words)] for j in range(6)) for i in range(limit)]


class TimingClient:
    """Forwards ``search`` to the real client and records its wall time."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.last_ms = 0.0

    def search(self, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return self.client.search(**kwargs)
        finally:
            self.last_ms = (time.perf_counter() - started) * 1000.0


class TimingScorers:
    """A scorer registry whose scorer records the model's wall time."""

    def __init__(self, model: str) -> None:
        self.scorer = shared_scorers.get(model)
        self.last_ms = 0.0

    def get(self, model: str, *, max_length: int | None = None) -> TimingScorers:
        return self

    def score(self, query: str, passages: Sequence[str]) -> list[float]:
        started = time.perf_counter()
        try:
            return list(self.scorer.score(query, passages))
        finally:
            self.last_ms = (time.perf_counter() - started) * 1000.0

    def embed(self, texts: Sequence[str]) -> Any:
        return self.scorer.embed(texts)


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50": round(statistics.median(ordered), 3),
        "p90": round(ordered[int(0.9 * (len(ordered) - 1))], 3),
    }


def bench_wrapper(es_url: str, model: str, rounds: int, timeout_ms: int | None) -> dict[str, Any]:
    from elasticsearch import Elasticsearch

    client = Elasticsearch(es_url, request_timeout=60)
    index = f"bench-overhead-{uuid.uuid4().hex[:8]}"
    client.indices.create(
        index=index,
        settings={"number_of_shards": 1, "number_of_replicas": 0},
        mappings={"properties": {"title": {"type": "text", "analyzer": "standard"}}},
    )
    try:
        operations: list[dict[str, Any]] = []
        for i, title in enumerate(titles(2000)):
            operations.extend(({"index": {"_index": index, "_id": str(i)}}, {"title": title}))
        client.bulk(operations=operations, refresh=True)

        timing_client = TimingClient(client)
        scorers = TimingScorers(model)
        search = RerankingSearch(timing_client, scorers=scorers)
        rerank = {"model": model, "fields": ["title"], "window_size": 20, "timeout_ms": timeout_ms}
        overhead: list[float] = []
        engine: list[float] = []
        plain: list[float] = []
        for r in range(rounds + 3):
            query = {"match": {"title": QUERIES[r % len(QUERIES)]}}
            started = time.perf_counter()
            search.search(index=index, query=query, size=10, rerank=rerank)
            total = (time.perf_counter() - started) * 1000.0
            started = time.perf_counter()
            client.search(index=index, query=query, size=20)
            plain_ms = (time.perf_counter() - started) * 1000.0
            if r >= 3:  # warm-up rounds
                overhead.append(total - timing_client.last_ms - scorers.last_ms)
                engine.append(timing_client.last_ms)
                plain.append(plain_ms)
        search.close()
    finally:
        client.indices.delete(index=index, ignore_unavailable=True)
        client.close()
    over, peer = percentiles(overhead), percentiles(plain)
    return {
        "benchmark": "wrapper_overhead",
        "hits": 20,
        "timeout_ms": timeout_ms,
        "overhead_ms": over,
        "engine_ms_in_wrapper": percentiles(engine),
        "peer": "plain engine search, size 20",
        "peer_ms": peer,
        "ratio_p50": round(over["p50"] / peer["p50"], 3) if peer["p50"] else None,
        "target_p50_ms": 2.0,
        "rounds": rounds,
    }


def bench_pipeline(rounds: int, timeout_ms: int | None) -> dict[str, Any]:
    """The sync door over a canned 20-hit response with an instant scorer: the flow's plan, texts,
    fuse and answer, plus the door's thread hand-off when ``timeout_ms`` is set."""
    hits = [
        {
            "_index": "products",
            "_id": str(i),
            "_score": 20.0 - i,
            "_source": {"title": title, "price": float(i)},
        }
        for i, title in enumerate(titles(20))
    ]
    response = {
        "took": 3,
        "timed_out": False,
        "hits": {"total": {"value": 1000, "relation": "eq"}, "max_score": 20.0, "hits": hits},
    }
    config = RerankConfig(fields=("title",), timeout_ms=timeout_ms)
    body = {"query": {"match": {"title": "cordless drill"}}, "size": 10, "_source": ["price"]}

    class Canned:
        def search(self, **kwargs: Any) -> dict[str, Any]:
            return response

    class Instant:
        def get(self, model: str, *, max_length: int | None = None) -> Instant:
            return self

        def score(self, query: str, passages: Sequence[str]) -> list[float]:
            return [1.0 / (1 + i) for i in range(len(passages))]

        def embed(self, texts: Sequence[str]) -> Any:
            raise NotImplementedError

    door = RerankingSearch(Canned(), scorers=Instant(), max_workers=2)
    times: list[float] = []
    for r in range(rounds + 10):
        started = time.perf_counter()
        door.search(body=body, rerank=config)
        if r >= 10:
            times.append((time.perf_counter() - started) * 1000.0)
    door.close()
    return {
        "benchmark": "pipeline_only",
        "hits": 20,
        "timeout_ms": timeout_ms,
        "overhead_ms": percentiles(times),
        "rounds": rounds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--es-url", default=os.environ.get("RERANK_BRIDGE_TEST_ES_URL"))
    parser.add_argument("--model", default=default_model())
    parser.add_argument("--rounds", type=int, default=100)
    args = parser.parse_args()
    # A generous timeout keeps the thread hand-off that enforces it in the measured path without
    # letting a slow model on a busy machine trip it (a timed-out round has no model time).
    for timeout in (60_000, None):
        print(json.dumps(bench_pipeline(args.rounds * 5, timeout)), flush=True)
    if not args.es_url:
        print(json.dumps({"benchmark": "wrapper_overhead", "skipped": "no --es-url"}))
        return
    shared_scorers.get(args.model)  # load outside the measurement
    for timeout in (60_000, None):
        print(json.dumps(bench_wrapper(args.es_url, args.model, args.rounds, timeout)), flush=True)


if __name__ == "__main__":
    main()
