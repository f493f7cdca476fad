"""LlamaIndex integration: ``BridgeRerank``, a node postprocessor in place of ``FlashRankRerank``.

Fields and defaults follow LlamaIndex's FlashRank postprocessor (``model``, ``top_n=20``,
``max_length``): nodes are scored on their embed-mode content, ``node.score`` becomes the model's
relevance score and the best ``top_n`` come back, best first.

Needs the ``llamaindex`` extra: ``pip install 'rerank-bridge[llamaindex]'``.
"""

from __future__ import annotations

try:
    from llama_index.core.bridge.pydantic import Field, PrivateAttr
    from llama_index.core.callbacks import CBEventType, EventPayload
    from llama_index.core.postprocessor.types import BaseNodePostprocessor
    from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "bridge.integrations.llamaindex needs llama-index-core, which is not installed: "
        "pip install 'rerank-bridge[llamaindex]'"
    ) from exc

from collections.abc import Sequence
from typing import Any

from bridge.integrations._passages import open_ranker
from bridge.ranker import Ranker, RerankRequest

# LlamaIndex's FlashRankRerank default.
DEFAULT_MODEL_NAME = "ms-marco-TinyBERT-L-2-v2"


class BridgeRerank(BaseNodePostprocessor):
    """Rerank LlamaIndex nodes with a local ONNX cross-encoder (sync and async)."""

    model: str = Field(
        default=DEFAULT_MODEL_NAME, description="Model name (FlashRank names) or local directory."
    )
    top_n: int = Field(default=20, description="Number of nodes to return sorted by score.")
    max_length: int = Field(default=512, description="Token limit for (query, passage) pairs.")
    cache_dir: str | None = Field(default=None, description="Where named models are downloaded.")
    keep_retrieval_score: bool = Field(
        default=False, description="Keep the retriever's score in metadata['retrieval_score']."
    )

    _ranker: Ranker = PrivateAttr()

    def model_post_init(self, context: Any, /) -> None:
        self._ranker = open_ranker(self.model, self.cache_dir, self.max_length)

    @classmethod
    def class_name(cls) -> str:
        return "BridgeRerank"

    def _request(self, nodes: Sequence[NodeWithScore], query: str) -> RerankRequest:
        passages = [
            {"id": i, "text": node.node.get_content(metadata_mode=MetadataMode.EMBED)}
            for i, node in enumerate(nodes)
        ]
        return RerankRequest(query=query, passages=passages)

    def _apply(
        self, nodes: list[NodeWithScore], ranked: Sequence[dict[str, Any]]
    ) -> list[NodeWithScore]:
        # As FlashRankRerank: every node gets its model score, the best top_n come back.
        for passage in ranked:
            node = nodes[passage["id"]]
            if self.keep_retrieval_score:
                node.node.metadata["retrieval_score"] = node.score
            node.score = float(passage["score"])
        return [nodes[passage["id"]] for passage in ranked[: self.top_n]]

    def _query(self, query_bundle: QueryBundle | None) -> str:
        if query_bundle is None:
            raise ValueError("BridgeRerank needs a query: pass query_bundle or query_str")
        return query_bundle.query_str

    def _event_payload(self, nodes: list[NodeWithScore], query: str) -> dict[str, Any]:
        return {
            EventPayload.NODES: nodes,
            EventPayload.MODEL_NAME: self.model,
            EventPayload.QUERY_STR: query,
            EventPayload.TOP_K: self.top_n,
        }

    def _postprocess_nodes(
        self,
        nodes: list[NodeWithScore],
        query_bundle: QueryBundle | None = None,
    ) -> list[NodeWithScore]:
        query = self._query(query_bundle)
        if not nodes:
            return []
        with self.callback_manager.event(
            CBEventType.RERANKING, payload=self._event_payload(nodes, query)
        ) as event:
            results = self._apply(nodes, self._ranker.rerank(self._request(nodes, query)))
            event.on_end(payload={EventPayload.NODES: results})
        return results

    async def _apostprocess_nodes(
        self,
        nodes: list[NodeWithScore],
        query_bundle: QueryBundle | None = None,
    ) -> list[NodeWithScore]:
        query = self._query(query_bundle)
        if not nodes:
            return []
        with self.callback_manager.event(
            CBEventType.RERANKING, payload=self._event_payload(nodes, query)
        ) as event:
            ranked = await self._ranker.arerank(self._request(nodes, query))
            results = self._apply(nodes, ranked)
            event.on_end(payload={EventPayload.NODES: results})
        return results


__all__ = ["DEFAULT_MODEL_NAME", "BridgeRerank"]
