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
        CallbackManagerForRetrieverRun,
        Callbacks,
    )
    from langchain_core.documents import BaseDocumentCompressor, Document
    from langchain_core.embeddings import Embeddings
    from langchain_core.retrievers import BaseRetriever
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "bridge.integrations.langchain needs langchain-core, which is not installed: "
        "pip install 'rerank-bridge[langchain]'"
    ) from exc

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from pydantic import BaseModel, ConfigDict, PrivateAttr, field_validator, model_validator

from bridge.config import DEFAULT_EMBEDDING_MODEL, RerankConfig
from bridge.errors import ConfigError
from bridge.integrations._passages import (
    check_template,
    check_window,
    in_window,
    open_ranker,
    render_texts,
)
from bridge.pipeline.texts import passage_texts
from bridge.ranker import Ranker, RerankRequest
from bridge.scoring import BiEncoderScorer, shared_scorers
from bridge.search import AsyncRerankingSearch, RerankingSearch

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
    """Text the model reads, e.g. ``"{title}: {page_content}"``; the content by default."""

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _build_client(cls, values: Any) -> Any:
        if not isinstance(values, dict) or "client" in values:
            return values
        values = dict(values)
        values["model"] = values.get("model") or DEFAULT_MODEL_NAME
        values["client"] = open_ranker(
            values["model"], values.get("cache_dir"), values.get("max_length")
        )
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
        scored = in_window(documents, self.window)
        texts = render_texts([(doc.page_content, doc.metadata) for doc in scored], self.template)
        passages = [
            {"id": i, "text": text, "meta": doc.metadata}
            for i, (doc, text) in enumerate(zip(scored, texts, strict=True))
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

    model: str = DEFAULT_EMBEDDING_MODEL
    """A local bi-encoder directory or a known name (resolved in ``cache_dir``)."""
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
        vectors: list[list[float]] = (await asyncio.to_thread(self._scorer.embed, texts)).tolist()
        return vectors

    async def aembed_query(self, text: str) -> list[float]:
        return (await self.aembed_documents([text]))[0]


class RerankingRetriever(BaseRetriever):
    """BM25 and/or kNN on an Elasticsearch/OpenSearch index, reranked by the bridge.

    The question becomes a ``multi_match`` over ``fields`` (or ``query_builder(question)``), a
    ``knn`` search on ``knn_field`` embedded by the bridge (``rerank.embedding_model``), or both
    (hybrid); ``k`` hits come back reranked as ``Document`` objects.

    ``page_content`` is ``_source[content_field]``, or else the text the model read (the rerank
    ``fields``/``template``, or every text field). ``metadata`` holds the ``_source`` fields (less
    the vector field) and, winning on a clash: ``id``, ``index``, ``score`` (the fused score),
    ``model_score``, ``engine_score``, ``engine_rank`` and ``rerank_status`` (``reranked``, or
    ``engine_order`` when reranking failed open).

    Sync calls use ``client``; async calls use ``async_client`` when given (else ``client`` in a
    worker thread).
    """

    client: Any = None
    """A sync elasticsearch-py / opensearch-py client."""
    async_client: Any = None
    """An ``AsyncElasticsearch`` / ``AsyncOpenSearch`` client for ``ainvoke``."""
    index: str
    fields: list[str] | None = None
    """Text fields of the ``multi_match`` (BM25) query; boosts allowed (``"title^2"``)."""
    query_builder: Callable[[str], dict[str, Any]] | None = None
    """Builds the engine ``query`` from the question, instead of the ``multi_match``."""
    knn_field: str | None = None
    """A ``dense_vector``/``knn_vector`` field: adds a kNN search on the embedded question."""
    num_candidates: int = 100
    """kNN candidates per shard."""
    k: int = 10
    """Number of documents returned."""
    rerank: bool | dict[str, Any] | RerankConfig = True
    """The ``rerank`` section: ``True`` (the defaults), a dict or a ``RerankConfig``."""
    rerank_defaults: dict[str, Any] | RerankConfig | None = None
    """What ``rerank=True`` means (model, fields, window_size...)."""
    content_field: str | None = None

    model_config = ConfigDict(arbitrary_types_allowed=True)

    _search: RerankingSearch | None = PrivateAttr(default=None)
    _async_search: AsyncRerankingSearch | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _check_sources(self) -> RerankingRetriever:
        if self.client is None and self.async_client is None:
            raise ConfigError("give a client or an async_client", field="client")
        if not (self.fields or self.query_builder or self.knn_field):
            raise ConfigError("give fields, a query_builder or a knn_field", field="fields")
        if self.k < 1:
            raise ConfigError(f"must be at least 1, got {self.k}", field="k")
        self._config_for("check")
        return self

    def _config_for(self, question: str) -> RerankConfig:
        base = RerankConfig.from_value(None, self.rerank_defaults)
        config = RerankConfig.from_value(self.rerank, base)
        # The question itself is the rerank query (a query_builder may hide it), and explain
        # carries the per-hit scores into the metadata.
        return replace(config, query=question, explain=True)

    def _request(self, question: str) -> tuple[dict[str, Any], RerankConfig]:
        config = self._config_for(question)
        body: dict[str, Any] = {"size": self.k}
        if self.query_builder is not None:
            body["query"] = self.query_builder(question)
        elif self.fields:
            body["query"] = {"multi_match": {"query": question, "fields": list(self.fields)}}
        if self.knn_field is not None:
            k = max(self.k, config.window_size)
            body["knn"] = {
                "field": self.knn_field,
                "query_text": question,
                "k": k,
                "num_candidates": max(self.num_candidates, k),
            }
        return body, config

    def _documents(self, response: Any, config: RerankConfig) -> list[Document]:
        body = getattr(response, "body", response)
        hits: list[dict[str, Any]] = list(body.get("hits", {}).get("hits", []))
        texts = passage_texts(hits, config).texts if self.content_field is None else []
        documents = []
        for i, hit in enumerate(hits):
            source = dict(hit.get("_source") or {})
            if self.knn_field is not None:
                source.pop(self.knn_field, None)
            content = (
                texts[i] if self.content_field is None else str(source.get(self.content_field, ""))
            )
            details = hit.get("_rerank") or {}
            metadata = {
                **source,
                "id": hit.get("_id"),
                "index": hit.get("_index"),
                "score": hit.get("_score"),
                "model_score": details.get("model_score"),
                "engine_score": details.get("engine_score"),
                "engine_rank": details.get("engine_rank"),
                "rerank_status": details.get("status"),
            }
            documents.append(Document(page_content=content, metadata=metadata, id=hit.get("_id")))
        return documents

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        if self.client is None:
            raise ConfigError(
                "this retriever has only an async_client: use ainvoke", field="client"
            )
        if self._search is None:
            self._search = RerankingSearch(self.client)
        body, config = self._request(query)
        response = self._search.search(index=self.index, body=body, rerank=config)
        return self._documents(response, config)

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun
    ) -> list[Document]:
        if self.async_client is None:
            return await asyncio.to_thread(
                self._get_relevant_documents, query, run_manager=run_manager.get_sync()
            )
        if self._async_search is None:
            self._async_search = AsyncRerankingSearch(self.async_client)
        body, config = self._request(query)
        response = await self._async_search.search(index=self.index, body=body, rerank=config)
        return self._documents(response, config)


__all__ = ["DEFAULT_MODEL_NAME", "BridgeEmbeddings", "BridgeRerank", "RerankingRetriever"]
