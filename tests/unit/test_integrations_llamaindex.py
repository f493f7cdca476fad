"""llamaindex.BridgeRerank: a node postprocessor on real llama-index-core nodes."""

from __future__ import annotations

from pathlib import Path

import pytest
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from bridge import Ranker, RerankRequest
from bridge.integrations.llamaindex import BridgeRerank

QUERY = "who has the power to declare war"

TEXTS = [
    "The Congress shall have Power To declare War and to raise and support Armies.",
    "Excessive bail shall not be required.",
    "The judicial Power shall be vested in one supreme Court.",
    "No Person shall be a Senator who shall not have attained to the Age of thirty Years.",
    "The President shall be Commander in Chief of the Army and Navy.",
]


def _nodes() -> list[NodeWithScore]:
    return [
        NodeWithScore(node=TextNode(text=t, id_=f"n{i}"), score=1.0 - i / 10)
        for i, t in enumerate(TEXTS)
    ]


@pytest.fixture
def reranker(nano_cross_encoder_dir: Path) -> BridgeRerank:
    return BridgeRerank(model=str(nano_cross_encoder_dir), top_n=3)


def _model_scores(model_dir: Path) -> dict[str, float]:
    ranked = Ranker(model_name=str(model_dir)).rerank(
        RerankRequest(
            query=QUERY, passages=[{"id": f"n{i}", "text": t} for i, t in enumerate(TEXTS)]
        )
    )
    return {p["id"]: float(p["score"]) for p in ranked}


def test_is_a_llamaindex_node_postprocessor(reranker: BridgeRerank) -> None:
    assert isinstance(reranker, BaseNodePostprocessor)


def test_returns_top_n_nodes(reranker: BridgeRerank) -> None:
    assert len(reranker.postprocess_nodes(_nodes(), query_str=QUERY)) == 3


def test_node_scores_are_the_model_scores_best_first(
    reranker: BridgeRerank, nano_cross_encoder_dir: Path
) -> None:
    expected = sorted(_model_scores(nano_cross_encoder_dir).items(), key=lambda kv: -kv[1])[:3]
    nodes = reranker.postprocess_nodes(_nodes(), query_bundle=QueryBundle(QUERY))
    assert [(n.node.node_id, n.score) for n in nodes] == [
        (node_id, pytest.approx(score, abs=1e-6)) for node_id, score in expected
    ]


def test_retrieval_score_kept_on_request(nano_cross_encoder_dir: Path) -> None:
    reranker = BridgeRerank(model=str(nano_cross_encoder_dir), top_n=5, keep_retrieval_score=True)
    nodes = reranker.postprocess_nodes(_nodes(), query_str=QUERY)
    assert {n.node.node_id: n.node.metadata["retrieval_score"] for n in nodes} == pytest.approx(
        {f"n{i}": 1.0 - i / 10 for i in range(5)}
    )


def test_no_nodes_gives_no_nodes(reranker: BridgeRerank) -> None:
    assert reranker.postprocess_nodes([], query_str=QUERY) == []


def test_a_missing_query_is_an_error(reranker: BridgeRerank) -> None:
    with pytest.raises(ValueError, match="query"):
        reranker.postprocess_nodes(_nodes())


async def test_async_path_matches_sync(reranker: BridgeRerank) -> None:
    expected = [
        (n.node.node_id, n.score) for n in reranker.postprocess_nodes(_nodes(), query_str=QUERY)
    ]
    nodes = await reranker.apostprocess_nodes(_nodes(), query_str=QUERY)
    assert [(n.node.node_id, n.score) for n in nodes] == [
        (node_id, pytest.approx(score, abs=1e-6)) for node_id, score in expected
    ]
