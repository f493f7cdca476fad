"""What a reranked search costs while its model cannot be loaded (not cached, download failing).

The default model is asked for with an empty model cache and `RERANK_BRIDGE_MODEL_URL` pointing at
a loopback port nothing listens on (the fault: the model store is unreachable). Each search fails
open (engine order); the figure is how much longer it takes than the same search without rerank
(the peer, from the same run), for the library wrapper and for the proxy (`rerank-bridge serve`
subprocess). Before the model breaker every reranked search retried the download (~0.4 s each);
with it, no search pays a load attempt.

    export RERANK_BRIDGE_TEST_ES_URL=http://127.0.0.1:9200
    .venv/bin/python benchmarks/model_unavailable.py --rounds 30
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
QUERY = {"match": {"title": "drill"}}


def emit(**record: Any) -> None:
    record["load_average_1m"] = round(os.getloadavg()[0], 2)
    print(json.dumps(record), flush=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def make_index(upstream: str) -> str:
    index = f"bench-unavailable-{uuid.uuid4().hex[:8]}"
    httpx.put(f"{upstream}/{index}", json={}, timeout=60).raise_for_status()
    lines = "".join(
        '{"index":{}}\n' + json.dumps({"title": f"drill model {i}"}) + "\n" for i in range(50)
    )
    httpx.post(
        f"{upstream}/{index}/_bulk?refresh=true",
        content=lines,
        headers={"Content-Type": "application/x-ndjson"},
        timeout=60,
    ).raise_for_status()
    return index


def timed(call: Any, rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return times


def report(door: str, reranked: list[float], plain: list[float], status: str) -> None:
    p50_rerank, p50_plain = statistics.median(reranked), statistics.median(plain)
    emit(
        figure="model_unavailable_search_extra_ms_p50",
        door=door,
        value=round(p50_rerank - p50_plain, 2),
        reranked_p50_ms=round(p50_rerank, 2),
        plain_p50_ms=round(p50_plain, 2),
        ratio=round(p50_rerank / p50_plain, 2),
        rerank_status=status,
        rounds=len(reranked),
    )


def library(upstream: str, index: str, rounds: int) -> None:
    from elasticsearch import Elasticsearch

    from bridge import RerankingSearch

    with Elasticsearch(upstream) as es, RerankingSearch(es) as search:
        rerank = {"fields": ["title"], "timeout_ms": None}
        answer: dict[str, Any] = {}

        def reranked() -> None:
            answer["last"] = search.search(index=index, query=QUERY, rerank={**rerank})

        reranked()  # the first search meets the failure (and, with the breaker, opens it)
        times = timed(reranked, rounds)
        plain = timed(lambda: search.search(index=index, query=QUERY), rounds)
        reranked_ids = [hit["_id"] for hit in answer["last"]["hits"]["hits"]]
        engine_ids = [hit["_id"] for hit in es.search(index=index, query=QUERY)["hits"]["hits"]]
        report("library", times, plain, "engine order" if reranked_ids == engine_ids else "moved")


def proxy(upstream: str, index: str, rounds: int, env: dict[str, str]) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as config:
        config.write(f'[upstream]\nurl = "{upstream}"\n[rerank]\nfields = ["title"]\n')
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "bridge", "serve", "--config", config.name, "--port", str(port)],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    httpx.get(f"{url}/_bridge/health", timeout=5)
                    break
                except httpx.HTTPError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        log.seek(0)
                        raise SystemExit(f"proxy did not start: {log.read()[-2000:]!r}") from None
                    time.sleep(0.2)
            with httpx.Client(timeout=60) as client:
                body = {"query": QUERY, "rerank": {}}
                first = client.post(f"{url}/{index}/_search", json=body)
                times = timed(lambda: client.post(f"{url}/{index}/_search", json=body), rounds)
                plain = timed(
                    lambda: client.post(f"{url}/{index}/_search", json={"query": QUERY}), rounds
                )
                health = client.get(f"{url}/_bridge/health")
            report("proxy", times, plain, first.headers.get("x-rerank-status", "?"))
            emit(
                figure="proxy_health_while_unavailable",
                status=health.status_code,
                body=health.json(),
            )
        finally:
            process.terminate()
            process.wait(timeout=30)
            os.unlink(config.name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--upstream", default=os.environ.get("RERANK_BRIDGE_TEST_ES_URL"))
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    if not args.upstream:
        parser.error("give --upstream URL or set RERANK_BRIDGE_TEST_ES_URL (a running node)")
    upstream = args.upstream.rstrip("/")
    with tempfile.TemporaryDirectory() as cache:
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("RERANK_BRIDGE_OFFLINE", "HF_HUB_OFFLINE")
        }
        env["RERANK_BRIDGE_CACHE"] = cache
        env["RERANK_BRIDGE_MODEL_URL"] = f"http://127.0.0.1:{free_port()}/models"
        os.environ.clear()
        os.environ.update(env)
        index = make_index(upstream)
        emit(setup="fault", cache=cache, model_url=env["RERANK_BRIDGE_MODEL_URL"], index=index)
        try:
            library(upstream, index, args.rounds)
            proxy(upstream, index, args.rounds, env)
        finally:
            httpx.delete(f"{upstream}/{index}", timeout=60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
