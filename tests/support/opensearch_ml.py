"""An OpenSearch 3.6.0 node with ML Commons and neural-search, for the tests of the engine's own
`rerank` processor calling the bridge.

`RERANK_BRIDGE_TEST_OS_ML_URL` points at a running one; otherwise the first test that needs it
starts one local node (Maven Central zips, ~570 MB downloaded once into the engines cache, about a
minute to start at 1 GB heap) and the session stops it at the end. Only the tests that use
`os_ml_url` pay for it.
"""

from __future__ import annotations

import atexit
import logging
import os
import time
from collections.abc import Iterator

import pytest

from bridge.devtools.localnode import LocalNode
from bridge.errors import BridgeError

logger = logging.getLogger(__name__)

OS_ML_URL_ENV = "RERANK_BRIDGE_TEST_OS_ML_URL"
OS_ML_VERSION = "3.6.0"
OS_ML_PLUGINS = ("ml", "neural")


@pytest.fixture(scope="session")
def os_ml_url() -> Iterator[str]:
    url = os.environ.get(OS_ML_URL_ENV)
    if url:
        yield url.rstrip("/")
        return
    node = LocalNode(
        "opensearch",
        OS_ML_VERSION,
        plugins=OS_ML_PLUGINS,
        heap_mb=1024,
        startup_timeout=600,
    )
    atexit.register(node.stop)
    started = time.monotonic()
    try:
        url = node.start()
    except BridgeError as exc:
        node.stop()
        pytest.fail(f"OpenSearch {OS_ML_VERSION} with {OS_ML_PLUGINS} did not start:\n{exc}")
    logger.warning(
        "OpenSearch %s + %s started in %.0f s",
        OS_ML_VERSION,
        OS_ML_PLUGINS,
        time.monotonic() - started,
    )
    try:
        yield url
    finally:
        node.stop()
