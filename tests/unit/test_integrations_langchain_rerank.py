"""BridgeRerank: FlashrankRerank's fields and behaviour on real langchain-core Documents."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from langchain_core.documents import Document

from bridge.integrations.langchain import BridgeRerank

QUERY = "how long is the term of a senator"

TEXTS = [
    "The Senate shall be composed of two Senators from each State, for six Years.",
    "Congress shall have Power to coin Money and regulate the Value thereof.",
    "The President shall hold his Office during the Term of four Years.",
    "Excessive bail shall not be required, nor cruel and unusual punishments inflicted.",
    "Each Senator shall have one Vote; Senators are chosen for a term of six years.",
    "To establish Post Offices and post Roads.",
]


def _documents() -> list[Document]:
    return [
        Document(page_content=text, metadata={"source": "constitution", "line": i})
        for i, text in enumerate(TEXTS)
    ]


@pytest.fixture
def compressor(nano_cross_encoder_dir: Path) -> BridgeRerank:
    return BridgeRerank(model=str(nano_cross_encoder_dir))


def _direct_scores(compressor: BridgeRerank, texts: list[str], query: str = QUERY) -> list[float]:
    """The Ranker's own scores, by position, for comparison with what the compressor returns."""
    from bridge import RerankRequest

    ranked = compressor.client.rerank(
        RerankRequest(query=query, passages=[{"id": i, "text": t} for i, t in enumerate(texts)])
    )
    by_id = {p["id"]: float(p["score"]) for p in ranked}
    return [by_id[i] for i in range(len(texts))]


def test_returns_top_n_documents(compressor: BridgeRerank) -> None:
    assert len(compressor.compress_documents(_documents(), QUERY)) == 3


def test_top_n_is_configurable(nano_cross_encoder_dir: Path) -> None:
    compressor = BridgeRerank(model=str(nano_cross_encoder_dir), top_n=5)
    assert len(compressor.compress_documents(_documents(), QUERY)) == 5


def test_documents_come_back_best_first(compressor: BridgeRerank) -> None:
    docs = compressor.compress_documents(_documents(), QUERY)
    scores = [d.metadata["relevance_score"] for d in docs]
    assert scores == sorted(scores, reverse=True)


def test_relevance_score_is_the_ranker_score(compressor: BridgeRerank) -> None:
    expected = _direct_scores(compressor, TEXTS)
    docs = compressor.compress_documents(_documents(), QUERY)
    assert [d.metadata["relevance_score"] for d in docs] == pytest.approx(
        sorted(expected, reverse=True)[:3], abs=1e-6
    )


def test_relevance_score_is_a_python_float(compressor: BridgeRerank) -> None:
    docs = compressor.compress_documents(_documents(), QUERY)
    assert {type(d.metadata["relevance_score"]) for d in docs} == {float}


def test_metadata_id_is_the_input_position(compressor: BridgeRerank) -> None:
    docs = compressor.compress_documents(_documents(), QUERY)
    assert [TEXTS[d.metadata["id"]] for d in docs] == [d.page_content for d in docs]


def test_original_metadata_is_kept(compressor: BridgeRerank) -> None:
    docs = compressor.compress_documents(_documents(), QUERY)
    assert all(d.metadata["source"] == "constitution" for d in docs)


def test_original_metadata_wins_on_a_key_clash_as_in_flashrank(compressor: BridgeRerank) -> None:
    documents = [Document(page_content=t, metadata={"id": f"doc-{i}"}) for i, t in enumerate(TEXTS)]
    docs = compressor.compress_documents(documents, QUERY)
    assert all(str(d.metadata["id"]).startswith("doc-") for d in docs)


def test_prefix_metadata_prefixes_both_keys(nano_cross_encoder_dir: Path) -> None:
    compressor = BridgeRerank(model=str(nano_cross_encoder_dir), prefix_metadata="rb_")
    docs = compressor.compress_documents(_documents(), QUERY)
    assert [k for k in docs[0].metadata if k.endswith(("id", "relevance_score"))] == [
        "rb_id",
        "rb_relevance_score",
    ]


def test_score_threshold_drops_documents_below_it(nano_cross_encoder_dir: Path) -> None:
    plain = BridgeRerank(model=str(nano_cross_encoder_dir), top_n=len(TEXTS))
    scores = sorted(_direct_scores(plain, TEXTS), reverse=True)
    threshold = (scores[1] + scores[2]) / 2  # exactly two documents score above it
    compressor = BridgeRerank(
        model=str(nano_cross_encoder_dir), top_n=len(TEXTS), score_threshold=threshold
    )
    assert len(compressor.compress_documents(_documents(), QUERY)) == 2


def test_threshold_applies_after_the_top_n_cut(nano_cross_encoder_dir: Path) -> None:
    compressor = BridgeRerank(model=str(nano_cross_encoder_dir), top_n=2, score_threshold=-1.0)
    assert len(compressor.compress_documents(_documents(), QUERY)) == 2


