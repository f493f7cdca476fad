"""Operations: the serve command, the access log."""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.proxy.conftest import StartProxy

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_access_log_has_no_credentials_or_query(
    start_proxy: StartProxy, dead_upstream_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    proxy = start_proxy(dead_upstream_url)
    with caplog.at_level(logging.INFO, logger="bridge.proxy.access"):
        httpx.get(
            f"{proxy.url}/idx/_doc/1?q=secret-term",
            headers={"Authorization": "Basic c2VjcmV0OnNlY3JldA=="},
        )
    lines = [r.getMessage() for r in caplog.records if r.name == "bridge.proxy.access"]
    record = json.loads(lines[-1])
    assert (record["path"], record["status"], "secret" in lines[-1]) == ("/idx/_doc/1", 502, False)


def test_serve_command_runs_a_healthy_proxy(es_upstream: str, nano_cross_encoder_dir: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bridge",
            "serve",
            "--upstream",
            es_upstream,
            "--port",
            str(port),
            "--model",
            str(nano_cross_encoder_dir),
        ],
        cwd=REPO,
        env={**os.environ, "RERANK_BRIDGE_OFFLINE": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        status = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and status != 200:
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/_bridge/health").status_code
            except httpx.TransportError:
                time.sleep(0.2)
        assert status == 200
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_serve_writes_the_access_lines_it_batches_before_it_exits(
    es_upstream: str, nano_cross_encoder_dir: Path, tmp_path: Path
) -> None:
    """Under serve the access lines are written in batches (bridge.proxy.access); a relayed
    read and an app request each have their line, in serve's format, by the time it exits."""
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "bridge", "serve", "--upstream", es_upstream),
                *("--port", str(port), "--model", str(nano_cross_encoder_dir)),
            ],
            cwd=REPO,
            env={**os.environ, "RERANK_BRIDGE_OFFLINE": "1"},
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{url}/_bridge/health").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)
            with httpx.Client() as client:  # keep-alive: the second read is relayed
                for _ in range(3):
                    client.get(f"{url}/_cluster/health").raise_for_status()
                metrics = client.get(f"{url}/_bridge/metrics").text
        finally:
            process.terminate()
            process.wait(timeout=20)
    relayed = [
        line for line in metrics.splitlines() if line.startswith("rerank_bridge_relayed_requests")
    ]
    lines = [line for line in log.read_text().splitlines() if " INFO bridge.proxy.access: " in line]
    records = [json.loads(line.split(": ", 1)[1]) for line in lines]
    assert relayed[0] != "rerank_bridge_relayed_requests_total 0.0", relayed
    assert [(r["method"], r["path"], r["status"]) for r in records][-4:] == [
        ("GET", "/_cluster/health", 200),
        ("GET", "/_cluster/health", 200),
        ("GET", "/_cluster/health", 200),
        ("GET", "/_bridge/metrics", 200),
    ]
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO bridge\.proxy\.access: \{.*\}", lines[-1]
    )


def test_serve_command_reports_a_bad_config_file(tmp_path: Path) -> None:
    config = tmp_path / "proxy.yaml"
    config.write_text("upstream: http://127.0.0.1:1\nbatching: {max_wait_ms: -1}\n")
    result = subprocess.run(
        [sys.executable, "-m", "bridge", "serve", "--config", str(config)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, "batching.max_wait_ms" in result.stderr) == (2, True)


@pytest.mark.integration
@pytest.mark.parametrize("engine", ["elasticsearch", "opensearch"])
def test_proxy_learns_which_engine_it_fronts(
    request: pytest.FixtureRequest, start_proxy: StartProxy, engine: str
) -> None:
    upstream = request.getfixturevalue(
        "es_upstream" if engine == "elasticsearch" else "os_upstream"
    )
    proxy = start_proxy(upstream)
    assert httpx.get(f"{proxy.url}/_bridge/health").json()["upstream"]["engine"] == engine


def test_engine_set_in_the_settings_is_not_second_guessed() -> None:
    from bridge.proxy.settings import settings_from_mapping
    from bridge.proxy.state import Proxy

    settings = settings_from_mapping({"upstream": {"url": "http://x:9200", "engine": "opensearch"}})
    proxy = Proxy(settings)
    proxy.note_engine([(b"x-elastic-product", b"Elasticsearch")])
    assert proxy.engine == "opensearch"
