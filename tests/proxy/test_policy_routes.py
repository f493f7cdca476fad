"""Per-index `rerank: always | on_request | never`, A/B buckets and settings reload, through the
proxy against the real Elasticsearch and OpenSearch nodes (issue 17).

Clients change nothing: an unmodified elasticsearch-py client and plain HTTP, no `rerank` in
the body or the URL.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from bridge.proxy.app import create_app
from bridge.proxy.policy import ABSplit
from bridge.proxy.settings import load_settings
from bridge.scoring import load_scorer
from tests.proxy.test_rerank_routes import QUERY, make_index
from tests.support.proxy_server import ProxyServer

pytestmark = pytest.mark.integration

ENGINES = ["elasticsearch", "opensearch"]
Serve = Callable[..., ProxyServer]


@pytest.fixture(params=ENGINES, scope="module")
def engine(request: pytest.FixtureRequest) -> Iterator[tuple[str, str, str]]:
    """(engine, upstream URL, a fresh index of product titles) per engine."""
    name = request.param
    upstream = request.getfixturevalue("es_upstream" if name == "elasticsearch" else "os_upstream")
    index = make_index(upstream)
    yield name, upstream, index
    httpx.delete(f"{upstream}/{index}")


@pytest.fixture(scope="module")
def es_index(es_upstream: str) -> Iterator[str]:
    index = make_index(es_upstream)
    yield index
    httpx.delete(f"{es_upstream}/{index}")


@pytest.fixture
def serve(tmp_path: Path, nano_cross_encoder_dir: Path) -> Iterator[Serve]:
    """``serve(upstream, indices, **sections)``: settings written to a file, proxy started from it
    (so it can reload), stopped after. The file is ``server.settings_file``."""
    servers: list[ProxyServer] = []

    def start(upstream: str, indices: dict[str, Any], **sections: Any) -> ProxyServer:
        path = tmp_path / f"proxy-{len(servers)}.yaml"
        write_settings(path, upstream, indices, nano_cross_encoder_dir, **sections)
        app = create_app(load_settings(path), config_path=str(path))
        server = ProxyServer(app).start()
        server.settings_file = path  # type: ignore[attr-defined]
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def write_settings(
    path: Path, upstream: str, indices: dict[str, Any], model: Path, **sections: Any
) -> None:
    raw = {
        "upstream": upstream,
        "rerank": {"model": str(model), "fields": ["title"]},
        "indices": indices,
        **sections,
    }
    text = yaml.safe_dump(raw, sort_keys=False)
    tmp = path.with_suffix(".tmp.yaml")
    tmp.write_text(text)
    tmp.replace(path)  # atomic, as an editor or a config tool writes it


def post(url: str, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(url, json=body, headers=headers or {}, timeout=30)


def ids(response: httpx.Response) -> list[str]:
    return [hit["_id"] for hit in response.json()["hits"]["hits"]]


def model_order_holds(hits: list[dict[str, Any]], model: Path) -> None:
    """The answer's scores are the model's scores of its titles, highest first."""
    titles = [hit["_source"]["title"] for hit in hits]
    expected = load_scorer(model).score("drill", titles)
    assert [hit["_score"] for hit in hits] == pytest.approx(
        sorted(expected, reverse=True), abs=1e-5
    )


def direct(upstream: str, index: str, body: Any) -> list[str]:
    return ids(post(f"{upstream}/{index}/_search", body))


# -- always / never / on_request -------------------------------------------------------------


def test_always_reranks_an_unmodified_elasticsearch_py_client(
    serve: Serve, es_upstream: str, es_index: str, nano_cross_encoder_dir: Path
) -> None:
    from elasticsearch import Elasticsearch

    proxy = serve(es_upstream, {"proxy-rerank-*": {"rerank": "always"}})
    client = Elasticsearch(proxy.url)
    try:
        response = client.search(index=es_index, query=QUERY, size=5)
    finally:
        client.close()
    assert response.meta.headers["x-rerank-status"] == "reranked"
    model_order_holds(response["hits"]["hits"], nano_cross_encoder_dir)


def test_always_reranks_plain_http_searches(
    serve: Serve, engine: tuple[str, str, str], nano_cross_encoder_dir: Path
) -> None:
    _, upstream, index = engine
    proxy = serve(upstream, {"proxy-rerank-*": {"rerank": "always"}})
    response = post(f"{proxy.url}/{index}/_search", {"query": QUERY, "size": 5})
    assert response.headers["x-rerank-status"] == "reranked"
    model_order_holds(response.json()["hits"]["hits"], nano_cross_encoder_dir)
    # a GET with ?q= and no body is a search too
    got = httpx.get(f"{proxy.url}/{index}/_search?q=title:drill&size=5", timeout=30)
    assert got.headers["x-rerank-status"] == "reranked"


def test_under_always_a_requests_own_section_wins(
    serve: Serve, engine: tuple[str, str, str]
) -> None:
    _, upstream, index = engine
    proxy = serve(upstream, {"proxy-rerank-*": {"rerank": "always"}})
    url = f"{proxy.url}/{index}/_search"
    declined = post(url, {"query": QUERY, "rerank": False})
    assert declined.headers["x-rerank-status"] == "passthrough"
    assert ids(declined) == direct(upstream, index, {"query": QUERY})
    flagged = post(url + "?rerank=false", {"query": QUERY})
    assert flagged.headers["x-rerank-status"] == "passthrough"
    rrf = post(url, {"query": QUERY, "rerank": {"fusion": "rrf"}})
    assert rrf.headers["x-rerank-status"] == "reranked"
    assert all(hit["_score"] <= 2 / 61 + 1e-9 for hit in rrf.json()["hits"]["hits"])


@pytest.mark.parametrize(
    "body",
    [
        {"query": QUERY, "sort": [{"n": "desc"}]},
        {"query": QUERY, "size": 0},
        {"query": QUERY, "sort": [{"n": "asc"}], "search_after": [1]},
        {"query": {"match_all": {}}},  # no query text to rerank with
    ],
    ids=["sort", "size-0", "search_after", "no-query-text"],
)
def test_always_leaves_searches_it_cannot_rerank_untouched(
    serve: Serve, engine: tuple[str, str, str], body: dict[str, Any]
) -> None:
    _, upstream, index = engine
    proxy = serve(upstream, {"proxy-rerank-*": {"rerank": "always"}})
    through = post(f"{proxy.url}/{index}/_search", body)
    assert through.headers["x-rerank-status"] == "passthrough"
    engine_answer = post(f"{upstream}/{index}/_search", body).json()
    answer = through.json()
    for part in (answer, engine_answer):
        part.pop("took")
    assert answer == engine_answer


def test_always_leaves_scroll_untouched(serve: Serve, engine: tuple[str, str, str]) -> None:
    _, upstream, index = engine
    proxy = serve(upstream, {"proxy-rerank-*": {"rerank": "always"}})
    through = post(f"{proxy.url}/{index}/_search?scroll=1m", {"query": QUERY, "size": 2})
    assert through.headers["x-rerank-status"] == "passthrough"
    assert "_scroll_id" in through.json()
    scroll = {"scroll_id": through.json()["_scroll_id"]}
    httpx.request("DELETE", f"{upstream}/_search/scroll", json=scroll)


def open_pit(name: str, upstream: str, index: str) -> tuple[dict[str, Any], Callable[[], Any]]:
    """A point in time on ``index``: the search body's ``pit`` and how to close it."""
    if name == "elasticsearch":
        pit_id = httpx.post(f"{upstream}/{index}/_pit?keep_alive=1m").json()["id"]
        return {"id": pit_id, "keep_alive": "1m"}, lambda: httpx.request(
            "DELETE", f"{upstream}/_pit", json={"id": pit_id}
        )
    opened = httpx.post(f"{upstream}/{index}/_search/point_in_time?keep_alive=1m").json()
    pit_id = opened["pit_id"]
    return {"id": pit_id, "keep_alive": "1m"}, lambda: httpx.request(
        "DELETE", f"{upstream}/_search/point_in_time", json={"pit_id": [pit_id]}
    )


