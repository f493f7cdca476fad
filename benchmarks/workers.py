"""`rerank-bridge serve --workers N`: reranked searches/s at 16 clients and memory per worker.

Two proxies over the same index and model, one with 1 worker and one with ``--workers`` (default
2) uvicorn worker processes (each loads its own model session), driven in alternating rounds so
drifting machine load hits both; caches off (every pair tokenized and scored). Memory is each
worker process's RSS after the run. JSON lines; needs a running node:

    export RERANK_BRIDGE_TEST_ES_URL=http://127.0.0.1:9200
    .venv/bin/python benchmarks/workers.py
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from proxy_load import (  # a sibling script, not a package
    NANO,
    TRAINED,
    ProxyProcess,
    Run,
    drive,
    emit,
    load_index,
    products,
    queries,
)


def worker_pids(pid: int) -> list[int]:
    """The uvicorn workers under a supervisor (or the process itself when it has none)."""
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        children += [int(c) for c in text]
    # uvicorn's multiprocess supervisor may also hold a resource tracker: keep python servers
    found = [
        c for c in children if b"resource_tracker" not in Path(f"/proc/{c}/cmdline").read_bytes()
    ]
    return found or [pid]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--upstream", default=os.environ.get("RERANK_BRIDGE_TEST_ES_URL"))
    parser.add_argument("--model", default=str(NANO if NANO.is_dir() else TRAINED))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--round-seconds", type=float, default=15)
    parser.add_argument("--docs", type=int, default=10000)
    args = parser.parse_args()
    if not args.upstream:
        parser.error("give --upstream URL or set RERANK_BRIDGE_TEST_ES_URL (a running node)")
    upstream = args.upstream.rstrip("/")
    terms = queries(2000)
    index = load_index(upstream, products(args.docs))
    emit(
        setup="workers",
        index=index,
        model=args.model,
        clients=args.clients,
        cpus=os.cpu_count(),
        started=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    )
    counts = (1, args.workers)
    procs: dict[int, ProxyProcess] = {}
    try:
        for n in counts:
            procs[n] = ProxyProcess(upstream, args.model, batching=True, workers=n)
        for proxy in procs.values():
            proxy.wait_ready()
            # warm every worker: enough requests that each has loaded its model
            asyncio.run(drive(proxy.url, index, terms, args.clients, 8, True))
        runs = {n: Run() for n in counts}
        for _ in range(args.rounds):
            for n, proxy in procs.items():
                runs[n] += asyncio.run(
                    drive(proxy.url, index, terms, args.clients, args.round_seconds, True)
                )
        summaries = {}
        for n, proxy in procs.items():
            pids = worker_pids(proxy.pid)
            summary = runs[n].summary()
            summary["worker_rss_mb"] = [rss_mb(p) for p in pids]
            summary["supervisor_rss_mb"] = rss_mb(proxy.pid) if pids != [proxy.pid] else None
            summaries[n] = summary
        emit(
            figure="workers_throughput",
            value=round(
                summaries[args.workers]["throughput_rps"]
                / max(summaries[1]["throughput_rps"], 1e-9),
                2,
            ),
            clients=args.clients,
            **{f"workers_{n}": s for n, s in summaries.items()},
        )
    finally:
        for proxy in procs.values():
            proxy.stop()
        httpx.delete(f"{upstream}/{index}", timeout=60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
