"""Dataset loaders on tiny files written by the tests (no ../shared needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bridge.errors import EvalError
from bridge.eval.datasets import (
    cranfield_gain,
    detect_format,
    homedepot_gain,
    load_beir,
    load_cranfield,
    load_dataset,
    load_homedepot,
    load_qrels,
)


def _write_beir(root: Path, qrels: str = "query-id\tcorpus-id\tscore\nq1\td1\t2\n") -> Path:
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text(
        json.dumps({"_id": "d1", "title": "T", "text": "alpha"})
        + "\n"
        + json.dumps({"_id": "d2", "text": "beta"})
        + "\n"
    )
    (root / "queries.jsonl").write_text(
        json.dumps({"_id": "q1", "text": "alpha?"}) + "\n" + json.dumps({"_id": "q2", "text": "x"})
    )
    (root / "qrels" / "test.tsv").write_text(qrels)
    return root


def _write_homedepot(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "products.jsonl").write_text(
        "\n".join(json.dumps({"product_uid": str(100 + i), "title": f"p{i}"}) for i in range(4))
    )
    (root / "judgments.tsv").write_text(
        "query\tproduct_uid\trelevance\n"
        "drill\t100\t3\ndrill\t101\t1\ndrill\t102\t2.33\n"
        "saw\t103\t2\nsaw\t100\t2\nsaw\t101\t2\n"
    )
    return root


def test_beir_loader_reads_graded_qrels(tmp_path: Path) -> None:
    assert load_beir(_write_beir(tmp_path)).qrels == {"q1": {"d1": 2}}


def test_beir_loader_fills_missing_title_with_empty_text(tmp_path: Path) -> None:
    assert load_beir(_write_beir(tmp_path)).corpus["d2"] == {"title": "", "text": "beta"}


def test_load_dataset_skips_queries_without_judgments_and_says_so(tmp_path: Path) -> None:
    dataset = load_dataset(_write_beir(tmp_path))
    assert (list(dataset.queries), dataset.notes[-1]) == (
        ["q1"],
        "1 queries without judgments skipped.",
    )


def test_empty_qrels_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EvalError, match="no judgments"):
        load_beir(_write_beir(tmp_path, qrels="query-id\tcorpus-id\tscore\n"))


def test_qrels_detects_trec_format(tmp_path: Path) -> None:
    path = tmp_path / "q.txt"
    path.write_text("7 0 doc9 3\n7 0 doc8 -1\n")
    assert load_qrels(path) == {"7": {"doc9": 3, "doc8": 0}}


def test_qrels_detects_beir_tsv_format(tmp_path: Path) -> None:
    path = tmp_path / "q.tsv"
    path.write_text("7\tdoc9\t3\n")
    assert load_qrels(path) == {"7": {"doc9": 3}}


def test_qrels_rejects_an_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.tsv"
    path.write_text("\n")
    with pytest.raises(EvalError, match="empty"):
        load_qrels(path)


def test_homedepot_gain_is_proportional_to_grade_minus_one() -> None:
    assert [homedepot_gain(g) for g in (1.0, 1.33, 1.5, 2.0, 2.67, 3.0)] == [0, 4, 6, 12, 20, 24]


def test_homedepot_loader_groups_judgments_by_query(tmp_path: Path) -> None:
    dataset = load_homedepot(_write_homedepot(tmp_path))
    assert dataset.qrels == {
        "hd00000": {"100": 24, "101": 0, "102": 16},
        "hd00001": {"103": 12, "100": 12, "101": 12},
    }


def test_homedepot_sample_keeps_only_queries_with_mixed_grades(tmp_path: Path) -> None:
    dataset = load_homedepot(_write_homedepot(tmp_path), max_queries=1)
    assert list(dataset.queries.values()) == ["drill"]


def test_cranfield_gain_inverts_cleverdon_codes() -> None:
    assert [cranfield_gain(c) for c in (1, 2, 3, 4, -1)] == [4, 3, 2, 1, 0]


def test_cranfield_loader_numbers_queries_by_position(tmp_path: Path) -> None:
    (tmp_path / "cran.all.1400").write_text(
        ".I 1\n.T\nwing flow\n.A\nsmith\n.W\nwing flow\nstudy of lift .\n.I 2\n.T\nx\n.W\ny\n"
    )
    (tmp_path / "cran.qry").write_text(".I 001\n.W\nlift of wings .\n.I 004\n.W\nheat\n")
    (tmp_path / "cranqrel").write_text("1 1 1\n2 2 4 \n")
    dataset = load_cranfield(tmp_path)
    assert (dataset.queries, dataset.qrels, dataset.corpus["1"]["text"]) == (
        {"1": "lift of wings .", "2": "heat"},
        {"1": {"1": 4}, "2": {"2": 1}},
        "wing flow study of lift .",
    )


def test_detect_format_names_the_expected_layouts_when_unknown(tmp_path: Path) -> None:
    with pytest.raises(EvalError, match="BEIR"):
        detect_format(tmp_path)


def test_detect_format_recognises_home_depot(tmp_path: Path) -> None:
    assert detect_format(_write_homedepot(tmp_path / "hd")) == "homedepot"
