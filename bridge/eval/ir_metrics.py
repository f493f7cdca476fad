"""NDCG@10, MRR@10 and Recall@k over ranked runs, computed by ir-measures (pytrec_eval).

A run is the ranked list of document ids a system returned for each query. Scores handed to
ir-measures are derived from the rank (n, n-1, ...) so ties in engine or model scores can never
reorder a list behind our back (pytrec_eval breaks score ties by document id). Queries of the qrels
that are missing from the run, or have an empty list, score 0 and stay in the mean. Documents that
are not in the qrels count as non-relevant (gain 0).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bridge.errors import EvalError

Run = Mapping[str, Sequence[str]]
Qrels = Mapping[str, Mapping[str, int]]


@dataclass(frozen=True)
class Scores:
    """Per-query values and their means, keyed by metric name (`ndcg@10`, `mrr@10`, `recall@50`)."""

    per_query: dict[str, dict[str, float]]
    mean: dict[str, float]


def metric_names(recall_depths: Iterable[int]) -> list[str]:
    return ["ndcg@10", "mrr@10", *(f"recall@{k}" for k in sorted(set(recall_depths)))]


def _measures(recall_depths: Iterable[int]) -> dict[str, Any]:
    from ir_measures import RR, R, nDCG

    measures: dict[str, Any] = {"ndcg@10": nDCG @ 10, "mrr@10": RR @ 10}
    for k in sorted(set(recall_depths)):
        measures[f"recall@{k}"] = R @ k
    return measures


def evaluate(qrels: Qrels, run: Run, *, recall_depths: Iterable[int] = (100,)) -> Scores:
    """Score `run` against `qrels`; the mean is over every query of `qrels`."""
    try:
        import ir_measures
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise EvalError(
            "evaluation needs the 'eval' extra: pip install 'rerank-bridge[eval]'"
        ) from exc
    if not qrels:
        raise EvalError("no judgments to evaluate against")
    measures = _measures(recall_depths)
    names = {str(m): name for name, m in measures.items()}
    qrel_rows = [
        ir_measures.Qrel(qid, docid, int(gain))
        for qid, docs in qrels.items()
        for docid, gain in docs.items()
    ]
    run_rows = [
        ir_measures.ScoredDoc(qid, docid, float(len(docs) - rank))
        for qid, docs in run.items()
        if qid in qrels
        for rank, docid in enumerate(_dedupe(docs))
    ]
    per_query: dict[str, dict[str, float]] = {qid: dict.fromkeys(measures, 0.0) for qid in qrels}
    if run_rows:
        for metric in ir_measures.iter_calc(list(measures.values()), qrel_rows, run_rows):
            per_query[metric.query_id][names[str(metric.measure)]] = float(metric.value)
    mean = {
        name: sum(values[name] for values in per_query.values()) / len(per_query)
        for name in measures
    }
    return Scores(per_query=per_query, mean=mean)


def _dedupe(docs: Sequence[str]) -> list[str]:
    """First occurrence wins, so a duplicated doc id cannot count twice."""
    seen: set[str] = set()
    out = []
    for doc in docs:
        if doc not in seen:
            seen.add(doc)
            out.append(doc)
    return out
