"""BridgeRerank invariants over generated inputs (hypothesis), on the real nano model."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.documents import Document

from bridge.integrations.langchain import BridgeRerank

WORDS = ["senate", "war", "money", "court", "president", "vote", "tax", "army", "jury", "bail"]

texts = st.lists(st.sampled_from(WORDS), min_size=1, max_size=8).map(" ".join)
documents = st.lists(
    st.builds(
        lambda text, n: Document(page_content=text, metadata={"n": n}),
        texts,
        st.integers(min_value=0, max_value=1000),
    ),
    max_size=12,
)
options = st.fixed_dictionaries(
    {
        "top_n": st.integers(min_value=0, max_value=15),
        "score_threshold": st.floats(min_value=0.0, max_value=1.0),
        "window": st.one_of(st.none(), st.integers(min_value=1, max_value=15)),
    }
)
SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def model(nano_cross_encoder_dir: Path) -> str:
    return str(nano_cross_encoder_dir)


@SETTINGS
@given(docs=documents, query=texts, opts=options)
def test_output_is_the_scored_best_at_or_above_threshold(
    model: str, docs: list[Document], query: str, opts: dict[str, object]
) -> None:
    compressor = BridgeRerank(model=model, **opts)  # type: ignore[arg-type]
    window = docs if compressor.window is None else docs[: compressor.window]
    every = BridgeRerank(model=model, top_n=len(window)).compress_documents(window, query)
    best = [d.metadata["relevance_score"] for d in every][: compressor.top_n]
    expected = [s for s in best if s >= compressor.score_threshold]
    out = compressor.compress_documents(docs, query)
    assert [d.metadata["relevance_score"] for d in out] == pytest.approx(expected, abs=1e-6)


@SETTINGS
@given(docs=documents, query=texts, opts=options)
def test_each_output_is_its_input_document_plus_scores(
    model: str, docs: list[Document], query: str, opts: dict[str, object]
) -> None:
    out = BridgeRerank(model=model, **opts).compress_documents(docs, query)  # type: ignore[arg-type]
    for doc in out:
        original = docs[doc.metadata["id"]]
        assert doc.page_content == original.page_content
        assert doc.metadata == {
            "id": doc.metadata["id"],
            "relevance_score": doc.metadata["relevance_score"],
            **original.metadata,
        }


@SETTINGS
@given(docs=documents, query=texts)
def test_nothing_is_lost_without_cut_or_threshold(
    model: str, docs: list[Document], query: str
) -> None:
    out = BridgeRerank(model=model, top_n=len(docs), score_threshold=0.0).compress_documents(
        docs, query
    )
    assert sorted(d.metadata["id"] for d in out) == list(range(len(docs)))
