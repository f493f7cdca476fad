"""What freezing the heap after start-up saves `rerank-bridge serve` (bridge.proxy.heap).

Three proxies of this checkout side by side, the same code but for what happens to the heap once
start-up is over: ``none`` (the interpreter's defaults: no freeze, young generation threshold
700), ``serve`` (what serve does: bridge.proxy.heap.settle, gc.collect + gc.freeze) and
``gen0_10000`` (serve's, and the young generation's threshold at 10,000). The variants are
chosen by a small launcher that replaces ``bridge.proxy.heap.settle`` before the CLI starts.

Figures (JSON lines), each with its peers from the same run:
1. 1 client, rotated rounds: plain `_search` and `_count` p50 through each, and each proxy's
   CPU per request (all threads, /proc) over those requests;
2. ``--clients`` (16) for ``--seconds`` split into rotated rounds: searches/s, p50, p99 and the
   proxy's CPU per request.

    .venv/bin/python benchmarks/heap_freeze.py --rounds 600 --seconds 30
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from proxy_load import (  # a sibling script, not a package
    NANO,
    CpuSplit,
    ProxyProcess,
    Run,
    drive,
    emit,
    load_index,
    loopback_upstream,
    process_cpu_s,
    products,
    queries,
    search_body,
)

LAUNCHER = """
import gc, os, runpy, sys
import bridge.proxy.heap as heap
variant = os.environ["HEAP_VARIANT"]
serve_settle = heap.settle
if variant == "none":
    heap.settle = lambda: None
elif variant == "gen0_10000":
    def settle():
        serve_settle()
        gc.set_threshold(10000, *gc.get_threshold()[1:])
    heap.settle = settle
sys.argv = ["bridge", *sys.argv[1:]]
runpy.run_module("bridge", run_name="__main__", alter_sys=True)
"""
VARIANTS = ("none", "serve", "gen0_10000")


def one_client(proxies: dict[str, ProxyProcess], index: str, terms: list[str], rounds: int) -> None:
    kinds = ("search", "count")
    names = list(proxies)
    times: dict[str, dict[str, list[float]]] = {k: {n: [] for n in names} for k in kinds}
    cpu_before = {name: process_cpu_s(p.pid) for name, p in proxies.items()}
    with httpx.Client(timeout=30) as client:
        for i in range(rounds):
            query = search_body(terms[i % len(terms)], rerank=False)
            requests = {
                "search": (f"/{index}/_search", query),
                "count": (f"/{index}/_count", {"query": query["query"]}),
            }
            order = names[i % len(names) :] + names[: i % len(names)]
            for kind, (path, body) in requests.items():
                for name in order:
                    started = time.perf_counter()
                    client.post(f"{proxies[name].url}{path}", json=body).raise_for_status()
                    times[kind][name].append((time.perf_counter() - started) * 1000)
    emit(
        figure="heap_cpu_ms_per_request_1_client",
        requests=rounds * len(kinds),
        proxies={
            name: round((process_cpu_s(p.pid) - cpu_before[name]) * 1000 / (rounds * 2), 3)
            for name, p in proxies.items()
        },
    )
    for kind in kinds:
        emit(
            figure="heap_p50_ms_1_client",
            request=kind,
            requests=rounds,
            proxies={name: round(statistics.median(times[kind][name]), 3) for name in names},
        )


def many_clients(
    proxies: dict[str, ProxyProcess],
    index: str,
    terms: list[str],
    clients: int,
    seconds: float,
    rounds: int,
) -> None:
    names = list(proxies)
    runs = {name: Run() for name in names}
    cpu = {name: CpuSplit(p.pid) for name, p in proxies.items()}
    for i in range(rounds):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            url = proxies[name].url

            def one(url: str = url) -> Run:
                return asyncio.run(drive(url, index, terms, clients, seconds / rounds, False))

            runs[name] += cpu[name].measure(one)
    summaries = {name: run.summary() for name, run in runs.items()}
    for name in names:
        summaries[name]["cpu_ms_per_request"] = cpu[name].per_request_ms(len(runs[name].latencies))
    emit(figure="heap_passthrough_load", clients=clients, rounds=rounds, proxies=summaries)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--upstream", default=os.environ.get("RERANK_BRIDGE_TEST_ES_URL"))
    parser.add_argument("--docs", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=600)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--load-rounds", type=int, default=6)
    args = parser.parse_args()
    upstream = loopback_upstream(parser, args.upstream)
    terms = queries(2000)
    index = load_index(upstream, products(args.docs))
    proxies: dict[str, ProxyProcess] = {}
    try:
        for variant in VARIANTS:
            proxies[variant] = ProxyProcess(
                upstream,
                str(NANO),
                batching=True,
                launcher=["-c", LAUNCHER],
                env={"HEAP_VARIANT": variant},
            )
        for proxy in proxies.values():
            proxy.wait_ready()
        for proxy in proxies.values():  # warm up: pools open, code paths hot
            asyncio.run(drive(proxy.url, index, terms, 4, 2, rerank=False))
        emit(setup="heap_freeze", index=index, docs=args.docs, variants=list(VARIANTS))
        one_client(proxies, index, terms, args.rounds)
        many_clients(proxies, index, terms, args.clients, args.seconds, args.load_rounds)
    finally:
        for proxy in proxies.values():
            proxy.stop()
        httpx.delete(f"{upstream}/{index}", timeout=60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
