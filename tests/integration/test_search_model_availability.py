"""The library wrapper when its model cannot load: fail fast with ``preload=True``, else fail open
quietly — one warning per model and process, with the fix, and no load attempt per search.

A real Elasticsearch node; the fault is a model that is not there (an empty cache with offline
mode on, or a folder that does not exist).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge import ModelNotFoundError, OfflineError, RerankingSearch
from bridge.config import DEFAULT_MODEL
from bridge.scoring import SharedScorers

pytestmark = [pytest.mark.integration]

QUERY = {"match": {"title": "drill"}}


@pytest.fixture(scope="module")
def index(es_client: Any) -> Iterator[str]:
    name = f"search-availability-{uuid.uuid4().hex[:8]}"
    es_client.indices.create(index=name)
    for i, title in enumerate(["cordless drill", "drill bit set", "hammer drill", "garden hose"]):
        es_client.index(index=name, id=str(i), document={"title": title})
    es_client.indices.refresh(index=name)
    yield name
    es_client.indices.delete(index=name)


@pytest.fixture
def scorers() -> Iterator[SharedScorers]:
    """A registry of its own, so this test's failures do not linger in the process-wide one."""
    made = SharedScorers()
    yield made
    made.breaker.stop()


def test_preload_fails_fast_offline_without_the_default_model(
    es_client: Any, scorers: SharedScorers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RERANK_BRIDGE_CACHE", str(tmp_path))
    monkeypatch.setenv("RERANK_BRIDGE_OFFLINE", "1")
    with pytest.raises(OfflineError, match="RERANK_BRIDGE_MODEL_URL"):
        RerankingSearch(es_client, scorers=scorers, preload=True)


def test_preload_fails_fast_on_a_missing_model_folder(
    es_client: Any, scorers: SharedScorers, tmp_path: Path
) -> None:
    defaults = {"model": str(tmp_path / "no-such-model")}
    with pytest.raises(ModelNotFoundError):
        RerankingSearch(es_client, defaults=defaults, scorers=scorers, preload=True)


def test_preload_of_a_model_folder_loads_it(
    es_client: Any, scorers: SharedScorers, nano_cross_encoder_dir: Path
) -> None:
    defaults = {"model": str(nano_cross_encoder_dir)}
    RerankingSearch(es_client, defaults=defaults, scorers=scorers, preload=True)
    assert scorers.breaker.attempts == {str(nano_cross_encoder_dir): 1}


def test_unloadable_model_fails_open_with_one_warning_and_one_attempt(
    es_client: Any,
    index: str,
    scorers: SharedScorers,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("RERANK_BRIDGE_CACHE", str(tmp_path))
    monkeypatch.setenv("RERANK_BRIDGE_OFFLINE", "1")
    engine = [hit["_id"] for hit in es_client.search(index=index, query=QUERY)["hits"]["hits"]]
    with caplog.at_level(logging.WARNING, logger="bridge"):
        search = RerankingSearch(es_client, scorers=scorers)
        orders = [
            [h["_id"] for h in search.search(index=index, query=QUERY, rerank=True)["hits"]["hits"]]
            for _ in range(5)
        ]
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert (orders, len(warnings), scorers.breaker.attempts) == (
        [engine] * 5,
        1,
        {DEFAULT_MODEL: 1},
    )
