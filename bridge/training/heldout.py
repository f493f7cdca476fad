"""Held-out evaluation before and after training, through the product's own eval.

With an engine, the held-out queries run through :class:`bridge.eval.systems.EvalRunner` exactly
as `rerank-bridge eval` runs them (BM25, then BM25 top-``window`` reranked by each model, fusion
``replace``). Without one, each held-out query's judged passages are reranked by each model (no
engine needed; a weaker test, said so in the report) and scored by the eval's metrics.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from bridge.eval.choice import display_name
from bridge.eval.ir_metrics import evaluate
from bridge.eval.progress import progress_bar
from bridge.eval.results import EvalReport, SystemResult
from bridge.training.judgments import Judgments


def eval_queries(
    judgments: Judgments, held_out: Sequence[str], pinned: Sequence[str], limit: int, seed: int
) -> list[str]:
    """The held-out queries to evaluate: every pinned one, then a seeded sample up to ``limit``."""
    chosen = list(pinned)
    rest = sorted(set(held_out) - set(pinned))
    room = max(0, limit - len(chosen))
    chosen += random.Random(seed).sample(rest, min(room, len(rest)))
    return sorted(chosen)


def heldout_report(
    judgments: Judgments,
    qids: Sequence[str],
    models: Sequence[str],
    *,
    client: Any | None,
    index: str | None,
    fields: Sequence[str],
    window: int,
    progress: bool,
) -> EvalReport:
    queries = {qid: judgments.queries[qid] for qid in qids}
    qrels = {qid: judgments.gains[qid] for qid in qids}
    notes = [
        f"{len(qids)} held-out queries (none of them was trained on); gains on the data's own "
        f"scale (max {judgments.scale}); unjudged passages count as non-relevant.",
    ]
    if client is not None and index is not None:
        from bridge.eval.systems import EvalRunner, EvalSettings

        settings = EvalSettings(
            models=list(models), windows=[window], text_fields=tuple(fields), progress=progress
        )
        return EvalRunner(client, index, settings).run(
            queries, qrels, dataset=f"{judgments.name} held-out", notes=notes
        )
    return _judged_only(judgments, queries, qrels, models, notes, progress)


def _judged_only(
    judgments: Judgments,
    queries: dict[str, str],
    qrels: dict[str, dict[str, int]],
    models: Sequence[str],
    notes: list[str],
    progress: bool,
) -> EvalReport:
    from bridge.ranker import Ranker

    notes = [*notes, "No engine: each query's judged passages only are reranked (no BM25)."]
    systems = []
    for model in models:
        ranker = Ranker(model_name=model)
        run: dict[str, list[str]] = {}
        bar = progress_bar(len(queries), desc=display_name(model), unit="q", enabled=progress)
        try:
            for qid, text in queries.items():
                pids = sorted(qrels[qid])
                scores = ranker.score_pairs([(text, judgments.passages[p]) for p in pids])
                order = sorted(range(len(pids)), key=lambda i: -scores[i])
                run[qid] = [pids[i] for i in order]
                bar.update(1)
        finally:
            bar.close()
        scores_ = evaluate(qrels, run, recall_depths=[10])
        systems.append(
            SystemResult(
                system="judged+rerank",
                mean=scores_.mean,
                per_query=scores_.per_query,
                latency_ms=[],
                model=display_name(model),
            )
        )
    return EvalReport(
        dataset=f"{judgments.name} held-out",
        engine="none",
        queries=len(queries),
        depth=0,
        systems=systems,
        notes=notes,
    )


def ndcg_by_model(report: EvalReport) -> dict[str, float]:
    """NDCG@10 of each reranking model, and of BM25 under ``"bm25"`` when the engine ran."""
    out = {}
    for system in report.systems:
        if system.system == "bm25":
            out["bm25"] = system.mean["ndcg@10"]
        elif system.model:
            out[system.model] = system.mean["ndcg@10"]
    return out
