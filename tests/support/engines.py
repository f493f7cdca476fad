"""Fixtures for real Elasticsearch/OpenSearch nodes.

Backend per engine, first that applies:
1. a running cluster from `RERANK_BRIDGE_TEST_ES_URL` / `RERANK_BRIDGE_TEST_OS_URL`;
2. testcontainers, when a Docker engine answers (ES 9 / OpenSearch 3 images, security off);
3. local nodes from the Maven Central integ-test zips (bridge.devtools.localnode), started once
   per session, both engines in parallel and only those the selected tests need, stopped at the
   end (finalizer plus atexit, so no node outlives the run even when it fails).

A node that cannot start fails the tests that need it with the node's log tail.
"""

from __future__ import annotations

import atexit
import itertools
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bridge.devtools.indexing import (
    bulk_index,
    create_index,
    document_text,
    read_homedepot_products,
)
from bridge.devtools.localnode import DEFAULT_VERSIONS, LocalNode
from bridge.errors import BridgeError

logger = logging.getLogger(__name__)

URL_ENV = {
    "elasticsearch": "RERANK_BRIDGE_TEST_ES_URL",
    "opensearch": "RERANK_BRIDGE_TEST_OS_URL",
}
DOCKER_IMAGES = {
    "elasticsearch": "docker.elastic.co/elasticsearch/elasticsearch:"
    + DEFAULT_VERSIONS["elasticsearch"],
    "opensearch": f"opensearchproject/opensearch:{DEFAULT_VERSIONS['opensearch']}",
}
# Fixtures whose use means a test needs that engine (pytest lists the closure in item.fixturenames).
ENGINE_FIXTURES = {
    "elasticsearch": {
        "es_url",
        "es_client",
        "async_es_client",
        "es_products_index",
        "es_vector_products_index",
    },
    "opensearch": {
        "os_url",
        "os_client",
        "async_os_client",
        "os_knn_available",
        "os_products_index",
        "os_vector_products_index",
    },
}
# The factory picks its engine at call time, so a test using it may need either.
ANY_ENGINE_FIXTURES = {"products_index_factory"}
SETTINGS_ENV = "RERANK_BRIDGE_TEST_NODE_SETTINGS"
PRODUCTS_LIMIT = 2000
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class EngineBackends:
    """Which engines the session needs and where each one runs."""

    needed: set[str]
    urls: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)
    _stoppers: list[Callable[[], None]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, engines: set[str] | None = None) -> None:
        """Resolve each engine's URL, starting the missing nodes in parallel."""
        pending = []
        for engine in sorted(self.needed if engines is None else engines):
            if engine in self.urls or engine in self.errors:
                continue
            url = os.environ.get(URL_ENV[engine])
            if url:
                self.urls[engine] = url.rstrip("/")
                self.kinds[engine] = URL_ENV[engine]
            else:
                pending.append(engine)
        if not pending:
            return
        docker_reason = docker_unavailable_reason()
        starter = self._start_container if docker_reason is None else self._start_local
        if docker_reason is not None:
            logger.info(
                "testcontainers skipped: %s; using Maven Central integ-test zips", docker_reason
            )
        with ThreadPoolExecutor(max_workers=len(pending)) as pool:
            list(pool.map(starter, pending))

    def stop(self) -> None:
        with self._lock:
            stoppers, self._stoppers = self._stoppers, []
        for stop in reversed(stoppers):
            try:
                stop()
            except Exception:  # keep stopping the others
                logger.exception("stopping a test node failed")

    def url(self, engine: str) -> str:
        if engine not in self.urls and engine not in self.errors:
            self.start({engine})  # a test that picks its engine at run time
        if engine in self.errors:
            pytest.fail(self.errors[engine], pytrace=False)
        if engine not in self.urls:
            pytest.fail(f"{engine} was not started for this session", pytrace=False)
        return self.urls[engine]

    def _register(self, stop: Callable[[], None]) -> None:
        with self._lock:
            self._stoppers.append(stop)

    def _start_local(self, engine: str) -> None:
        # Extra node settings (JSON object), e.g. to prove a broken node fails the run.
        extra = json.loads(os.environ.get(SETTINGS_ENV) or "{}")
        node = LocalNode(engine, settings=extra)
        self._register(node.stop)
        started = time.monotonic()
        try:
            self.urls[engine] = node.start()
        except BridgeError as exc:
            self.errors[engine] = f"local {engine} node failed to start:\n{exc}"
            return
        except Exception as exc:  # e.g. a full disk while unpacking: still fail, with the cause
            self.errors[engine] = f"local {engine} node failed to start: {exc!r}"
            return
        self.kinds[engine] = (
            f"local node {engine} {node.version} ({time.monotonic() - started:.0f}s)"
        )

    def _start_container(self, engine: str) -> None:
        try:
            if engine == "elasticsearch":
                from testcontainers.community.elasticsearch import ElasticSearchContainer

                container: Any = ElasticSearchContainer(DOCKER_IMAGES[engine], mem_limit="1g")
                container.with_env("xpack.security.enabled", "false")
                container.with_env("ES_JAVA_OPTS", "-Xms512m -Xmx512m")
            else:
                from testcontainers.community.opensearch import OpenSearchContainer

                container = OpenSearchContainer(DOCKER_IMAGES[engine], security_enabled=False)
                container.with_env("OPENSEARCH_JAVA_OPTS", "-Xms512m -Xmx512m")
            container.start()
        except Exception as exc:  # a broken Docker set-up: fall back to a local node
            logger.warning("%s container failed to start (%s); starting a local node", engine, exc)
            self._start_local(engine)
            return
        self._register(container.stop)
        host = container.get_container_host_ip()
        port = container.get_exposed_port(9200)
        self.urls[engine] = f"http://{host}:{port}"
        self.kinds[engine] = f"testcontainers {DOCKER_IMAGES[engine]}"


