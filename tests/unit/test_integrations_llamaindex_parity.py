"""llamaindex.BridgeRerank against the real FlashRankRerank postprocessor on the same model files.

``llama-index-postprocessor-flashrank-rerank`` builds its ``flashrank.Ranker`` with FlashRank's
default cache dir; the test points that real Ranker at ``flashrank_cache_dir`` (the project's test
build of the nano model, no network) and changes nothing else.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import flashrank
import pytest
from llama_index.core.schema import NodeWithScore, TextNode
from llama_index.postprocessor.flashrank_rerank import base as flashrank_postprocessor

from bridge.integrations.llamaindex import BridgeRerank

QUERY = "who has the power to declare war"

TEXTS = [
    "The Congress shall have Power To declare War and to raise and support Armies.",
    "Excessive bail shall not be required.",
    "The judicial Power shall be vested in one supreme Court.",
    "No Person shall be a Senator who shall not have attained to the Age of thirty Years.",
    "The President shall be Commander in Chief of the Army and Navy.",
    "Treason shall consist only in levying War against them.",
]


def _nodes() -> list[NodeWithScore]:
    return [
        NodeWithScore(node=TextNode(text=t, id_=f"n{i}"), score=0.5) for i, t in enumerate(TEXTS)
    ]


@pytest.fixture
def flashrank_postprocessor_cls(monkeypatch: pytest.MonkeyPatch, flashrank_cache_dir: Path) -> Any:
    ranker = functools.partial(flashrank.Ranker, cache_dir=str(flashrank_cache_dir))
    monkeypatch.setattr(flashrank_postprocessor, "Ranker", ranker)
    return flashrank_postprocessor.FlashRankRerank


def _ranked(nodes: list[NodeWithScore]) -> list[tuple[str, float | None]]:
    return [(n.node.node_id, n.score) for n in nodes]


@pytest.mark.parametrize("top_n", [1, 3, 20])
def test_same_nodes_in_the_same_order(
    flashrank_postprocessor_cls: Any, nano_cross_encoder_dir: Path, top_n: int
) -> None:
    theirs = flashrank_postprocessor_cls(top_n=top_n).postprocess_nodes(_nodes(), query_str=QUERY)
    ours = BridgeRerank(model=str(nano_cross_encoder_dir), top_n=top_n).postprocess_nodes(
        _nodes(), query_str=QUERY
    )
    assert [node_id for node_id, _ in _ranked(ours)] == [node_id for node_id, _ in _ranked(theirs)]


def test_same_node_scores(flashrank_postprocessor_cls: Any, nano_cross_encoder_dir: Path) -> None:
    theirs = flashrank_postprocessor_cls().postprocess_nodes(_nodes(), query_str=QUERY)
    ours = BridgeRerank(model=str(nano_cross_encoder_dir)).postprocess_nodes(
        _nodes(), query_str=QUERY
    )
    assert [score for _, score in _ranked(ours)] == pytest.approx(
        [float(score or 0.0) for _, score in _ranked(theirs)], abs=2e-3
    )


def test_same_defaults(flashrank_postprocessor_cls: Any) -> None:
    shared = ("model", "top_n", "max_length")
    theirs = flashrank_postprocessor_cls.model_fields
    assert {name: BridgeRerank.model_fields[name].default for name in shared} == {
        name: theirs[name].default for name in shared
    }
