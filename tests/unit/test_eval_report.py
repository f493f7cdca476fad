"""results.json, the markdown table and the PNG plots from a hand-made EvalReport."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bridge.eval.plots import plot_ndcg_delta, plot_quality_latency
from bridge.eval.report import markdown_table, write_report
from bridge.eval.results import EvalReport, SystemResult, percentile

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _report() -> EvalReport:
    bm25 = SystemResult(
        system="bm25",
        mean={"ndcg@10": 0.5, "mrr@10": 0.6},
        per_query={"a": {"ndcg@10": 0.4, "mrr@10": 0.5}, "b": {"ndcg@10": 0.6, "mrr@10": 0.7}},
        latency_ms=[1.0, 3.0],
    )
    reranked = SystemResult(
        system="bm25+rerank",
        model="tiny",
        window=20,
        mean={"ndcg@10": 0.65, "mrr@10": 0.7},
        per_query={"a": {"ndcg@10": 0.7, "mrr@10": 0.9}, "b": {"ndcg@10": 0.6, "mrr@10": 0.5}},
        latency_ms=[10.0, 30.0, 20.0],
        fallbacks=1,
    )
    return EvalReport(dataset="toy", engine="es", queries=2, depth=20, systems=[bm25, reranked])


def test_percentile_interpolates_like_numpy() -> None:
    assert (percentile([10.0, 30.0, 20.0], 50), percentile([1.0, 2.0, 3.0, 4.0], 90)) == (
        20.0,
        pytest.approx(3.7),
    )


def test_markdown_table_shows_ndcg_gain_over_bm25() -> None:
    row = next(line for line in markdown_table(_report()).splitlines() if "w=20" in line)
    assert "+0.1500" in row


def test_markdown_table_counts_fallbacks() -> None:
    assert "(1 fell back)" in markdown_table(_report())


def test_report_states_that_unjudged_documents_are_non_relevant(tmp_path: Path) -> None:
    paths = write_report(_report(), tmp_path)
    notes = json.loads(paths["json"].read_text())["notes"]
    assert any("non-relevant" in note for note in notes)


def test_results_json_records_latency_percentiles(tmp_path: Path) -> None:
    systems = json.loads(write_report(_report(), tmp_path)["json"].read_text())["systems"]
    assert systems[1]["latency_ms"] == {"p50": 20.0, "p90": 28.0}


def test_quality_latency_plot_is_a_png(tmp_path: Path) -> None:
    path = plot_quality_latency(_report(), tmp_path / "q.png")
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_delta_histogram_is_a_png(tmp_path: Path) -> None:
    plot_ndcg_delta(_report(), tmp_path / "d.png")
    assert (tmp_path / "d.png").read_bytes()[:8] == PNG_MAGIC


def test_delta_histogram_is_skipped_without_a_baseline(tmp_path: Path) -> None:
    report = _report()
    only_rerank = EvalReport("toy", "es", 2, 20, systems=report.systems[1:])
    assert plot_ndcg_delta(only_rerank, tmp_path / "d.png") is None
