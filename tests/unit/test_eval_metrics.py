"""Metric code checked against values worked out by hand, and against ranx."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bridge.eval.datasets import load_trec_qrels
from bridge.eval.ir_metrics import evaluate

# q1: d1 gain 2, d2 gain 1, d3 gain 0 (judged non-relevant), d4 never judged.
# q2: d5 gain 1 only.
TINY_QRELS = "q1 0 d1 2\nq1 0 d2 1\nq1 0 d3 0\nq2 0 d5 1\n"

# Run: q1 -> d3, d1, d4, d2 ; q2 -> d6, d7, d8, d5
RUN = {"q1": ["d3", "d1", "d4", "d2"], "q2": ["d6", "d7", "d8", "d5"]}

# By hand, linear gains, log2(rank + 1) discount:
# q1 DCG = 2/log2(3) + 1/log2(5); ideal = 2/log2(2) + 1/log2(3)
Q1_NDCG = (2 / math.log2(3) + 1 / math.log2(5)) / (2 + 1 / math.log2(3))
# q2 DCG = 1/log2(5); ideal = 1
Q2_NDCG = 1 / math.log2(5)


@pytest.fixture
def qrels(tmp_path: Path) -> dict[str, dict[str, int]]:
    path = tmp_path / "tiny.qrels"
    path.write_text(TINY_QRELS)
    return load_trec_qrels(path)


def test_ndcg_at_10_matches_hand_computation(qrels: dict[str, dict[str, int]]) -> None:
    scores = evaluate(qrels, RUN, recall_depths=[2])
    assert scores.per_query["q1"]["ndcg@10"] == pytest.approx(Q1_NDCG)
    assert scores.per_query["q2"]["ndcg@10"] == pytest.approx(Q2_NDCG)


def test_mrr_at_10_is_mean_reciprocal_rank_of_first_relevant(
    qrels: dict[str, dict[str, int]],
) -> None:
    scores = evaluate(qrels, RUN, recall_depths=[2])
    assert scores.mean["mrr@10"] == pytest.approx((1 / 2 + 1 / 4) / 2)


def test_recall_at_k_counts_relevant_within_depth(qrels: dict[str, dict[str, int]]) -> None:
    scores = evaluate(qrels, RUN, recall_depths=[2, 4])
    assert (scores.per_query["q1"]["recall@2"], scores.per_query["q1"]["recall@4"]) == (
        pytest.approx(0.5),
        pytest.approx(1.0),
    )


def test_query_missing_from_run_scores_zero_and_stays_in_mean(
    qrels: dict[str, dict[str, int]],
) -> None:
    scores = evaluate(qrels, {"q1": RUN["q1"]}, recall_depths=[2])
    assert scores.mean["ndcg@10"] == pytest.approx(Q1_NDCG / 2)


def test_equal_engine_scores_keep_run_order(qrels: dict[str, dict[str, int]]) -> None:
    # pytrec_eval would break score ties by doc id; ranks are passed instead, so order is kept.
    forward = evaluate(qrels, {"q1": ["d2", "d1"]}, recall_depths=[2]).per_query["q1"]["ndcg@10"]
    backward = evaluate(qrels, {"q1": ["d1", "d2"]}, recall_depths=[2]).per_query["q1"]["ndcg@10"]
    assert forward < backward


def test_ranx_agrees_with_ir_measures(qrels: dict[str, dict[str, int]]) -> None:
    ranx = pytest.importorskip("ranx")
    ours = evaluate(qrels, RUN, recall_depths=[2]).mean
    ranx_run = {
        qid: {doc: float(len(docs) - i) for i, doc in enumerate(docs)} for qid, docs in RUN.items()
    }
    theirs = ranx.evaluate(
        ranx.Qrels({q: dict(d) for q, d in qrels.items()}),
        ranx.Run(ranx_run),
        ["ndcg@10", "mrr@10", "recall@2"],
    )
    assert [ours["ndcg@10"], ours["mrr@10"], ours["recall@2"]] == pytest.approx(
        [theirs["ndcg@10"], theirs["mrr@10"], theirs["recall@2"]]
    )