def test_always_leaves_point_in_time_searches_untouched(
    serve: Serve, engine: tuple[str, str, str]
) -> None:
    name, upstream, index = engine
    proxy = serve(upstream, {"*": {"rerank": "always"}})  # a PIT search names no index
    pit, close = open_pit(name, upstream, index)
    try:
        body = {"query": QUERY, "pit": pit, "size": 3}
        through = post(f"{proxy.url}/_search", body)
        assert through.status_code == 200, through.text
        assert through.headers["x-rerank-status"] == "passthrough"
        assert ids(through) == ids(post(f"{upstream}/_search", body))
        # the same search without the PIT is reranked under `*: always`
        plain = post(f"{proxy.url}/{index}/_search", {"query": QUERY, "size": 3})
        assert plain.headers["x-rerank-status"] == "reranked"
    finally:
        close()


def test_never_ignores_a_clients_rerank_section(serve: Serve, engine: tuple[str, str, str]) -> None:
    _, upstream, index = engine
    proxy = serve(upstream, {"proxy-rerank-*": {"rerank": "never"}})
    url = f"{proxy.url}/{index}/_search"
    engine_order = direct(upstream, index, {"query": QUERY})
    for response in (
        post(url, {"query": QUERY, "rerank": {"window_size": 5}}),
        post(url + "?rerank=true", {"query": QUERY}),
        post(url, {"query": QUERY}),
    ):
        assert response.status_code == 200
        assert response.headers["x-rerank-status"] == "passthrough"
        assert ids(response) == engine_order


