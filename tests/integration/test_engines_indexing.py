"""bridge.devtools.indexing against real engines: engine rejections surface as UpstreamError."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from bridge.devtools.indexing import bulk_index, create_index
from bridge.errors import UpstreamError

pytestmark = [pytest.mark.integration]


@pytest.fixture
def es_vector_index(es_client: Any) -> Iterator[str]:
    name = f"test-indexing-{uuid.uuid4().hex[:8]}"
    create_index(es_client, name, "elasticsearch")
    yield name
    es_client.indices.delete(index=name)


def test_bulk_index_raises_when_the_engine_rejects_a_document(
    es_client: Any, es_vector_index: str
) -> None:
    docs = [{"product_uid": "1", "title": "short vector", "embedding": [0.1, 0.2, 0.3]}]
    with pytest.raises(UpstreamError, match="rejected 1 of 1"):
        bulk_index(es_client, es_vector_index, docs, progress=False)


def test_bulk_index_embeds_with_the_given_function(es_client: Any, es_vector_index: str) -> None:
    def embed(texts: list[str]) -> list[list[float]]:
        return [[1.0] + [0.0] * 383 for _ in texts]

    bulk_index(es_client, es_vector_index, [{"product_uid": "7", "title": "x"}], embed=embed)
    # ES 9 leaves vectors out of _source by default: find the document by its vector instead.
    knn = {"field": "embedding", "query_vector": embed(["q"])[0], "k": 1, "num_candidates": 10}
    hits = es_client.search(index=es_vector_index, knn=knn)["hits"]["hits"]
    assert [hit["_id"] for hit in hits] == ["7"]
