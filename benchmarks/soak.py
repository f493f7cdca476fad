"""Soak benchmark: 16 clients of reranked searches through one proxy for 10 minutes.

One `rerank-bridge serve` subprocess (production defaults: micro-batching and the score cache on)
in front of a real Elasticsearch/OpenSearch node with Home Depot titles; every 30 s a JSON line
with that window's requests, errors, p50/p99 and the proxy's resident memory (RSS, from /proc);
at the end the figures the issue asks for, each with its peer from the same run:

- errors over the whole run (target 0);
- RSS growth: last window's RSS minus the first's (after a warm-up), and the ratio;
- p99 drift: last minutes' p99 over the first minutes' p99 (1.0 = no drift).

    export RERANK_BRIDGE_TEST_ES_URL=http://127.0.0.1:9200   # or --upstream URL
    .venv/bin/python benchmarks/soak.py                    # --minutes 10 --clients 16
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from proxy_load import (
    NANO,
    TRAINED,
    ProxyProcess,
    Run,
    emit,
    load_index,
    loopback_upstream,
    percentile,
    products,
    queries,
    search_body,
)

_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mb(pid: int) -> float:
    """Resident memory of a process, from /proc/<pid>/statm (pages)."""
    resident = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    return resident * _PAGE / 2**20


async def soak(proxy: ProxyProcess, index: str, terms: list[str], args: argparse.Namespace) -> int:
    """Drive the proxy; report every window; return the number of failed requests."""
    windows: list[tuple[Run, float]] = []
    current = Run()
    stop_at = time.monotonic() + args.minutes * 60
    limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)

    async with httpx.AsyncClient(timeout=60, limits=limits) as client:

        async def loop(worker: int) -> None:
            i = worker
            while time.monotonic() < stop_at:
                body = search_body(terms[i % len(terms)], rerank=True)
                i += args.clients
                started = time.perf_counter()
                run = current  # the window this request started in
                try:
                    response = await client.post(f"{proxy.url}/{index}/_search", json=body)
                except httpx.HTTPError as exc:
                    run.count(run.errors, type(exc).__name__)
                    continue
                if response.status_code != 200:
                    run.count(run.errors, str(response.status_code))
                    continue
                run.count(run.statuses, response.headers.get("x-rerank-status", "none"))
                run.latencies.append((time.perf_counter() - started) * 1000)

        async def report() -> None:
            nonlocal current
            began = time.monotonic()
            while time.monotonic() < stop_at:
                await asyncio.sleep(min(args.window_s, max(stop_at - time.monotonic(), 0.1)))
                finished, current = current, Run()
                finished.seconds = time.monotonic() - began
                began = time.monotonic()
                memory = rss_mb(proxy.pid)
                windows.append((finished, memory))
                emit(
                    figure="soak_window",
                    window=len(windows),
                    rss_mb=round(memory, 1),
                    **finished.summary(),
                )

        await asyncio.gather(report(), *(loop(w) for w in range(args.clients)))

    total = Run()
    for run, _ in windows:
        total += run
    edge = max(1, len(windows) // 5)  # first and last fifth of the run (2 min of 10)
    first, last = Run(), Run()
    for run, _ in windows[:edge]:
        first += run
    for run, _ in windows[-edge:]:
        last += run
    rss_first, rss_last = windows[0][1], windows[-1][1]
    p99_first = percentile(first.latencies, 0.99) if first.latencies else float("nan")
    p99_last = percentile(last.latencies, 0.99) if last.latencies else float("nan")
    emit(
        figure="soak",
        minutes=args.minutes,
        clients=args.clients,
        target="0 errors; RSS and p99 flat",
        rss_first_mb=round(rss_first, 1),
        rss_last_mb=round(rss_last, 1),
        rss_growth_mb=round(rss_last - rss_first, 1),
        rss_ratio=round(rss_last / rss_first, 3),
        p99_first_ms=round(p99_first, 2),
        p99_last_ms=round(p99_last, 2),
        p99_drift_ratio=round(p99_last / p99_first, 3),
        edge_windows=edge,
        **total.summary(),
    )
    return sum(total.errors.values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--upstream", default=os.environ.get("RERANK_BRIDGE_TEST_ES_URL"))
    parser.add_argument("--model", default=str(NANO if NANO.is_dir() else TRAINED))
    parser.add_argument("--docs", type=int, default=10000)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--window-s", type=float, default=30)
    args = parser.parse_args()
    upstream = loopback_upstream(parser, args.upstream)

    terms = queries(2000)
    index = load_index(upstream, products(args.docs))
    emit(
        setup="index",
        index=index,
        docs=args.docs,
        queries=len(terms),
        model=args.model,
        cpus=os.cpu_count(),
        started=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    )
    proxy = ProxyProcess(upstream, args.model, batching=True, cache_size=None)
    try:
        proxy.wait_ready()
        asyncio.run(warm_up(proxy, index, terms))
        errors = asyncio.run(soak(proxy, index, terms, args))
        if errors:
            proxy.keep_log = True
            emit(proxy_log=str(proxy.log_path))
    finally:
        proxy.stop()
        httpx.delete(f"{upstream}/{index}", timeout=60)
    return 1 if errors else 0


async def warm_up(proxy: ProxyProcess, index: str, terms: list[str]) -> Any:
    """Model loaded and sessions optimised before the first window counts."""
    async with httpx.AsyncClient(timeout=60) as client:
        for term in terms[:50]:
            body = search_body(term, rerank=True)
            (await client.post(f"{proxy.url}/{index}/_search", json=body)).raise_for_status()


if __name__ == "__main__":
    sys.exit(main())