def test_on_request_is_the_default_behaviour(
    serve: Serve, engine: tuple[str, str, str], nano_cross_encoder_dir: Path
) -> None:
    _, upstream, index = engine
    proxy = serve(upstream, {"proxy-rerank-*": {"rerank": "on_request", "window_size": 5}})
    url = f"{proxy.url}/{index}/_search"
    silent = post(url, {"query": QUERY})
    assert silent.headers["x-rerank-status"] == "passthrough"
    assert ids(silent) == direct(upstream, index, {"query": QUERY})
    asked = post(url, {"query": QUERY, "size": 5, "rerank": {}})
    assert asked.headers["x-rerank-status"] == "reranked"
    model_order_holds(asked.json()["hits"]["hits"], nano_cross_encoder_dir)


def test_multi_index_and_wildcard_searches_follow_the_documented_rule(
    serve: Serve, engine: tuple[str, str, str]
) -> None:
    _, upstream, index = engine
    other = make_index(upstream)  # also proxy-rerank-*; the patterns below tell them apart
    try:
        proxy = serve(upstream, {index: {"rerank": "always"}, other: {"rerank": "never"}})

        def status(target: str, body: dict[str, Any]) -> str:
            return post(f"{proxy.url}/{target}/_search", body).headers["x-rerank-status"]

        assert status(index, {"query": QUERY}) == "reranked"
        # any name under `never` wins, even when the client asks
        assert status(f"{index},{other}", {"query": QUERY, "rerank": {}}) == "passthrough"
        # a wildcard expression is matched as written: no entry matches `proxy-rerank-*`
        assert status("proxy-rerank-*", {"query": QUERY}) == "passthrough"
        assert status("proxy-rerank-*", {"query": QUERY, "rerank": {}}) == "reranked"
    finally:
        httpx.delete(f"{upstream}/{other}")


def test_msearch_applies_each_searchs_policy(
    serve: Serve, engine: tuple[str, str, str], nano_cross_encoder_dir: Path
) -> None:
    _, upstream, index = engine
    other = make_index(upstream)
    try:
        proxy = serve(upstream, {index: {"rerank": "always"}, other: {"rerank": "never"}})
        lines = [
            {"index": index},
            {"query": QUERY, "size": 5},
            {"index": other},
            {"query": QUERY, "size": 5, "rerank": {}},
        ]
        body = "\n".join(json.dumps(line) for line in lines) + "\n"
        response = httpx.post(
            f"{proxy.url}/_msearch",
            content=body,
            headers={"Content-Type": "application/x-ndjson"},
            timeout=30,
        )
        first, second = response.json()["responses"]
        model_order_holds(first["hits"]["hits"], nano_cross_encoder_dir)
        assert ids_of(second) == direct(upstream, other, {"query": QUERY, "size": 5})
    finally:
        httpx.delete(f"{upstream}/{other}")


def ids_of(answer: dict[str, Any]) -> list[str]:
    return [hit["_id"] for hit in answer["hits"]["hits"]]


# -- A/B buckets -----------------------------------------------------------------------------


AB = {"share": 0.5, "key": "header:X-User-Id", "salt": "test"}


