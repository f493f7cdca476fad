"""SIGTERM drains: requests in flight finish, nobody sees a reset, the process ends in time.

The proxy is the real `rerank-bridge serve` process. To hold requests in flight on demand, the
upstream is a slow loopback engine (the fault); the load test uses the real Elasticsearch node.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.support.proxy_server import ProxyServer

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
UPSTREAM_DELAY_S = 2.0
BODY = {"query": {"match_all": {}}}


class SlowEngine:
    url = ""
    delay_s = UPSTREAM_DELAY_S


@pytest.fixture
def slow_engine() -> Iterator[SlowEngine]:
    """An engine that answers every search after ``delay_s``, with one hit."""
    engine = SlowEngine()

    async def slow(request: Request) -> JSONResponse:
        await asyncio.sleep(engine.delay_s)
        hits = {"total": {"value": 1, "relation": "eq"}, "max_score": 1.0, "hits": []}
        return JSONResponse(
            {"took": 1, "hits": hits}, headers={"X-Elastic-Product": "Elasticsearch"}
        )

    app = Starlette(routes=[Route("/{path:path}", slow, methods=["GET", "POST"])])
    with ProxyServer(app) as server:
        engine.url = server.url
        yield engine


def start_serve(
    upstream: str, tmp_path: Path, model: Path, **limits: float
) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = tmp_path / "serve.json.toml"
    lines = ["[limits]", *(f"{k} = {v}" for k, v in limits.items())]
    config.write_text("\n".join(lines) + "\n")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bridge",
            "serve",
            "--upstream",
            upstream,
            "--port",
            str(port),
            "--config",
            str(config),
            "--model",
            str(model),
        ],
        cwd=REPO,
        env={**os.environ, "RERANK_BRIDGE_OFFLINE": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            httpx.get(f"{url}/_bridge/metrics", timeout=5)
            return process, url
        except httpx.TransportError:
            assert process.poll() is None, "serve exited"
            assert time.monotonic() < deadline, "serve did not start"
            time.sleep(0.2)


async def in_flight_then_sigterm(
    url: str, process: subprocess.Popen[bytes], clients: int
) -> tuple[list[int | str], float]:
    """``clients`` searches sent at once; SIGTERM while they wait on the engine."""

    async with httpx.AsyncClient(timeout=60) as client:

        async def one() -> int | str:
            try:
                answer = await client.post(
                    f"{url}/products/_search", json={"query": {"match_all": {}}}
                )
            except httpx.HTTPError as exc:
                return type(exc).__name__
            return answer.status_code

        tasks = [asyncio.create_task(one()) for _ in range(clients)]
        await asyncio.sleep(1.0)
        process.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        results = await asyncio.gather(*tasks)
    await asyncio.to_thread(process.wait, 60)
    return results, time.monotonic() - sent


def test_sigterm_lets_in_flight_requests_finish(
    slow_engine: SlowEngine, tmp_path: Path, nano_cross_encoder_dir: Path
) -> None:
    process, url = start_serve(
        slow_engine.url, tmp_path, nano_cross_encoder_dir, drain_linger_s=0.5
    )
    try:
        results, _ = asyncio.run(in_flight_then_sigterm(url, process, clients=8))
    finally:
        process.kill()
    assert results == [200] * 8


def test_sigterm_ends_the_process_within_the_drain_deadline(
    slow_engine: SlowEngine, tmp_path: Path, nano_cross_encoder_dir: Path
) -> None:
    """Requests slower than limits.drain_s are cut: the process does not wait for them."""
    process, url = start_serve(
        slow_engine.url, tmp_path, nano_cross_encoder_dir, drain_linger_s=0.0, drain_s=0.2
    )
    try:
        slow_engine.delay_s = 20
        results, took_s = asyncio.run(in_flight_then_sigterm(url, process, clients=2))
        ended = process.returncode
    finally:
        process.kill()
    # the engine needed 19 s more; the deadline (uvicorn's 1 s at least) cut them
    assert (ended in (0, -signal.SIGTERM), 200 not in results, took_s < 10) == (True, True, True), (
        results,
        took_s,
    )


def test_health_says_draining_while_the_proxy_lingers(
    slow_engine: SlowEngine, tmp_path: Path, nano_cross_encoder_dir: Path
) -> None:
    process, url = start_serve(
        slow_engine.url, tmp_path, nano_cross_encoder_dir, drain_linger_s=3.0
    )
    try:
        process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        health = httpx.get(f"{url}/_bridge/health", timeout=10)
    finally:
        process.kill()
    assert (health.status_code, health.json()["status"], health.headers["connection"]) == (
        503,
        "draining",
        "close",
    )


@pytest.fixture(scope="module")
def index(es_upstream: str) -> Iterator[str]:
    name = f"proxy-drain-{uuid.uuid4().hex[:8]}"
    titles = [f"cordless drill model {i}" for i in range(40)]
    lines = "".join('{"index":{}}\n' + json.dumps({"title": t}) + "\n" for t in titles)
    assert httpx.put(f"{es_upstream}/{name}", json={}).status_code == 200
    httpx.post(
        f"{es_upstream}/{name}/_bulk?refresh=true",
        content=lines,
        headers={"Content-Type": "application/x-ndjson"},
    ).raise_for_status()
    yield name
    httpx.delete(f"{es_upstream}/{name}")


def test_sigterm_under_load_behind_a_balancer_loses_no_request(
    es_upstream: str, index: str, tmp_path: Path, nano_cross_encoder_dir: Path
) -> None:
    """16 clients of reranked searches on a real node, routed by a balancer that polls health
    (every 100 ms, as load balancers do) and stops routing when it is 503; SIGTERM mid-run.
    Every search completes, no client sees a reset or a refusal, the process ends once the
    traffic has moved off."""
    process, url = start_serve(es_upstream, tmp_path, nano_cross_encoder_dir, drain_linger_s=0.5)
    outcomes: dict[str, int] = {}
    in_rotation = True
    ended_after_s = -1.0

    async def run() -> None:
        nonlocal in_rotation, ended_after_s
        limits = httpx.Limits(max_connections=20, max_keepalive_connections=20)
        async with httpx.AsyncClient(timeout=60, limits=limits) as client:
            stop_at = time.monotonic() + 20

            async def loop() -> None:
                body = {"query": {"match": {"title": "drill"}}, "rerank": {"fields": ["title"]}}
                while in_rotation and time.monotonic() < stop_at:
                    try:
                        answer = await client.post(f"{url}/{index}/_search", json=body)
                        key = str(answer.status_code)
                    except httpx.HTTPError as exc:
                        key = type(exc).__name__
                    outcomes[key] = outcomes.get(key, 0) + 1

            async def balancer() -> None:
                nonlocal in_rotation
                while in_rotation:
                    await asyncio.sleep(0.1)
                    health = await client.get(f"{url}/_bridge/health")
                    in_rotation = health.status_code == 200

            async def terminate() -> None:
                nonlocal ended_after_s
                await asyncio.sleep(3)
                process.send_signal(signal.SIGTERM)
                sent = time.monotonic()
                await asyncio.to_thread(process.wait, 60)
                ended_after_s = time.monotonic() - sent

            await asyncio.gather(terminate(), balancer(), *(loop() for _ in range(16)))

    try:
        asyncio.run(run())
    finally:
        process.kill()
    assert (set(outcomes), 0 < ended_after_s < 15) == ({"200"}, True), (outcomes, ended_after_s)
