"""A shop's traffic through the proxy: a Zipf stream of Home Depot queries, caches off vs on.

Real shops repeat head queries all day and the same products come back for many queries. This
replays one seeded Zipf stream (exponent ``--exponent``, default 1.0, over the distinct Home Depot
judgment queries in a seeded random order of popularity) against an index of the Home Depot product
titles, through three `rerank-bridge serve` subprocesses that differ only in their caches:

- ``off``:    no score cache, no token cache (every pair tokenized and scored);
- ``tokens``: token cache only (every pair scored; passages tokenized once);
- ``on``:     score cache and token cache (the defaults).

Every figure is printed as a JSON line with its peer from the same run:

1. ``zipf_scores_identical``: the same stream prefix, one client (each search its own model run,
   so int8 batch mates cannot differ), through ``off`` and ``tokens``: every hit's score equal.
2. ``zipf_warmup``: the first ``--warmup-requests`` of the stream, at ``--clients``, through
   the caching proxies, in chunks of ``--warmup-chunk``: each chunk's score and token hit rates
   next to the stream's theoretical query repeat rate over the same requests (the chance that a
   request's query came earlier in the stream: for a Zipf over a finite set of queries it keeps
   rising with the stream's length, it does not level off), so the hit rate the measurement
   starts from is known and explained.
3. ``zipf_throughput``: reranked searches/s, p50/p90/p99 at ``--clients`` for each proxy, in
   alternating rounds (drifting machine load hits all), continuing the same stream after the
   warm-up (never replaying a warm-up request); plain pass-through (no ``rerank``) on the same
   stream in the same rounds; hit rates (each round of ``on`` and overall, with the theoretical
   repeat rate of the requests ``on`` served) and memory (proxy RSS and cache bytes) from the
   proxies' own /metrics and /proc.
4. ``zipf_tokenize_ms_per_search``: tokenization time per reranked search, token cache warm
   (``tokens``) vs none (``off``), from the proxies' tokenize-seconds counters.
5. ``zipf_p50_vs_passthrough``: p50 of reranked searches through ``on`` minus the plain
   pass-through p50, at 1 client (interleaved, continuing the stream) and at ``--clients``.
   The pass-through peer is the same request without `rerank` (`{"query": ..., "size": 10}`)
   through the same proxy; the reranked one asks the engine for the 20-hit window. At 1 client
   the share of reranked searches that were fully cached, and their p50 next to their peers',
   are reported too.

``--proxies off,on`` leaves the token-cache-only proxy out (figures 1 and 4 need it), which
saves its rounds when only the score cache is measured; ``capped`` (not run by default) is the
score cache with the proxy's old default of 10,000 entries, warmed and measured like ``on``;
``nice`` is ``on`` with ``batching.model_nice`` 10 (the model threads yield the cores to the
event loop).

Needs a running Elasticsearch/OpenSearch (loopback) and ../shared (Home Depot data, the trained
cross-encoder):

    export RERANK_BRIDGE_TEST_ES_URL=http://127.0.0.1:9200
    .venv/bin/python benchmarks/zipf_load.py
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import itertools
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from proxy_load import (  # a sibling script, not a package
    HOMEDEPOT,
    TRAINED,
    ProxyProcess,
    emit,
    load_index,
    loopback_upstream,
    percentile,
)

CACHES: dict[str, dict[str, Any]] = {
    "off": {"cache_size": 0, "token_cache_bytes": 0},
    "tokens": {"cache_size": 0},
    # the proxy's score cache before issue 18's Zipf work: at most 10,000 entries (4.5 MiB)
    "capped": {"cache_size": 10_000},
    "on": {},
    "nice": {},  # caches on, model threads at niceness +10 (batching.model_nice)
}
BATCHING: dict[str, dict[str, Any]] = {"nice": {"enabled": True, "model_nice": 10}}


def homedepot_queries(seed: int) -> list[str]:
    """The distinct judgment queries, in a seeded random popularity order (rank 1 first)."""
    seen: dict[str, None] = {}
    with (HOMEDEPOT / "judgments.tsv").open(encoding="utf-8") as handle:
        next(handle)
        for line in handle:
            seen.setdefault(line.split("\t", 1)[0].strip(), None)
    ranked = list(seen)
    random.Random(seed).shuffle(ranked)
    return ranked


def all_titles() -> list[str]:
    with (HOMEDEPOT / "products.jsonl").open(encoding="utf-8") as handle:
        return [str(json.loads(line).get("title") or "") for line in handle]


def zipf_stream(ranked: list[str], exponent: float, length: int, seed: int) -> list[str]:
    """``length`` queries drawn with P(rank k) proportional to 1 / k**exponent."""
    weights = [1.0 / (k**exponent) for k in range(1, len(ranked) + 1)]
    cumulative = list(itertools.accumulate(weights))
    rng = random.Random(seed)
    total = cumulative[-1]
    return [ranked[bisect.bisect_left(cumulative, rng.random() * total)] for _ in range(length)]


def query_repeat_rate(distinct: int, exponent: float, start: int, stop: int) -> float:
    """The expected share of requests ``start`` .. ``stop - 1`` (0-based, of one proxy's
    requests from this distribution) whose query came earlier: for query k with probability
    p_k, request t repeats it with probability 1 - (1 - p_k)**t, so the mean over the range is
    1 - sum_k ((1 - p_k)**start - (1 - p_k)**stop) / (stop - start)."""
    if stop <= start:
        raise ValueError("an empty range of requests")
    weights = 1.0 / np.arange(1, distinct + 1, dtype=np.float64) ** exponent
    stay = 1.0 - weights / weights.sum()
    return float(1.0 - (stay**start - stay**stop).sum() / (stop - start))


def body(query: str, rerank: bool) -> dict[str, Any]:
    found: dict[str, Any] = {"query": {"match": {"title": query}}, "size": 10}
    if rerank:
        found["rerank"] = {}
    return found


class Latencies:
    def __init__(self) -> None:
        self.ms: list[float] = []
        self.errors = 0
        self.seconds = 0.0
        self.statuses: dict[str, int] = {}

    def summary(self) -> dict[str, Any]:
        ms = self.ms
        return {
            "requests": len(ms),
            "errors": self.errors,
            "rerank_status": self.statuses,
            "searches_per_s": round(len(ms) / self.seconds, 2) if self.seconds else 0.0,
            "p50_ms": round(percentile(ms, 0.5), 2) if ms else None,
            "p90_ms": round(percentile(ms, 0.9), 2) if ms else None,
            "p99_ms": round(percentile(ms, 0.99), 2) if ms else None,
        }


async def replay(
    url: str,
    index: str,
    stream: list[str],
    start: int,
    clients: int,
    seconds: float,
    rerank: bool,
    sink: Latencies,
) -> int:
    """``clients`` loops take the next query of ``stream`` (from ``start``) for ``seconds``;
    returns where the stream stopped, so the next round goes on with fresh requests."""
    position = start
    stop_at = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:

        async def loop() -> None:
            nonlocal position
            while time.monotonic() < stop_at:
                query = stream[position % len(stream)]
                position += 1
                started = time.perf_counter()
                try:
                    response = await client.post(f"{url}/{index}/_search", json=body(query, rerank))
                except httpx.HTTPError:
                    sink.errors += 1
                    continue
                if response.status_code != 200:
                    sink.errors += 1
                    continue
                sink.ms.append((time.perf_counter() - started) * 1000)
                status = response.headers.get("x-rerank-status", "none")
                sink.statuses[status] = sink.statuses.get(status, 0) + 1

        began = time.monotonic()
        await asyncio.gather(*(loop() for _ in range(clients)))
        sink.seconds += time.monotonic() - began
    return position


def metrics(url: str) -> dict[str, float]:
    """The proxy's cache counters and tokenize seconds, by metric name and cache label."""
    found: dict[str, float] = {}
    for line in httpx.get(f"{url}/_bridge/metrics", timeout=30).text.splitlines():
        if line.startswith(("rerank_bridge_cache_", "rerank_bridge_tokenize_seconds_total")):
            name, value = line.rsplit(" ", 1)
            cache = name.split('cache="', 1)[1].split('"', 1)[0] if 'cache="' in name else ""
            key = name.split("{", 1)[0] + (f":{cache}" if cache else "")
            found[key] = found.get(key, 0.0) + float(value)
    return found