def test_ab_buckets_are_stable_and_split_outcomes_and_metrics(
    serve: Serve, engine: tuple[str, str, str]
) -> None:
    _, upstream, index = engine
    proxy = serve(upstream, {"proxy-rerank-*": {"rerank": "always", "ab": AB}})
    split = ABSplit(0.5, "header", "X-User-Id", "test")
    url = f"{proxy.url}/{index}/_search"
    engine_order = direct(upstream, index, {"query": QUERY})
    seen: dict[str, int] = {}
    for n in range(30):
        user = f"user-{n}"
        bucket = split.bucket(user)
        for _ in range(2):
            response = post(url, {"query": QUERY}, {"X-User-Id": user})
            assert response.headers["x-rerank-bucket"] == bucket
            expected = "reranked" if bucket == "treatment" else "passthrough"
            assert response.headers["x-rerank-status"] == expected
            if bucket == "control":
                assert ids(response) == engine_order
            seen[bucket] = seen.get(bucket, 0) + 1
    assert set(seen) == {"treatment", "control"}
    metrics = httpx.get(f"{proxy.url}/_bridge/metrics").text
    for bucket, status in (("treatment", "reranked"), ("control", "passthrough")):
        line = (
            f'rerank_bridge_ab_searches_total{{bucket="{bucket}",pattern="proxy-rerank-*",'
            f'status="{status}"}} {float(seen[bucket])}'
        )
        assert line in metrics
        count = (
            f'rerank_bridge_ab_request_seconds_count{{bucket="{bucket}",'
            f'pattern="proxy-rerank-*"}} {float(seen[bucket])}'
        )
        assert count in metrics


def test_ab_by_cookie_and_missing_key_falls_back_to_random(
    serve: Serve, es_upstream: str, es_index: str
) -> None:
    ab = {"share": 0.5, "key": "cookie:uid", "salt": "c"}
    proxy = serve(es_upstream, {"proxy-rerank-*": {"rerank": "always", "ab": ab}})
    url = f"{proxy.url}/{es_index}/_search"
    split = ABSplit(0.5, "cookie", "uid", "c")
    for user in ("a", "b", "c", "d", "e", "f"):
        response = post(url, {"query": QUERY}, {"Cookie": f"theme=dark; uid={user}"})
        assert response.headers["x-rerank-bucket"] == split.bucket(user)
    # no cookie: a random draw per request, so over 40 requests both buckets appear
    buckets = {post(url, {"query": QUERY}).headers["x-rerank-bucket"] for _ in range(40)}
    assert buckets == {"treatment", "control"}


@pytest.mark.slow  # 20,000 requests through the proxy: about 2-4 minutes on a shared 2-core host
def test_ten_thousand_users_share_within_one_percent_and_keep_buckets_across_reloads(
    serve: Serve, es_upstream: str, es_index: str, nano_cross_encoder_dir: Path
) -> None:
    ab = {"share": 0.2, "key": "header:X-User-Id", "salt": "launch"}
    indices = {"proxy-rerank-*": {"rerank": "always", "ab": ab}}
    proxy = serve(es_upstream, indices, reload={"watch_interval_s": 0.2})
    users = [f"user-{uuid.UUID(int=n).hex[:12]}-{n}" for n in range(10_000)]
    url = f"{proxy.url}/{es_index}/_search?size=0"  # cheap: size 0 is never reranked

    first = buckets_of(url, users)
    share = sum(b == "treatment" for b in first.values()) / len(users)
    assert abs(share - 0.2) <= 0.01, share
    assert first == {u: ABSplit(0.2, "header", "X-User-Id", "launch").bucket(u) for u in users}

    # reload: another setting changes, the split stays; every user's next request keeps its
    # bucket (repeated requests without a reload: test_ab_buckets_are_stable_...)
    indices["proxy-rerank-*"]["window_size"] = 5
    write_settings(
        proxy.settings_file,  # type: ignore[attr-defined]
        es_upstream,
        indices,
        nano_cross_encoder_dir,
        reload={"watch_interval_s": 0.2},
    )
    wait_for_reloads(proxy.url, applied=1)
    assert buckets_of(url, users) == first


def buckets_of(url: str, users: list[str]) -> dict[str, str]:
    async def run() -> dict[str, str]:
        limits = httpx.Limits(max_connections=8)
        async with httpx.AsyncClient(limits=limits, timeout=60) as client:
            gate = asyncio.Semaphore(8)

            async def one(user: str) -> tuple[str, str]:
                async with gate:
                    response = await client.get(url, headers={"X-User-Id": user})
                assert response.status_code == 200
                return user, response.headers["x-rerank-bucket"]

            return dict(await asyncio.gather(*(one(u) for u in users)))

    return asyncio.run(run())