def test_empty_input_returns_empty(compressor: BridgeRerank) -> None:
    assert list(compressor.compress_documents([], QUERY)) == []


def test_document_ids_survive(compressor: BridgeRerank) -> None:
    documents = [Document(page_content=t, id=f"lc-{i}") for i, t in enumerate(TEXTS)]
    docs = compressor.compress_documents(documents, QUERY)
    assert [d.id for d in docs] == [f"lc-{d.metadata['id']}" for d in docs]


def test_window_scores_only_the_first_documents(nano_cross_encoder_dir: Path) -> None:
    compressor = BridgeRerank(model=str(nano_cross_encoder_dir), top_n=len(TEXTS), window=2)
    docs = compressor.compress_documents(_documents(), QUERY)
    assert sorted(d.metadata["id"] for d in docs) == [0, 1]


def test_window_below_one_is_refused(nano_cross_encoder_dir: Path) -> None:
    # pydantic wraps the ConfigError in a ValidationError (both are ValueErrors).
    with pytest.raises(ValueError, match=r"\[window\] must be at least 1"):
        BridgeRerank(model=str(nano_cross_encoder_dir), window=0)


def test_template_sets_the_text_the_model_reads(nano_cross_encoder_dir: Path) -> None:
    titles = [f"Clause {i}: {t}" for i, t in enumerate(reversed(TEXTS))]
    documents = [
        Document(page_content=t, metadata={"title": titles[i]}) for i, t in enumerate(TEXTS)
    ]
    compressor = BridgeRerank(
        model=str(nano_cross_encoder_dir), top_n=len(TEXTS), template="{title}"
    )
    expected = _direct_scores(compressor, titles)
    docs = compressor.compress_documents(documents, QUERY)
    assert {d.metadata["id"]: d.metadata["relevance_score"] for d in docs} == pytest.approx(
        dict(enumerate(expected)), abs=1e-6
    )


def test_template_keeps_the_original_page_content(nano_cross_encoder_dir: Path) -> None:
    documents = [Document(page_content=t, metadata={"title": "x"}) for t in TEXTS]
    compressor = BridgeRerank(model=str(nano_cross_encoder_dir), template="{title}: {page_content}")
    docs = compressor.compress_documents(documents, QUERY)
    assert [d.page_content for d in docs] == [TEXTS[d.metadata["id"]] for d in docs]


def test_template_without_a_field_is_refused(nano_cross_encoder_dir: Path) -> None:
    with pytest.raises(ValueError, match=r"\[template\] a template must name"):
        BridgeRerank(model=str(nano_cross_encoder_dir), template="no placeholder")


def test_unknown_field_is_rejected(nano_cross_encoder_dir: Path) -> None:
    with pytest.raises(ValueError, match="top_k"):
        BridgeRerank(model=str(nano_cross_encoder_dir), top_k=3)  # type: ignore[call-arg]


def test_a_given_client_is_used_as_is(compressor: BridgeRerank) -> None:
    assert BridgeRerank(client=compressor.client).client is compressor.client


def test_compressors_on_one_model_share_the_model_session(nano_cross_encoder_dir: Path) -> None:
    first = BridgeRerank(model=str(nano_cross_encoder_dir))
    second = BridgeRerank(model=str(nano_cross_encoder_dir), top_n=7)
    assert first.client.scorer is second.client.scorer


async def test_async_path_returns_what_the_sync_path_returns(compressor: BridgeRerank) -> None:
    sync_docs = compressor.compress_documents(_documents(), QUERY)
    async_docs = await compressor.acompress_documents(_documents(), QUERY)
    assert [d.metadata["id"] for d in async_docs] == [d.metadata["id"] for d in sync_docs]
    assert [d.metadata["relevance_score"] for d in async_docs] == pytest.approx(
        [d.metadata["relevance_score"] for d in sync_docs], abs=1e-6
    )


async def test_async_path_leaves_the_event_loop_free(nano_cross_encoder_dir: Path) -> None:
    compressor = BridgeRerank(model=str(nano_cross_encoder_dir), top_n=3)
    # Enough text that scoring takes a while; the loop must keep running meanwhile.
    documents = [Document(page_content=f"{t} " * 10) for t in TEXTS] * 10
    await compressor.acompress_documents(documents[:2], QUERY)  # warm up
    ticks = 0
    done = False

    async def ticker() -> None:
        nonlocal ticks
        while not done:
            ticks += 1
            await asyncio.sleep(0.001)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    ticks = 0
    started = time.perf_counter()
    await compressor.acompress_documents(documents, QUERY)
    elapsed = time.perf_counter() - started
    done = True
    await task
    # A loop blocked for the whole rerank would tick once or twice; a free one every few ms
    # (20 ms allows for a busy machine).
    assert ticks >= max(3, elapsed * 1000 / 20), (elapsed, ticks)