def docker_unavailable_reason() -> str | None:
    """None when a Docker engine answers; else why testcontainers cannot be used here."""
    if os.environ.get("RERANK_BRIDGE_TEST_NO_DOCKER"):
        return "RERANK_BRIDGE_TEST_NO_DOCKER is set"
    host = os.environ.get("DOCKER_HOST")
    if not host and not Path("/var/run/docker.sock").exists():
        return "no Docker engine (DOCKER_HOST unset and /var/run/docker.sock absent)"
    try:
        import docker

        docker.from_env(timeout=5).ping()
    except Exception as exc:  # any failure means: no usable Docker
        return f"Docker engine does not answer: {exc}"
    return None


def needed_engines(items: list[pytest.Item]) -> set[str]:
    needed: set[str] = set()
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        # Tests parametrized over `engine` fetch their client at run time (getfixturevalue).
        callspec = getattr(item, "callspec", None)
        engine_param = callspec.params.get("engine") if callspec is not None else None
        if engine_param in ENGINE_FIXTURES:
            needed.add(engine_param)
        for engine, fixtures in ENGINE_FIXTURES.items():
            if names & (fixtures | ANY_ENGINE_FIXTURES):
                needed.add(engine)
    return needed


@pytest.fixture(scope="session")
def engine_backends(request: pytest.FixtureRequest) -> Iterator[EngineBackends]:
    backends = EngineBackends(needed=needed_engines(list(request.session.items)))
    atexit.register(backends.stop)  # belt and braces: also on an interpreter exit mid-session
    try:
        backends.start()
        yield backends
    finally:
        backends.stop()


@pytest.fixture(scope="session")
def es_url(engine_backends: EngineBackends) -> str:
    return engine_backends.url("elasticsearch")


@pytest.fixture(scope="session")
def os_url(engine_backends: EngineBackends) -> str:
    return engine_backends.url("opensearch")


@pytest.fixture(scope="session")
def es_client(es_url: str) -> Iterator[Any]:
    from elasticsearch import Elasticsearch

    client = Elasticsearch(es_url, request_timeout=120)
    yield client
    client.close()


@pytest.fixture(scope="session")
def os_client(os_url: str) -> Iterator[Any]:
    from opensearchpy import OpenSearch

    client = OpenSearch(hosts=[os_url], timeout=120)
    yield client
    client.close()


@pytest.fixture
async def async_es_client(es_url: str) -> AsyncIterator[Any]:
    from elasticsearch import AsyncElasticsearch

    client = AsyncElasticsearch(es_url, request_timeout=120)
    yield client
    await client.close()


@pytest.fixture
async def async_os_client(os_url: str) -> AsyncIterator[Any]:
    from opensearchpy import AsyncOpenSearch

    client = AsyncOpenSearch(hosts=[os_url], timeout=120)
    yield client
    await client.close()


@pytest.fixture(scope="session")
def os_knn_available(os_client: Any) -> bool:
    """True when the OpenSearch node has the k-NN plugin (knn_vector fields, `knn` queries)."""
    plugins = os_client.cat.plugins(format="json")
    return any(entry.get("component") == "opensearch-knn" for entry in plugins)


# -- products indices ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def homedepot_products(homedepot_dir: Path) -> list[dict[str, Any]]:
    """The first PRODUCTS_LIMIT Home Depot products (uid + title), in file order."""
    return read_homedepot_products(homedepot_dir, limit=PRODUCTS_LIMIT)


