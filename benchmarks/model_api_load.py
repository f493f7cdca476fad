"""Documents reranked per second through the model route `/v1/rerank` vs the proxy route, same run.

One `rerank-bridge serve` subprocess (upstream = a running Elasticsearch/OpenSearch, score cache
off) serves both routes. Each query's top-20 titles are fetched from the engine once; the model
route then reranks exactly those 20 documents per call (what OpenSearch's `rerank` processor or
Elasticsearch's reranker would send), and the proxy route runs the same query as a reranked
`_search` (window 20: the engine's search plus the same 20 documents scored). 1, 4 and 16
concurrent callers, the two routes in alternating short rounds so drifting machine load hits both.
Prints one JSON line per level with both figures and the ratio.

    export RERANK_BRIDGE_TEST_ES_URL=http://127.0.0.1:9200   # or --upstream URL
    .venv/bin/python benchmarks/model_api_load.py
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from proxy_load import (  # a sibling script, not a package
    NANO,
    TRAINED,
    ProxyProcess,
    Run,
    drive_requests,
    emit,
    load_index,
    products,
    queries,
)

WINDOW = 20


def windows(upstream: str, index: str, terms: list[str]) -> list[tuple[str, list[str]]]:
    """(query, the engine's top-WINDOW titles) for every query with a full window."""
    found = []
    with httpx.Client(timeout=60) as client:
        for term in terms:
            body = {"query": {"match": {"title": term}}, "size": WINDOW}
            hits = client.post(f"{upstream}/{index}/_search", json=body).json()["hits"]["hits"]
            if len(hits) == WINDOW:
                found.append((term, [hit["_source"]["title"] for hit in hits]))
    return found


def requests_for(
    index: str, work: list[tuple[str, list[str]]], route: str
) -> Callable[[int], tuple[str, dict[str, Any]]]:
    """The i-th call of a route: the same query and 20 documents either way."""

    def request(i: int) -> tuple[str, dict[str, Any]]:
        query, titles = work[i % len(work)]
        if route == "model":
            return "/v1/rerank", {"query": query, "documents": titles}
        return f"/{index}/_search", {"query": {"match": {"title": query}}, "size": 10, "rerank": {}}

    return request


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--upstream", default=os.environ.get("RERANK_BRIDGE_TEST_ES_URL"))
    parser.add_argument("--model", help="model folder (default: the trained fp32 one, else nano)")
    parser.add_argument("--clients", default="1,4,16")
    parser.add_argument("--seconds", type=float, default=16.0, help="per route and level")
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    if not args.upstream:
        parser.error("set RERANK_BRIDGE_TEST_ES_URL or pass --upstream")
    model = args.model or str(TRAINED if TRAINED.is_dir() else NANO)
    index = load_index(args.upstream, products(20000))
    server = ProxyProcess(args.upstream, model, batching=True)
    try:
        server.wait_ready()
        work = windows(args.upstream, index, queries(400))
        for clients in (int(c) for c in args.clients.split(",")):
            runs = {"model": Run(), "proxy": Run()}
            for _ in range(args.rounds):
                for route in runs:
                    request = requests_for(index, work, route)
                    seconds = args.seconds / args.rounds
                    runs[route] += asyncio.run(
                        drive_requests(server.url, request, clients, seconds)
                    )
            figures: dict[str, Any] = {}
            for route, run in runs.items():
                summary = run.summary()
                summary["documents_per_s"] = round(summary["throughput_rps"] * WINDOW, 1)
                figures[route] = summary
            emit(
                figure="documents_reranked_per_s",
                clients=clients,
                model_route_v1_rerank=figures["model"],
                proxy_route_search=figures["proxy"],
                ratio_model_over_proxy=round(
                    figures["model"]["documents_per_s"]
                    / max(figures["proxy"]["documents_per_s"], 1e-9),
                    2,
                ),
                model=Path(model).name,
                windows=len(work),
            )
    finally:
        server.stop()
        httpx.delete(f"{args.upstream}/{index}", timeout=60)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
