"""LangChain integration: a FlashrankRerank drop-in, offline embeddings and a reranking retriever.

- ``BridgeRerank``: a ``BaseDocumentCompressor`` with ``FlashrankRerank``'s fields and behaviour
  (``model``, ``top_n``, ``score_threshold``, ``prefix_metadata``; ``id`` and ``relevance_score`` in
  the metadata) plus a native async path, a rerank ``window`` and a text ``template``.
- ``BridgeEmbeddings``: a bi-encoder (e.g. all-MiniLM-L6-v2) as LangChain ``Embeddings``.
- ``RerankingRetriever``: BM25 and/or kNN on an Elasticsearch/OpenSearch index, reranked by the
  bridge, returned as ``Document`` objects.

Needs the ``langchain`` extra: ``pip install 'rerank-bridge[langchain]'``.
"""

from __future__ import annotations

try:
    from langchain_core.callbacks import (
        AsyncCallbackManagerForRetrieverRun,
        Callbacks,
        CallbackManagerForRetrieverRun,
    )
    from langchain_core.documents import BaseDocumentCompressor, Document
    from langchain_core.embeddings import Embeddings
    from langchain_core.retrievers import BaseRetriever
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "bridge.integrations.langchain needs langchain-core, which is not installed: "
        "pip install 'rerank-bridge[langchain]'"
    ) from exc

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, PrivateAttr, field_validator, model_validator

from bridge.errors import ConfigError
from bridge.integrations._passages import check_template, check_window, in_window, render_text
from bridge.ranker import Ranker, RerankRequest
from bridge.scoring import BiEncoderScorer, shared_scorers

# FlashrankRerank's default, so swapping the import keeps the model a user had.
DEFAULT_MODEL_NAME = "ms-marco-MultiBERT-L-12"


class BridgeRerank(BaseDocumentCompressor):
    """Rerank documents with a local ONNX cross-encoder; a drop-in for ``FlashrankRerank``.

    ``client`` is built once from ``model``/``cache_dir``/``max_length`` unless given; its model
    session comes from ``bridge.scoring.shared_scorers``, so compressors on the same model share it.
    """

    client: Ranker
    """The bridge ``Ranker`` (FlashRank API) that scores the documents."""
    top_n: int = 3
    """Number of documents to return."""
    score_threshold: float = 0.0
    """Minimum relevance score to return (applied after the ``top_n`` cut, as FlashrankRerank)."""
    model: str | None = None
    """Model name (FlashRank names) or a local model directory."""
    prefix_metadata: str = ""
    """Prefix for the ``id`` and ``relevance_score`` metadata keys."""
    cache_dir: str | None = None
    """Where named models are downloaded; the bridge's user cache dir by default."""
    max_length: int | None = None
    """Token limit for (query, passage) pairs; the model's own limit by default."""
    window: int | None = None
    """Score only the first ``window`` documents (the base retriever's best); others are dropped."""
    template: str | None = None
    """Text the model reads, e.g. ``"{title}: {page_content}"`` (metadata keys); content by default."""

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _build_client(cls, values: Any) -> Any:
        if not isinstance(values, dict) or "client" in values:
            return values
        values = dict(values)
        values["model"] = values.get("model") or DEFAULT_MODEL_NAME
        options = {k: values[k] for k in ("cache_dir", "max_length") if values.get(k) is not None}
        values["client"] = Ranker(model_name=values["model"], **options)
        return values

    @field_validator("window")
    @classmethod
    def _valid_window(cls, window: int | None) -> int | None:
        return check_window(window)

    @field_validator("template")
    @classmethod
    def _valid_template(cls, template: str | None) -> str | None:
        return check_template(template)

    def _request(self, documents: Sequence[Document], query: str) -> RerankRequest:
        passages = [
            {
                "id": i,
                "text": render_text(self.template, doc.page_content, doc.metadata),
                "meta": doc.metadata,
            }
            for i, doc in enumerate(in_window(documents, self.window))
        ]
        return RerankRequest(query=query, passages=passages)

    def _documents(
        self, ranked: Sequence[dict[str, Any]], documents: Sequence[Document]
    ) -> list[Document]:
        # Same order of operations as FlashrankRerank: cut to top_n, then drop those under the
        # threshold. Original metadata is spread last, so it wins on a key clash, as there.
        results = []
        for passage in ranked[: self.top_n]:
            score = float(passage["score"])
            if score < self.score_threshold:
                continue
            original = documents[passage["id"]]
            metadata = {
                f"{self.prefix_metadata}id": passage["id"],
                f"{self.prefix_metadata}relevance_score": score,
                **original.metadata,
            }
            results.append(
                Document(page_content=original.page_content, metadata=metadata, id=original.id)
            )
        return results

    def compress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Callbacks | None = None,
    ) -> Sequence[Document]:
        """Rerank ``documents`` for ``query``; the best ``top_n`` at or above the threshold."""
        if not documents:
            return []
        return self._documents(self.client.rerank(self._request(documents, query)), documents)

    async def acompress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Callbacks | None = None,
    ) -> Sequence[Document]:
        """As ``compress_documents``, scoring through the Ranker's async path (off the loop)."""
        if not documents:
            return []
        ranked = await self.client.arerank(self._request(documents, query))
        return self._documents(ranked, documents)


class BridgeEmbeddings(BaseModel, Embeddings):
    """A local ONNX bi-encoder as LangChain ``Embeddings`` (L2-normalised vectors).

    ``model`` is a local model directory (e.g. an all-MiniLM-L6-v2 export) or a known model name.
    The session is shared process-wide through ``bridge.scoring.shared_scorers``.
    """

    model: str
    cache_dir: str | None = None
    max_length: int | None = None

    model_config = ConfigDict(extra="forbid")

    _scorer: BiEncoderScorer = PrivateAttr()

    def model_post_init(self, context: Any, /) -> None:
        scorer = shared_scorers.get(
            self.model, cache_dir=self.cache_dir, max_length=self.max_length
        )
        if not isinstance(scorer, BiEncoderScorer):
            raise ConfigError(
                f"{self.model!r} is a {scorer.kind}-encoder; embeddings need a bi-encoder",
                field="model",
            )
        self._scorer = scorer

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        vectors: list[list[float]] = self._scorer.embed(texts).tolist()
        return vectors

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        vectors: list[list[float]] = (await self._scorer.aembed(texts)).tolist()
        return vectors

    async def aembed_query(self, text: str) -> list[float]:
        return (await self.aembed_documents([text]))[0]


__all__ = ["DEFAULT_MODEL_NAME", "BridgeEmbeddings", "BridgeRerank"]

_ = (AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun, BaseRetriever, Path)