@pytest.fixture(scope="session")
def homedepot_product_vectors(
    request: pytest.FixtureRequest, homedepot_products: list[dict[str, Any]]
) -> np.ndarray:
    """Bi-encoder vectors of `homedepot_products`, cached on disk next to the built models.

    Embedding is the slow part of loading an index with vectors; the cache key is the model file's
    size and mtime plus the product uids, so a rebuilt model or another subset recomputes.
    """
    from bridge.scoring import load_scorer

    model_dir: Path = request.getfixturevalue("bi_encoder_dir")
    onnx_files = sorted(model_dir.rglob("*.onnx"))
    stamp = [
        (str(p.relative_to(model_dir)), p.stat().st_size, p.stat().st_mtime_ns) for p in onnx_files
    ]
    key = uuid.uuid5(
        uuid.NAMESPACE_URL,
        json.dumps([stamp, [doc["product_uid"] for doc in homedepot_products]]),
    ).hex
    cache = REPO_ROOT / ".cache" / "test-vectors" / f"homedepot-{key}.npy"
    if cache.is_file():
        return np.load(cache)
    scorer = load_scorer(model_dir)
    vectors = np.asarray(
        scorer.embed([document_text(doc) for doc in homedepot_products]), dtype=np.float32
    )
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(f".{os.getpid()}.tmp.npy")
    np.save(tmp, vectors)
    os.replace(tmp, cache)
    return vectors


_index_counter = itertools.count()


class ProductsIndexFactory:
    """Creates uniquely named products indices from mappings/; `cleanup()` deletes them."""

    def __init__(self, request: pytest.FixtureRequest, products: list[dict[str, Any]]) -> None:
        self._request = request
        self._products = products
        self._created: list[tuple[Any, str]] = []

    def __call__(self, engine: str, *, limit: int | None = None, vectors: bool = False) -> str:
        request = self._request
        client = request.getfixturevalue("es_client" if engine == "elasticsearch" else "os_client")
        if vectors and engine == "opensearch" and not request.getfixturevalue("os_knn_available"):
            pytest.skip("OpenSearch node has no k-NN plugin")
        docs = self._products[:limit] if limit is not None else self._products
        if vectors:
            matrix = request.getfixturevalue("homedepot_product_vectors")
            docs = [{**doc, "embedding": matrix[i].tolist()} for i, doc in enumerate(docs)]
        name = f"test-products-{os.getpid()}-{next(_index_counter)}-{uuid.uuid4().hex[:6]}"
        create_index(client, name, engine, vectors=vectors)
        self._created.append((client, name))
        bulk_index(client, name, docs, progress=False)
        return name

    def cleanup(self) -> None:
        for client, name in self._created:
            try:
                client.indices.delete(index=name)
            except Exception:  # a dead node must not hide the test's own result
                logger.warning("could not delete test index %s", name)
        self._created.clear()


@pytest.fixture
def products_index_factory(
    request: pytest.FixtureRequest, homedepot_products: list[dict[str, Any]]
) -> Iterator[ProductsIndexFactory]:
    """`make(engine, *, limit=None, vectors=False) -> index name`, deleted after the test.

    `engine` is "elasticsearch" or "opensearch"; `limit` takes the first products of the session
    subset; `vectors=True` adds bi-encoder embeddings in `embedding` (OpenSearch: with k-NN only).
    """
    factory = ProductsIndexFactory(request, homedepot_products)
    yield factory
    factory.cleanup()


@pytest.fixture(scope="session")
def _session_products_indices(
    request: pytest.FixtureRequest, homedepot_products: list[dict[str, Any]]
) -> Iterator[ProductsIndexFactory]:
    factory = ProductsIndexFactory(request, homedepot_products)
    yield factory
    factory.cleanup()


@pytest.fixture(scope="session")
def es_products_index(_session_products_indices: ProductsIndexFactory) -> str:
    """A read-only products index (BM25 fields only) shared by the session's tests."""
    return _session_products_indices("elasticsearch")


@pytest.fixture(scope="session")
def os_products_index(_session_products_indices: ProductsIndexFactory) -> str:
    """A read-only products index (BM25 fields only) shared by the session's tests."""
    return _session_products_indices("opensearch")


@pytest.fixture(scope="session")
def es_vector_products_index(_session_products_indices: ProductsIndexFactory) -> str:
    """A read-only products index with bi-encoder vectors in `embedding`."""
    return _session_products_indices("elasticsearch", vectors=True)


@pytest.fixture(scope="session")
def os_vector_products_index(_session_products_indices: ProductsIndexFactory) -> str:
    """A read-only products index with vectors; skips without the OpenSearch k-NN plugin."""
    return _session_products_indices("opensearch", vectors=True)


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Say where each engine comes from, and why testcontainers is not used when it is not."""
    lines = [
        f"{engine}: {os.environ[variable]} (from {variable})"
        for engine, variable in URL_ENV.items()
        if os.environ.get(variable)
    ]
    if len(lines) < len(URL_ENV):
        reason = docker_unavailable_reason()
        lines.append(
            "other engines: testcontainers (Docker answers)"
            if reason is None
            else f"other engines: local Maven nodes when needed (testcontainers skipped: {reason})"
        )
    return lines
