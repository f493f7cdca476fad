"""The FlashRank + LangChain flow of the seed overview, run offline on a real public-domain text.

split (langchain-text-splitters) -> embed (BridgeEmbeddings, all-MiniLM-L6-v2)
-> InMemoryVectorStore -> k=10 retriever -> ContextualCompressionRetriever with BridgeRerank
(the trained cross-encoder) -> the chunk that answers the question comes first.
"""

from __future__ import annotations

from pathlib import Path

import pytest

# ContextualCompressionRetriever left langchain-core; it lives in langchain-classic (dev extra).
from langchain_classic.retrievers import ContextualCompressionRetriever
from langchain_core.documents import Document
from langchain_core.vectorstores import InMemoryVectorStore
from langchain_text_splitters import RecursiveCharacterTextSplitter

from bridge.integrations.langchain import BridgeEmbeddings, BridgeRerank

TEXT = Path(__file__).resolve().parents[1] / "data" / "us_constitution_excerpt.txt"

# Question -> a phrase found only in the chunk that answers it.
QUESTIONS = {
    "How many years is the term of a senator?": "two Senators from each State",
    "Who has the power to declare war?": "To declare War",
    "How old must a person be to become President?": "thirty five Years",
    "What does the constitution say about freedom of speech and religion?": "freedom of speech",
    "Which punishments are forbidden?": "cruel and unusual punishments",
    "How can the constitution be amended?": "propose Amendments",
    "Can women vote?": "on account of sex",
    "What is treason?": "levying War against them",
}


@pytest.fixture(scope="module")
def chunks() -> list[Document]:
    splitter = RecursiveCharacterTextSplitter(chunk_size=500, chunk_overlap=100)
    documents = splitter.split_documents(
        [Document(page_content=TEXT.read_text(encoding="utf-8"), metadata={"source": TEXT.name})]
    )
    for i, document in enumerate(documents):
        document.metadata["chunk"] = i
    return documents


@pytest.fixture(scope="module")
def compression_retriever(
    chunks: list[Document], bi_encoder_dir: Path, homedepot_cross_encoder_dir: Path
) -> ContextualCompressionRetriever:
    store = InMemoryVectorStore.from_documents(chunks, BridgeEmbeddings(model=str(bi_encoder_dir)))
    return ContextualCompressionRetriever(
        base_compressor=BridgeRerank(model=str(homedepot_cross_encoder_dir), top_n=3),
        base_retriever=store.as_retriever(search_kwargs={"k": 10}),
    )


def test_text_splits_into_many_chunks(chunks: list[Document]) -> None:
    assert len(chunks) >= 15


@pytest.mark.parametrize(("question", "phrase"), list(QUESTIONS.items()))
def test_answering_chunk_comes_first(
    compression_retriever: ContextualCompressionRetriever, question: str, phrase: str
) -> None:
    docs = compression_retriever.invoke(question)
    assert phrase in docs[0].page_content, [d.page_content[:80] for d in docs]


def test_results_carry_relevance_score_and_chunk_metadata(
    compression_retriever: ContextualCompressionRetriever,
) -> None:
    docs = compression_retriever.invoke("Who has the power to declare war?")
    assert all({"id", "relevance_score", "chunk", "source"} <= set(d.metadata) for d in docs)


async def test_async_flow_answers_like_the_sync_flow(
    compression_retriever: ContextualCompressionRetriever,
) -> None:
    question = "How old must a person be to become President?"
    sync_docs = compression_retriever.invoke(question)
    async_docs = await compression_retriever.ainvoke(question)
    assert [d.metadata["chunk"] for d in async_docs] == [d.metadata["chunk"] for d in sync_docs]
