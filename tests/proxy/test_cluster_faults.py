"""A data node killed with `kill -9` under load: no failed search, no lost write, it comes back.

Real 3-node clusters of both engines (tests/support/clusters.py, started once per session), an
index with 3 shards and one replica, 16 clients searching (half of them reranked) for 60 s while
a 17th writes documents. 15 s in, one data node (not the elected master) is SIGKILLed; 30 s in it
is started again on its data. Once through the proxy (its node pool over all three nodes) and
once through the library wrapper over a multi-node client, per engine.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge import RerankingSearch
from bridge.devtools.localnode import LocalCluster
from bridge.devtools.sample import sample_products
from tests.proxy.conftest import StartProxy

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CLIENTS = 16
DURATION_S = 60.0
KILL_AT_S = 15.0
RESTART_AT_S = 30.0
WORDS = ["drill", "hose", "hammer", "saw", "light", "paint", "ladder", "wrench", "garden", "bit"]
CLUSTERS = {"elasticsearch": "es_cluster", "opensearch": "os_cluster"}


@dataclass
class Tally:
    """What the clients saw during one run."""

    searches: int = 0
    failures: list[str] = field(default_factory=list)
    # 200 answers missing a shard because its node died mid-search (node_disconnected_exception)
    partial: int = 0
    acked: dict[str, float] = field(default_factory=dict)  # write id -> time acknowledged
    write_errors: int = 0
    killed_at: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail(self, what: str) -> None:
        with self.lock:
            self.failures.append(what)


SearchFn = Callable[[int, int], dict[str, Any]]  # (client number, request number) -> answer
WriteFn = Callable[[str], bool]  # document id -> acknowledged


def _run(cluster: LocalCluster, search: SearchFn, write: WriteFn) -> tuple[Tally, int]:
    """Drive the load, kill and restart one node; return the tally and the victim's index."""
    tally = Tally()
    victim = (cluster.master_index() + 1) % len(cluster.nodes)
    started = time.monotonic()
    deadline = started + DURATION_S

    def searcher(number: int) -> None:
        n = 0
        while time.monotonic() < deadline:
            n += 1
            try:
                answer = search(number, n)
                shards = answer.get("_shards", {})
                text = json.dumps(answer)
                if "hits" not in answer or (
                    shards.get("failed", 0) and "node_disconnected_exception" not in text
                ):
                    tally.fail(f"bad answer: {text[:300]}")
                elif shards.get("failed", 0):
                    with tally.lock:
                        tally.partial += 1
            except Exception as exc:
                tally.fail(f"{type(exc).__name__}: {exc}"[:300])
            with tally.lock:
                tally.searches += 1

    def writer() -> None:
        n = 0
        while time.monotonic() < deadline:
            n += 1
            doc_id = f"w-{n}"
            try:
                ok = write(doc_id)
            except Exception:
                ok = False
            if ok:
                with tally.lock:
                    tally.acked[doc_id] = time.monotonic()
            else:
                tally.write_errors += 1
            time.sleep(0.05)

    threads = [threading.Thread(target=searcher, args=(i,)) for i in range(CLIENTS)]
    threads.append(threading.Thread(target=writer))
    for thread in threads:
        thread.start()
    time.sleep(max(0.0, started + KILL_AT_S - time.monotonic()))
    tally.killed_at = time.monotonic()
    cluster.kill(victim)
    time.sleep(max(0.0, started + RESTART_AT_S - time.monotonic()))
    cluster.restart(victim)  # blocks until the cluster has its three nodes again
    for thread in threads:
        thread.join()
    cluster.wait_ready(status="green")
    return tally, victim


@pytest.fixture(params=sorted(CLUSTERS))
def cluster_index(request: pytest.FixtureRequest) -> Iterator[tuple[str, LocalCluster, str]]:
    """An index with 3 shards and 1 replica holding the sample products, on a 3-node cluster."""
    engine = request.param
    cluster: LocalCluster = request.getfixturevalue(CLUSTERS[engine])
    cluster.wait_ready(status="green")
    index = f"faults-{uuid.uuid4().hex[:8]}"
    base = cluster.urls[0]
    settings = {"number_of_shards": 3, "number_of_replicas": 1}
    mapping = {"properties": {"title": {"type": "text"}, "description": {"type": "text"}}}
    created = httpx.put(
        f"{base}/{index}", json={"settings": settings, "mappings": mapping}, timeout=120
    )
    assert created.status_code == 200, created.text
    lines = []
    for number, product in enumerate(sample_products()):
        lines.append(json.dumps({"index": {"_index": index, "_id": f"p-{number}"}}))
        lines.append(json.dumps({"title": product["title"], "description": product["description"]}))
    bulk = httpx.post(
        f"{base}/_bulk?refresh=true",
        content="\n".join(lines) + "\n",
        headers={"Content-Type": "application/x-ndjson"},
        timeout=120,
    )
    assert bulk.status_code == 200
    assert not bulk.json()["errors"]
    health = httpx.get(
        f"{base}/_cluster/health/{index}?wait_for_status=green&timeout=60s", timeout=90
    )
    assert health.json()["status"] == "green"
    yield engine, cluster, index
    httpx.delete(f"{cluster.urls[0]}/{index}", timeout=60)


def _readable(base: str, index: str, ids: list[str]) -> set[str]:
    httpx.post(f"{base}/{index}/_refresh", timeout=60)
    answer = httpx.post(f"{base}/{index}/_mget", json={"ids": ids}, timeout=60).json()
    return {doc["_id"] for doc in answer["docs"] if doc.get("found")}


