"""BridgeEmbeddings: the offline bi-encoder behind LangChain's Embeddings interface."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from langchain_core.embeddings import Embeddings

from bridge.integrations.langchain import BridgeEmbeddings

TEXTS = [
    "The President shall be Commander in Chief of the Army and Navy.",
    "A cordless drill with two batteries and a charger.",
    "The Senate shall have the sole Power to try all Impeachments.",
]


@pytest.fixture
def embeddings(bi_encoder_dir: Path) -> BridgeEmbeddings:
    return BridgeEmbeddings(model=str(bi_encoder_dir))


def test_is_a_langchain_embeddings(embeddings: BridgeEmbeddings) -> None:
    assert isinstance(embeddings, Embeddings)


def test_one_vector_per_text(embeddings: BridgeEmbeddings) -> None:
    vectors = embeddings.embed_documents(TEXTS)
    assert [len(v) for v in vectors] == [384, 384, 384]


def test_vectors_are_unit_length(embeddings: BridgeEmbeddings) -> None:
    norms = np.linalg.norm(np.array(embeddings.embed_documents(TEXTS)), axis=1)
    assert norms == pytest.approx([1.0, 1.0, 1.0], abs=1e-4)


def test_vectors_are_python_floats(embeddings: BridgeEmbeddings) -> None:
    assert type(embeddings.embed_query(TEXTS[0])[0]) is float


def test_query_vector_equals_document_vector(embeddings: BridgeEmbeddings) -> None:
    assert embeddings.embed_query(TEXTS[1]) == pytest.approx(
        embeddings.embed_documents(TEXTS)[1], abs=1e-5
    )


def test_related_texts_are_closer_than_unrelated(embeddings: BridgeEmbeddings) -> None:
    query = np.array(embeddings.embed_query("who commands the army"))
    docs = np.array(embeddings.embed_documents(TEXTS))
    similarities = docs @ query
    assert similarities[0] > similarities[1]


def test_empty_list_embeds_to_empty(embeddings: BridgeEmbeddings) -> None:
    assert embeddings.embed_documents([]) == []


async def test_async_documents_equal_sync(embeddings: BridgeEmbeddings) -> None:
    expected = np.array(embeddings.embed_documents(TEXTS))
    assert np.allclose(np.array(await embeddings.aembed_documents(TEXTS)), expected, atol=1e-5)


async def test_async_query_equals_sync(embeddings: BridgeEmbeddings) -> None:
    expected = embeddings.embed_query(TEXTS[2])
    assert await embeddings.aembed_query(TEXTS[2]) == pytest.approx(expected, abs=1e-5)


def test_a_cross_encoder_is_refused(nano_cross_encoder_dir: Path) -> None:
    # pydantic wraps the ConfigError in a ValidationError (both are ValueErrors).
    with pytest.raises(ValueError, match=r"\[model\] .* embeddings need a bi-encoder"):
        BridgeEmbeddings(model=str(nano_cross_encoder_dir))