def rss_mb(pid: int) -> dict[str, float]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            key, value = line.split(":", 1)
            fields[key] = round(int(value.split()[0]) / 1024, 1)
    return fields


def hit_rate(after: dict[str, float], before: dict[str, float], cache: str) -> float | None:
    hits = after.get(f"rerank_bridge_cache_hits_total:{cache}", 0.0) - before.get(
        f"rerank_bridge_cache_hits_total:{cache}", 0.0
    )
    misses = after.get(f"rerank_bridge_cache_misses_total:{cache}", 0.0) - before.get(
        f"rerank_bridge_cache_misses_total:{cache}", 0.0
    )
    return round(hits / (hits + misses), 3) if hits + misses else None


def scores_identical(
    off: ProxyProcess, tokens: ProxyProcess, index: str, queries: list[str]
) -> None:
    """One client, sequential: each search is its own model run on both proxies."""
    compared = differing = 0
    worst = 0.0
    with httpx.Client(timeout=120) as client:
        for query in queries:
            answers = [
                client.post(f"{p.url}/{index}/_search", json=body(query, True)).json()
                for p in (off, tokens)
            ]
            hits = [[(h["_id"], h["_score"]) for h in a["hits"]["hits"]] for a in answers]
            compared += len(hits[0])
            if hits[0] != hits[1]:
                differing += 1
                left, right = dict(hits[0]), dict(hits[1])
                worst = max(worst, *(abs(left[k] - right.get(k, 0.0)) for k in left), 0.0)
    emit(
        figure="zipf_scores_identical",
        value=differing == 0,
        searches=len(queries),
        hits_compared=compared,
        searches_differing=differing,
        max_score_diff=worst,
    )


