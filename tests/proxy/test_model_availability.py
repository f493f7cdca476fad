"""Model availability: models load at start-up, health says 503 (which model, why, the fix) until
they do, and a model that cannot load costs searches nothing (the breaker fails them open at once).

Real parts: a real Elasticsearch node, the real `rerank-bridge serve` process, real model folders.
Faults: the model store is an unreachable or failing loopback server (`RERANK_BRIDGE_MODEL_URL`),
the cache an empty folder, or offline mode is on.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge.config import DEFAULT_MODEL
from tests.proxy.conftest import StartProxy
from tests.support.proxy_server import ProxyServer

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
QUERY = {"match": {"title": "drill"}}


@pytest.fixture(scope="module")
def index(es_upstream: str) -> Iterator[str]:
    name = f"proxy-availability-{uuid.uuid4().hex[:8]}"
    titles = ["cordless drill", "drill bit set", "garden hose", "hammer drill", "paint brush"]
    lines = "".join('{"index":{}}\n' + json.dumps({"title": t}) + "\n" for t in titles)
    assert httpx.put(f"{es_upstream}/{name}", json={}).status_code == 200
    httpx.post(
        f"{es_upstream}/{name}/_bulk?refresh=true",
        content=lines,
        headers={"Content-Type": "application/x-ndjson"},
    ).raise_for_status()
    yield name
    httpx.delete(f"{es_upstream}/{name}")


class FailingModelStore:
    """A model mirror that answers every download with 503 and counts the requests (the fault)."""

    def __init__(self) -> None:
        self.hits = 0
        store = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                store.hits += 1
                self.send_response(503)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/models"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def serve(upstream: str, env: dict[str, str], *args: str) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
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
            *args,
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return process, f"http://127.0.0.1:{port}"


def first_health(process: subprocess.Popen[bytes], url: str) -> httpx.Response:
    deadline = time.monotonic() + 90
    while True:
        try:
            return httpx.get(f"{url}/_bridge/health", timeout=10)
        except httpx.TransportError:
            assert process.poll() is None, "serve exited"
            assert time.monotonic() < deadline, "serve did not answer within 90 s"
            time.sleep(0.2)


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("RERANK_BRIDGE_OFFLINE", "HF_HUB_OFFLINE")
    }
    env["RERANK_BRIDGE_CACHE"] = str(tmp_path / "empty-cache")
    env.update(extra)
    return env


def test_offline_serve_without_the_default_model_answers_503_naming_it_and_the_fix(
    es_upstream: str, tmp_path: Path
) -> None:
    process, url = serve(es_upstream, clean_env(tmp_path, RERANK_BRIDGE_OFFLINE="1"))
    try:
        health = first_health(process, url)
        state = health.json()["models"][DEFAULT_MODEL]
        assert (health.status_code, state["state"], "OfflineError" in state["reason"]) == (
            503,
            "unavailable",
            True,
        )
        assert ("--model" in state["fix"], "RERANK_BRIDGE_MODEL_URL" in state["fix"]) == (
            True,
            True,
        )
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_no_reranked_search_pays_a_download_attempt(
    es_upstream: str, index: str, tmp_path: Path
) -> None:
    store = FailingModelStore()
    process, url = serve(es_upstream, clean_env(tmp_path, RERANK_BRIDGE_MODEL_URL=store.url))
    try:
        health = first_health(process, url)
        failures = health.json()["models"][DEFAULT_MODEL]["failures"]
        hits_per_attempt = store.hits / failures  # the download's own tries per load attempt
        hits_before = store.hits
        with httpx.Client(timeout=60) as client:
            answers = [
                client.post(f"{url}/{index}/_search", json={"query": QUERY, "rerank": {}})
                for _ in range(20)
            ]
        deadline = time.monotonic() + 10
        while True:  # every store hit since must belong to a background retry, none to a search
            after = httpx.get(f"{url}/_bridge/health").json()["models"][DEFAULT_MODEL]
            retries = after["failures"] - failures
            if store.hits - hits_before == hits_per_attempt * retries:
                break
            assert time.monotonic() < deadline, (store.hits, hits_before, retries)
            time.sleep(0.2)
        statuses = {(a.status_code, a.headers["x-rerank-status"]) for a in answers}
        assert statuses == {(200, "skipped")}
    finally:
        process.terminate()
        process.wait(timeout=30)
        store.close()


def test_serve_model_folder_is_loaded_at_start_and_named_by_health(
    es_upstream: str, index: str, tmp_path: Path, nano_cross_encoder_dir: Path
) -> None:
    env = clean_env(tmp_path, RERANK_BRIDGE_OFFLINE="1")
    process, url = serve(es_upstream, env, "--model", str(nano_cross_encoder_dir))
    try:
        health = first_health(process, url)
        search = httpx.post(f"{url}/{index}/_search", json={"query": QUERY, "rerank": {}})
        assert (
            health.status_code,
            health.json()["models"],
            search.headers["x-rerank-status"],
        ) == (200, {str(nano_cross_encoder_dir): {"state": "loaded"}}, "reranked")
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_a_model_folder_that_appears_later_is_loaded_in_the_background(
    start_proxy: StartProxy,
    es_upstream: str,
    index: str,
    tmp_path: Path,
    nano_cross_encoder_dir: Path,
) -> None:
    folder = tmp_path / "model-arrives-later"
    proxy = start_proxy(es_upstream, rerank={"model": str(folder), "fields": ["title"]})
    before = httpx.get(f"{proxy.url}/_bridge/health")
    skipped = search(proxy, index)
    shutil.copytree(nano_cross_encoder_dir, folder)
    deadline = time.monotonic() + 60  # retries 2 s, 6 s, 14 s, 30 s after the first failure
    while httpx.get(f"{proxy.url}/_bridge/health").status_code != 200:
        assert time.monotonic() < deadline, "the background retry did not load the model"
        time.sleep(0.5)
    assert (before.status_code, skipped, search(proxy, index)) == (503, "skipped", "reranked")


def test_metrics_say_the_model_is_unavailable(
    start_proxy: StartProxy, es_upstream: str, tmp_path: Path
) -> None:
    missing = str(tmp_path / "never-there")
    proxy = start_proxy(es_upstream, rerank={"model": missing})
    text = httpx.get(f"{proxy.url}/_bridge/metrics").text
    assert f'rerank_bridge_model_available{{model="{missing}"}} 0.0' in text


def search(proxy: ProxyServer, index: str) -> str:
    answer = httpx.post(f"{proxy.url}/{index}/_search", json={"query": QUERY, "rerank": {}})
    return answer.headers["x-rerank-status"]
