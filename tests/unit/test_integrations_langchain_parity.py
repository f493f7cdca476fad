"""BridgeRerank against the real FlashrankRerank (langchain-community) on the same model files.

FlashRank 0.2.10 runs the test build of its nano model from ``flashrank_cache_dir`` (no network);
the bridge runs the same weights from the converter's directory. Swapping the class must give the
same documents, in the same order, with the same metadata keys and (numerically) the same scores.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import flashrank
import pytest
from langchain_core.documents import Document

with warnings.catch_warnings():
    # langchain-community announces its sunset on import; FlashrankRerank is still the reference.
    warnings.simplefilter("ignore", DeprecationWarning)
    from langchain_community.document_compressors.flashrank_rerank import FlashrankRerank

from bridge.integrations.langchain import BridgeRerank

FLASHRANK_NANO = "ms-marco-TinyBERT-L-2-v2"
QUERY = "what powers does congress have over money"

TEXTS = [
    "To borrow Money on the credit of the United States.",
    "The Senate shall be composed of two Senators from each State.",
    "To coin Money, regulate the Value thereof, and of foreign Coin.",
    "The President shall be Commander in Chief of the Army and Navy.",
    "All Bills for raising Revenue shall originate in the House of Representatives.",
    "Excessive bail shall not be required, nor excessive fines imposed.",
    "To establish Post Offices and post Roads.",
]


def _documents() -> list[Document]:
    return [
        Document(page_content=t, metadata={"source": "constitution", "clause": i})
        for i, t in enumerate(TEXTS)
    ]


@pytest.fixture(scope="module")
def flashrank_ranker(flashrank_cache_dir: Path) -> Any:
    return flashrank.Ranker(model_name=FLASHRANK_NANO, cache_dir=str(flashrank_cache_dir))


def _pair(
    flashrank_ranker: Any, nano_cross_encoder_dir: Path, **fields: Any
) -> tuple[list[Document], list[Document]]:
    theirs = FlashrankRerank(client=flashrank_ranker, model=FLASHRANK_NANO, **fields)
    ours = BridgeRerank(model=str(nano_cross_encoder_dir), **fields)
    return (
        list(theirs.compress_documents(_documents(), QUERY)),
        list(ours.compress_documents(_documents(), QUERY)),
    )


def _shape(docs: list[Document]) -> list[tuple[str, list[str], Any]]:
    """What must match exactly: content, metadata keys in order, and the position id."""
    return [(d.page_content, list(d.metadata), d.metadata.get("id")) for d in docs]


def _flashrank_scores(flashrank_ranker: Any) -> list[float]:
    request = flashrank.RerankRequest(
        query=QUERY, passages=[{"id": i, "text": t} for i, t in enumerate(TEXTS)]
    )
    return sorted((float(p["score"]) for p in flashrank_ranker.rerank(request)), reverse=True)


@pytest.mark.parametrize(
    "fields",
    [{}, {"top_n": 5}, {"top_n": 1}, {"top_n": 10}, {"prefix_metadata": "flashrank_"}],
    ids=["defaults", "top_n=5", "top_n=1", "top_n-above-count", "prefix"],
)
def test_same_documents_order_and_metadata_keys(
    flashrank_ranker: Any, nano_cross_encoder_dir: Path, fields: dict[str, Any]
) -> None:
    theirs, ours = _pair(flashrank_ranker, nano_cross_encoder_dir, **fields)
    assert _shape(ours) == _shape(theirs)


def test_same_relevance_scores(flashrank_ranker: Any, nano_cross_encoder_dir: Path) -> None:
    theirs, ours = _pair(flashrank_ranker, nano_cross_encoder_dir, top_n=len(TEXTS))
    assert [d.metadata["relevance_score"] for d in ours] == pytest.approx(
        [float(d.metadata["relevance_score"]) for d in theirs], abs=2e-3
    )


def test_same_documents_pass_a_score_threshold(
    flashrank_ranker: Any, nano_cross_encoder_dir: Path
) -> None:
    scores = _flashrank_scores(flashrank_ranker)
    # Cut in the widest gap between neighbouring scores (at least one passage on each side), so
    # the int8 noise allowed by test_same_relevance_scores (2e-3) cannot move a passage across it.
    gap, cut = max((scores[i] - scores[i + 1], i) for i in range(len(scores) - 1))
    assert gap > 2 * 2e-3, f"the model's scores are too close to test a threshold: {scores}"
    threshold = (scores[cut] + scores[cut + 1]) / 2
    theirs, ours = _pair(
        flashrank_ranker, nano_cross_encoder_dir, top_n=len(TEXTS), score_threshold=threshold
    )
    assert _shape(ours) == _shape(theirs)


def test_same_fields_and_defaults_as_flashrank_rerank() -> None:
    theirs = FlashrankRerank.model_fields
    ours = BridgeRerank.model_fields
    shared = ("top_n", "score_threshold", "prefix_metadata", "model", "client")
    assert {name: ours[name].default for name in shared} == {
        name: theirs[name].default for name in shared
    }