def p50_vs_passthrough(on: ProxyProcess, index: str, stream: list[str], n: int) -> None:
    """One client: each query reranked (``on``), then the same request without `rerank` (the
    peer: same body, same proxy, passed through untouched), interleaved. The proxy's score-cache
    miss counter, read between requests, says which reranked searches were fully cached."""
    reranked: list[float] = []
    plain: list[float] = []
    cached: list[tuple[float, float]] = []  # (reranked, its plain peer) of fully cached ones
    misses_key = "rerank_bridge_cache_misses_total:score"
    with httpx.Client(timeout=120) as client:
        for query in stream[:n]:
            before = metrics(on.url).get(misses_key, 0.0)
            pair = []
            for rerank, sink in ((True, reranked), (False, plain)):
                started = time.perf_counter()
                answer = client.post(f"{on.url}/{index}/_search", json=body(query, rerank))
                answer.raise_for_status()
                sink.append((time.perf_counter() - started) * 1000)
                pair.append(sink[-1])
            if metrics(on.url).get(misses_key, 0.0) == before:
                cached.append((pair[0], pair[1]))
    fully = [r for r, _ in cached]
    peers = [p for _, p in cached]
    emit(
        figure="zipf_p50_vs_passthrough",
        clients=1,
        value=round(statistics.median(reranked) - statistics.median(plain), 3),
        reranked_p50_ms=round(statistics.median(reranked), 3),
        passthrough_p50_ms=round(statistics.median(plain), 3),
        peer="the same search body without `rerank`, through the same proxy",
        fully_cached_share=round(len(cached) / len(reranked), 3),
        fully_cached_p50_ms=round(statistics.median(fully), 3) if fully else None,
        fully_cached_peer_p50_ms=round(statistics.median(peers), 3) if peers else None,
        requests=n,
        target="<= 2 ms",
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--upstream", default=os.environ.get("RERANK_BRIDGE_TEST_ES_URL"))
    parser.add_argument("--model", default=str(TRAINED))
    parser.add_argument("--exponent", type=float, default=1.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--round-seconds", type=float, default=20)
    parser.add_argument("--warmup-requests", type=int, default=5000)
    parser.add_argument("--warmup-chunk", type=int, default=500)
    parser.add_argument("--identical-requests", type=int, default=100)
    parser.add_argument("--p50-requests", type=int, default=300)
    parser.add_argument("--proxies", default="off,tokens,on", help="of: " + ", ".join(CACHES))
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--docs", type=int, default=None, help="index only this many products")
    args = parser.parse_args()
    upstream = loopback_upstream(parser, args.upstream)
    chosen = [name for name in CACHES if name in args.proxies.split(",")]
    if "off" not in chosen or "on" not in chosen:
        parser.error("--proxies needs at least off and on (the throughput ratio's two sides)")

    ranked = homedepot_queries(args.seed)
    stream = zipf_stream(ranked, args.exponent, 200_000, args.seed)
    titles = all_titles()[: args.docs]
    index = load_index(upstream, titles)
    emit(
        setup="zipf",
        index=index,
        docs=len(titles),
        distinct_queries=len(ranked),
        exponent=args.exponent,
        head_query_share=round(stream.count(ranked[0]) / len(stream), 4),
        model=args.model,
        clients=args.clients,
        warmup_requests=args.warmup_requests,
        proxies=chosen,
        started=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    )
    proxies: dict[str, ProxyProcess] = {}
    try:
        for name in chosen:
            batching = BATCHING.get(name, {"enabled": True})
            proxies[name] = ProxyProcess(
                upstream, args.model, batching=batching, scorer=CACHES[name]
            )
        for proxy in proxies.values():
            proxy.wait_ready()
        if "tokens" in proxies:
            # its own stream (another seed): the measured stream's requests stay unseen
            check = zipf_stream(ranked, args.exponent, args.identical_requests, args.seed + 1)
            scores_identical(proxies["off"], proxies["tokens"], index, check)
        served = warm_up(proxies, index, stream, len(ranked), args)
        position = throughput(proxies, index, stream, served, len(ranked), args)
        p50_vs_passthrough(proxies["on"], index, stream[position:], args.p50_requests)
    finally:
        for proxy in proxies.values():
            proxy.stop()
        httpx.delete(f"{upstream}/{index}", timeout=60)
    emit(finished=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()))
    return 0


def warm_up(
    proxies: dict[str, ProxyProcess],
    index: str,
    stream: list[str],
    distinct: int,
    args: argparse.Namespace,
) -> dict[str, int]:
    """The stream's first ``--warmup-requests`` through ``on`` (a fifth of them through
    ``tokens``, whose every request is a model run; ``2 x clients`` through ``off``, enough to
    load its model), at ``--clients``, in chunks whose hit rates are reported. Returns how many
    requests of the stream each proxy has served."""
    total = args.warmup_requests
    share = {"on": total, "capped": total, "nice": total, "tokens": total // 5}
    share["off"] = args.clients * 2
    served: dict[str, int] = {}
    for name, proxy in proxies.items():
        began = time.monotonic()
        done = 0
        while done < share[name]:
            size = min(args.warmup_chunk, share[name] - done)
            before = metrics(proxy.url)
            chunk_began = time.monotonic()
            asyncio.run(_warm(proxy.url, index, stream[done : done + size], args.clients))
            after = metrics(proxy.url)
            if name != "off":
                emit(
                    figure="zipf_warmup",
                    proxy=name,
                    requests=f"{done}..{done + size - 1}",
                    seconds=round(time.monotonic() - chunk_began, 1),
                    hit_rate={c: hit_rate(after, before, c) for c in ("score", "token")},
                    theoretical_query_repeat_rate=round(
                        query_repeat_rate(distinct, args.exponent, done, done + size), 3
                    ),
                )
            done += size
        served[name] = done
        emit(phase="warmup", proxy=name, requests=done, seconds=round(time.monotonic() - began, 1))
    return served


async def _warm(url: str, index: str, queries: list[str], clients: int) -> None:
    """``queries`` in stream order, each once, by ``clients`` concurrent loops."""
    pending = iter(queries)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:

        async def loop() -> None:
            for query in pending:  # the loops share one iterator: each query goes once
                answer = await client.post(f"{url}/{index}/_search", json=body(query, True))
                answer.raise_for_status()

        await asyncio.gather(*(loop() for _ in range(clients)))


def throughput(
    proxies: dict[str, ProxyProcess],
    index: str,
    stream: list[str],
    served: dict[str, int],
    distinct: int,
    args: argparse.Namespace,
) -> int:
    """Alternating rounds; returns where the stream stopped."""
    runs = {name: Latencies() for name in proxies}
    plain = Latencies()
    before = {name: metrics(p.url) for name, p in proxies.items()}
    score_rounds: dict[str, list[float | None]] = {name: [] for name in proxies}
    position: int = args.warmup_requests  # the stream goes on where the warm-up stopped
    for _ in range(args.rounds):
        for name, proxy in proxies.items():
            round_before = metrics(proxy.url)
            position = asyncio.run(
                replay(
                    proxy.url,
                    index,
                    stream,
                    position,
                    args.clients,
                    args.round_seconds,
                    True,
                    runs[name],
                )
            )
            score_rounds[name].append(hit_rate(metrics(proxy.url), round_before, "score"))
        position = asyncio.run(
            replay(
                proxies["on"].url,
                index,
                stream,
                position,
                args.clients,
                args.round_seconds,
                False,
                plain,
            )
        )
    after = {name: metrics(p.url) for name, p in proxies.items()}
    summaries: dict[str, Any] = {}
    for name, proxy in proxies.items():
        got = runs[name].summary()
        tokenize_s = after[name].get("rerank_bridge_tokenize_seconds_total", 0.0) - before[
            name
        ].get("rerank_bridge_tokenize_seconds_total", 0.0)
        got["tokenize_ms_per_search"] = (
            round(tokenize_s * 1000 / len(runs[name].ms), 3) if runs[name].ms else None
        )
        got["hit_rate"] = {c: hit_rate(after[name], before[name], c) for c in ("score", "token")}
        got["cache_bytes"] = {
            c: after[name].get(f"rerank_bridge_cache_bytes:{c}") for c in ("score", "token")
        }
        got["cache_entries"] = {
            c: after[name].get(f"rerank_bridge_cache_entries:{c}") for c in ("score", "token")
        }
        got["cache_evictions"] = {
            c: after[name].get(f"rerank_bridge_cache_evictions_total:{c}")
            for c in ("score", "token")
        }
        got["memory_mb"] = rss_mb(proxy.pid)
        summaries[name] = got
    off, on = summaries["off"], summaries["on"]
    for name in ("on", "capped", "nice"):
        if name in summaries:
            measured = len(runs[name].ms) + runs[name].errors
            got = summaries[name]
            got["score_hit_rate_per_round"] = score_rounds[name]
            got["requests_served_before"] = served[name]
            got["theoretical_query_repeat_rate"] = round(
                query_repeat_rate(distinct, args.exponent, served[name], served[name] + measured),
                3,
            )
            got["x_off"] = round(got["searches_per_s"] / max(off["searches_per_s"], 1e-9), 2)
            if got["p50_ms"] is not None and plain.ms:
                got["p50_minus_passthrough_ms"] = round(
                    got["p50_ms"] - plain.summary()["p50_ms"], 3
                )
    emit(
        figure="zipf_throughput",
        clients=args.clients,
        value=round(on["searches_per_s"] / max(off["searches_per_s"], 1e-9), 2),
        target=">= 3x searches/s with caches on vs off",
        caches_on=on,
        caches_on_old_10000_entry_cap=summaries.get("capped"),
        caches_on_model_nice_10=summaries.get("nice"),
        token_cache_only=summaries.get("tokens"),
        caches_off=off,
        passthrough=plain.summary(),
    )
    if "tokens" in summaries:
        tokens = summaries["tokens"]
        emit(
            figure="zipf_tokenize_ms_per_search",
            value=round(
                off["tokenize_ms_per_search"] / max(tokens["tokenize_ms_per_search"], 1e-9), 2
            ),
            token_cache_warm_ms=tokens["tokenize_ms_per_search"],
            no_token_cache_ms=off["tokenize_ms_per_search"],
            target=">= 3x",
        )
    emit(
        figure="zipf_p50_vs_passthrough",
        clients=args.clients,
        value=round(on["p50_ms"] - plain.summary()["p50_ms"], 3),
        reranked_p50_ms=on["p50_ms"],
        passthrough_p50_ms=plain.summary()["p50_ms"],
        target="<= 2 ms",
    )
    return position


if __name__ == "__main__":
    sys.exit(main())