def _assert_outcome(
    cluster: LocalCluster, index: str, tally: Tally, victim: int, read_base: str, *, partial: bool
) -> None:
    """``partial``: whether answers missing a shard of the killed node are allowed (and counted)."""
    before_kill = [i for i, at in tally.acked.items() if at < tally.killed_at]
    missing = sorted(set(tally.acked) - _readable(read_base, index, list(tally.acked)))
    node = cluster.nodes[victim]
    served = httpx.post(
        f"{cluster.urls[victim]}/{index}/_search?preference=_local",
        json={"query": {"match_all": {}}, "size": 0},
        timeout=60,
    )
    nodes = httpx.get(f"{cluster.urls[victim]}/_cat/nodes?format=json", timeout=60).json()
    print(
        f"\n{cluster.engine}: {tally.searches} searches, {len(tally.failures)} failed, "
        f"{tally.partial} partial (a shard on the killed node); "
        f"{len(tally.acked)} writes acknowledged ({len(before_kill)} before the kill), "
        f"{tally.write_errors} refused; node {node.node_name} killed and back"
    )
    assert (
        tally.failures[:3],
        tally.partial if not partial else 0,
        tally.searches > CLIENTS * 10,
        len(before_kill) >= 3,  # a loaded machine writes slowly: 9-25 seen
        missing,
        served.status_code,
        len(nodes),
    ) == ([], 0, True, True, [], 200, 3)


def test_proxy_loses_no_search_and_no_write_when_a_node_is_killed(
    cluster_index: tuple[str, LocalCluster, str],
    start_proxy: StartProxy,
    nano_cross_encoder_dir: Path,
) -> None:
    engine, cluster, index = cluster_index
    proxy = start_proxy(
        {"urls": cluster.urls, "max_dead_node_backoff_s": 5.0, "timeout_s": 30.0},
        rerank={"model": str(nano_cross_encoder_dir), "fields": ["title"], "window_size": 10},
    )
    clients = [httpx.Client(base_url=proxy.url, timeout=60) for _ in range(CLIENTS + 1)]

    def search(number: int, n: int) -> dict[str, Any]:
        body: dict[str, Any] = {"query": {"match": {"title": WORDS[(number + n) % len(WORDS)]}}}
        if n % 2:
            body["rerank"] = {}
        response = clients[number].post(f"/{index}/_search", json=body)
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")
        answer: dict[str, Any] = response.json()
        return answer

    def write(doc_id: str) -> bool:
        response = clients[CLIENTS].put(f"/{index}/_doc/{doc_id}", json={"title": f"doc {doc_id}"})
        return response.status_code in (200, 201) and response.json()["_shards"]["successful"] > 0

    try:
        tally, victim = _run(cluster, search, write)
        _assert_outcome(cluster, index, tally, victim, proxy.url, partial=False)
        # the pool takes the restarted node back (its rest is capped at 5 s here)
        deadline = time.monotonic() + 30
        healthy = False
        while time.monotonic() < deadline and not healthy:
            for n in range(6):
                search(0, n)
            states = httpx.get(f"{proxy.url}/_bridge/health").json()["upstream"]["nodes"]
            healthy = all(state["healthy"] for state in states)
            time.sleep(1)
        assert healthy
    finally:
        for client in clients:
            client.close()
    del engine


# A search whose shard request dies with its node can also answer 500
# `search_phase_execution_exception` (seen on OpenSearch 3.5): a search is a read, so the search
# client resends it; the write client resends 502/503/504 only, so no write is sent twice on a 500.
SEARCH_RETRY_STATUSES = (500, 502, 503, 504)
WRITE_RETRY_STATUSES = (502, 503, 504)


def _library_client(engine: str, urls: list[str], retry_on_status: tuple[int, ...]) -> Any:
    if engine == "elasticsearch":
        from elasticsearch import Elasticsearch

        return Elasticsearch(
            urls, max_retries=5, retry_on_status=retry_on_status, request_timeout=30
        )
    from opensearchpy import OpenSearch

    return OpenSearch(hosts=urls, max_retries=5, retry_on_status=retry_on_status, timeout=30)


def test_wrapper_over_a_multi_node_client_loses_no_search_and_no_write(
    cluster_index: tuple[str, LocalCluster, str], nano_cross_encoder_dir: Path
) -> None:
    engine, cluster, index = cluster_index
    client = _library_client(engine, cluster.urls, SEARCH_RETRY_STATUSES)
    write_client = _library_client(engine, cluster.urls, WRITE_RETRY_STATUSES)
    wrapper = RerankingSearch(client)
    rerank = {"model": str(nano_cross_encoder_dir), "fields": ["title"], "window_size": 10}

    def search(number: int, n: int) -> dict[str, Any]:
        body = {"query": {"match": {"title": WORDS[(number + n) % len(WORDS)]}}}
        answer = wrapper.search(index=index, body=body, rerank=rerank if n % 2 else None)
        return dict(getattr(answer, "body", answer))

    def write(doc_id: str) -> bool:
        doc = {"title": f"doc {doc_id}"}
        if engine == "elasticsearch":
            answer = write_client.index(index=index, id=doc_id, document=doc)
        else:
            answer = write_client.index(index=index, id=doc_id, body=doc)
        return int(answer["_shards"]["successful"]) > 0

    try:
        tally, victim = _run(cluster, search, write)
        # the client libraries do not resend a partial answer: counted and reported, not failed
        _assert_outcome(cluster, index, tally, victim, cluster.urls[victim], partial=True)
    finally:
        wrapper.close()
        client.close()
        write_client.close()
