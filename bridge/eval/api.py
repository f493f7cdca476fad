"""The two ways to run an eval: a dataset folder (temporary index) or an existing index."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bridge.errors import EvalError
from bridge.eval.choice import bi_encoder_dir
from bridge.eval.corpus_index import VECTOR_FIELD, temporary_index
from bridge.eval.datasets import Qrels, load_dataset, load_qrels, load_queries
from bridge.eval.plots import plot_ndcg_delta, plot_quality_latency
from bridge.eval.report import write_report
from bridge.eval.results import EvalReport
from bridge.eval.systems import Embed, EvalRunner, EvalSettings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalOutput:
    report: EvalReport
    files: dict[str, Path]


def load_embedder(model: str | Path | None = None) -> Embed:
    """The bi-encoder's `embed`, for corpus vectors and kNN query vectors."""
    from bridge.scoring import shared_scorers

    location = model or bi_encoder_dir()
    if location is None:
        raise EvalError(
            "kNN needs a bi-encoder: run `make models` or set RERANK_BRIDGE_EMBEDDING_MODEL"
        )
    scorer = shared_scorers.get(location)
    if scorer.kind != "bi":
        raise EvalError(f"{location} is not a bi-encoder (needed for vectors)")
    embed: Embed = scorer.embed
    return embed


def write_outputs(report: EvalReport, out_dir: Path) -> dict[str, Path]:
    files = write_report(report, out_dir)
    files["quality_latency_plot"] = plot_quality_latency(report, out_dir / "quality_latency.png")
    delta = plot_ndcg_delta(report, out_dir / "ndcg_delta.png")
    if delta is not None:
        files["ndcg_delta_plot"] = delta
    return files


def eval_dataset(
    client: Any,
    dataset_dir: Path,
    settings: EvalSettings,
    out_dir: Path,
    *,
    engine_name: str = "elasticsearch",
    max_queries: int | None = None,
    seed: int = 13,
    vectors: bool = False,
    embedding_model: str | Path | None = None,
) -> EvalOutput:
    """Index the dataset's corpus into a temporary index, evaluate, delete the index."""
    dataset = load_dataset(dataset_dir, max_queries=max_queries, seed=seed)
    embed = load_embedder(embedding_model) if vectors else None
    settings = replace(
        settings,
        text_fields=dataset.text_fields,
        vector_field=VECTOR_FIELD if embed is not None else None,
    )
    with temporary_index(client, dataset, embed=embed, progress=settings.progress) as index:
        runner = EvalRunner(client, index, settings, embed=embed, engine_name=engine_name)
        report = runner.run(
            dataset.queries, dataset.qrels, dataset=dataset.name, notes=dataset.notes
        )
    return EvalOutput(report, write_outputs(report, out_dir))


def index_fields(client: Any, index: str) -> tuple[list[str], str | None]:
    """The text fields and the first dense_vector field of an existing index's mapping."""
    if not client.indices.exists(index=index):
        raise EvalError(f"index {index!r} does not exist")
    mapping = client.indices.get_mapping(index=index)
    properties: dict[str, Any] = {}
    for body in dict(mapping).values():
        properties.update(body.get("mappings", {}).get("properties", {}))
    texts = [name for name, spec in properties.items() if spec.get("type") == "text"]
    vectors = [
        name
        for name, spec in properties.items()
        if spec.get("type") in ("dense_vector", "knn_vector")
    ]
    return texts, (vectors[0] if vectors else None)


def eval_index(
    client: Any,
    index: str,
    queries_file: Path,
    qrels_file: Path,
    settings: EvalSettings,
    out_dir: Path,
    *,
    engine_name: str = "elasticsearch",
    text_fields: Sequence[str] | None = None,
    max_queries: int | None = None,
    embedding_model: str | Path | None = None,
) -> EvalOutput:
    """Evaluate against an index that already exists (nothing is created or deleted)."""
    queries = load_queries(queries_file)
    qrels: Qrels = load_qrels(qrels_file)
    found_texts, vector_field = index_fields(client, index)
    fields = list(text_fields or found_texts)
    if not fields:
        raise EvalError(f"index {index!r} has no text field; name them with --fields")
    embed = None
    if vector_field is not None and engine_name == "elasticsearch":
        try:
            embed = load_embedder(embedding_model)
        except EvalError as exc:
            logger.warning("skipping kNN and hybrid: %s", exc)
            vector_field = None
    if max_queries is not None:
        judged = [qid for qid in queries if qid in qrels][:max_queries]
        queries = {qid: queries[qid] for qid in judged}
    settings = replace(settings, text_fields=tuple(fields), vector_field=vector_field)
    runner = EvalRunner(client, index, settings, embed=embed, engine_name=engine_name)
    report = runner.run(queries, qrels, dataset=index)
    return EvalOutput(report, write_outputs(report, out_dir))