def wait_for_reloads(url: str, *, applied: int = 0, rejected: int = 0) -> None:
    deadline = time.monotonic() + 15
    wanted = []
    if applied:
        wanted.append(f'rerank_bridge_settings_reloads_total{{result="applied"}} {float(applied)}')
    if rejected:
        wanted.append(
            f'rerank_bridge_settings_reloads_total{{result="rejected"}} {float(rejected)}'
        )
    while time.monotonic() < deadline:
        text = httpx.get(f"{url}/_bridge/metrics").text
        if all(line in text for line in wanted):
            return
        time.sleep(0.1)
    raise AssertionError(f"reload not seen: {wanted}")


# -- reload ----------------------------------------------------------------------------------

FAST = {"watch_interval_s": 0.2}


def test_a_changed_file_is_applied_and_a_bad_one_keeps_the_old_settings(
    serve: Serve,
    es_upstream: str,
    es_index: str,
    nano_cross_encoder_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="bridge.proxy.reload")
    indices: dict[str, Any] = {"proxy-rerank-*": {"rerank": "on_request"}}
    proxy = serve(es_upstream, indices, reload=FAST)
    path: Path = proxy.settings_file  # type: ignore[attr-defined]
    url = f"{proxy.url}/{es_index}/_search"
    assert post(url, {"query": QUERY}).headers["x-rerank-status"] == "passthrough"

    indices["proxy-rerank-*"]["rerank"] = "always"
    write_settings(path, es_upstream, indices, nano_cross_encoder_dir, reload=FAST)
    wait_for_reloads(proxy.url, applied=1)
    assert post(url, {"query": QUERY}).headers["x-rerank-status"] == "reranked"

    indices["proxy-rerank-*"]["rerank"] = "sometimes"  # invalid
    write_settings(path, es_upstream, indices, nano_cross_encoder_dir, reload=FAST)
    wait_for_reloads(proxy.url, applied=1, rejected=1)
    assert post(url, {"query": QUERY}).headers["x-rerank-status"] == "reranked"
    rejected = [r.getMessage() for r in caplog.records if "rejected" in r.getMessage()]
    assert rejected
    assert "indices.proxy-rerank-*.rerank" in rejected[0]

    path.write_text("upstream: [unclosed\n")  # not even YAML
    wait_for_reloads(proxy.url, applied=1, rejected=2)
    assert post(url, {"query": QUERY}).headers["x-rerank-status"] == "reranked"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_sighup_reloads_the_settings_of_a_running_serve(
    tmp_path: Path, es_upstream: str, es_index: str, nano_cross_encoder_dir: Path
) -> None:
    path = tmp_path / "proxy.yaml"
    indices: dict[str, Any] = {"proxy-rerank-*": {"rerank": "never"}}
    off = {"watch_interval_s": 0}  # only the signal reloads here
    write_settings(path, es_upstream, indices, nano_cross_encoder_dir, reload=off)
    port = free_port()
    log = (tmp_path / "serve.log").open("w+")
    command = [sys.executable, "-m", "bridge", "serve", "--config", str(path), "--port", str(port)]
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy())
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, process)
        search = f"{url}/{es_index}/_search"
        asked = post(search, {"query": QUERY, "rerank": {}})
        assert asked.headers["x-rerank-status"] == "passthrough"

        indices["proxy-rerank-*"]["rerank"] = "always"
        write_settings(path, es_upstream, indices, nano_cross_encoder_dir, reload=off)
        process.send_signal(signal.SIGHUP)
        wait_for_reloads(url, applied=1)
        assert post(search, {"query": QUERY}).headers["x-rerank-status"] == "reranked"

        path.write_text("indices: {'proxy-rerank-*': {rerank: maybe}}\n")
        process.send_signal(signal.SIGHUP)
        wait_for_reloads(url, applied=1, rejected=1)
        assert process.poll() is None
        assert post(search, {"query": QUERY}).headers["x-rerank-status"] == "reranked"
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.seek(0)
        output = log.read()
        log.close()
    assert "settings reload (SIGHUP) rejected, the previous settings stay in force" in output


def wait_until_up(url: str, process: subprocess.Popen[Any]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError("serve exited early")
        try:
            if httpx.get(f"{url}/_bridge/metrics", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("serve did not start")
