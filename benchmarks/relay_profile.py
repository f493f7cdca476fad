"""One proxy relaying a steady stream of plain reads, for a profiler to attach to.

Starts `rerank-bridge serve` (this checkout, or ``--repo``) in front of an engine, indexes Home
Depot titles, prints the proxy's pid on the first line and then sends `_count` (or `_search`)
requests one after another over one raw keep-alive connection for ``--seconds``, a new query
text each time; at the end it prints the requests sent and the proxy's CPU per request. Attach a
profiler while it runs, e.g.

    .venv/bin/python benchmarks/relay_profile.py --upstream $ES --seconds 25 > /tmp/p.out &
    sleep 12; perf record -F 2000 -g -p $(head -1 /tmp/p.out) -- sleep 10
    py-spy record -p $(head -1 /tmp/p.out) -r 1000 -d 10 -f raw -o /tmp/spy.txt

The proxy here only ever relays (no direct calls or other relays between its requests), so its
caches stay warm: this is where its CPU goes per request, not the hop's share under a rotation.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from proxy_load import (  # a sibling script, not a package
    NANO,
    REPO,
    ProxyProcess,
    _overhead_requests,
    _raw_request,
    _RawConnection,
    load_index,
    process_cpu_s,
    products,
    queries,
)


async def stream(url: str, index: str, kind: str, terms: list[str], seconds: float) -> int:
    """Requests of ``kind`` as the overhead part of proxy_load sends them, with gzip answers."""
    loop = asyncio.get_running_loop()
    host, port = url.split("//", 1)[1].split(":")
    _, conn = await loop.create_connection(_RawConnection, host, int(port))
    sent = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        method, path, body = _overhead_requests(index, terms[sent % len(terms)])[kind]
        status = await conn.exchange(_raw_request(method, path, url, body, gzip=True))
        if status != 200:
            raise SystemExit(f"the proxy answered {status}")
        sent += 1
    return sent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--upstream", default=os.environ.get("RERANK_BRIDGE_TEST_ES_URL"))
    parser.add_argument("--seconds", type=float, default=25)
    parser.add_argument("--request", choices=("count", "search"), default="count")
    parser.add_argument("--docs", type=int, default=10000)
    parser.add_argument("--repo", type=Path, default=REPO, help="the checkout whose proxy runs")
    args = parser.parse_args()
    if not args.upstream:
        parser.error("--upstream (or RERANK_BRIDGE_TEST_ES_URL) is required")
    if args.seconds <= 0:
        parser.error("--seconds must be more than 0")
    upstream = args.upstream.rstrip("/")
    index = load_index(upstream, products(args.docs))
    proxy = ProxyProcess(upstream, str(NANO), batching=False, repo=args.repo)
    try:
        proxy.wait_ready()
        print(proxy.pid, flush=True)
        cpu = process_cpu_s(proxy.pid)
        sent = asyncio.run(stream(proxy.url, index, args.request, queries(2000), args.seconds))
        cpu = process_cpu_s(proxy.pid) - cpu
        figures = {
            "figure": "relay_profile",
            "request": args.request,
            "requests": sent,
            "requests_per_s": round(sent / args.seconds, 1),
            "proxy_cpu_ms_per_request": round(cpu * 1000 / max(sent, 1), 3),
        }
        print(json.dumps(figures), flush=True)
    finally:
        proxy.stop()
        httpx.delete(f"{upstream}/{index}", timeout=60)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
