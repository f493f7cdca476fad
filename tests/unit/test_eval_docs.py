"""The README results section is rewritten from eval output, between its markers only."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.errors import EvalError
from bridge.eval.docs import END, START, update_docs, update_docs_from_dirs
from bridge.eval.results import EvalReport, SystemResult


def _report() -> EvalReport:
    bm25 = SystemResult("bm25", {"ndcg@10": 0.25}, {"q": {"ndcg@10": 0.25}}, [5.0])
    return EvalReport(dataset="toy", engine="es", queries=1, depth=10, systems=[bm25])


def _files(tmp_path: Path) -> dict[str, Path]:
    plot = tmp_path / "quality_latency.png"
    plot.write_bytes(b"png")
    return {"quality_latency_plot": plot}


def test_section_between_markers_is_replaced_and_the_rest_kept(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text(f"intro\n{START}\nold figures\n{END}\noutro\n")
    update_docs([_report()], [_files(tmp_path)], tmp_path)
    text = (tmp_path / "README.md").read_text()
    assert (text.startswith("intro\n"), text.endswith("outro\n"), "old figures" in text) == (
        True,
        True,
        False,
    )


def test_section_shows_the_generated_table_and_plot(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text(f"{START}\n{END}\n")
    update_docs([_report()], [_files(tmp_path)], tmp_path)
    text = (tmp_path / "README.md").read_text()
    assert ("| bm25 | 0.2500 |" in text, "(docs/results/toy-quality_latency.png)" in text) == (
        True,
        True,
    )


def test_plot_is_copied_under_docs(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text(f"{START}\n{END}\n")
    update_docs([_report()], [_files(tmp_path)], tmp_path)
    assert (tmp_path / "docs" / "results" / "toy-quality_latency.png").read_bytes() == b"png"


def test_readme_without_markers_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("no markers\n")
    with pytest.raises(EvalError, match="no generated results section"):
        update_docs([_report()], [_files(tmp_path)], tmp_path)


def test_section_can_be_rebuilt_from_an_eval_output_folder(tmp_path: Path) -> None:
    from bridge.eval.api import write_outputs

    (tmp_path / "README.md").write_text(f"{START}\n{END}\n")
    write_outputs(_report(), tmp_path / "out")
    update_docs_from_dirs([tmp_path / "out"], tmp_path)
    assert "| bm25 | 0.2500 |" in (tmp_path / "README.md").read_text()
