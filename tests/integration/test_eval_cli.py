"""`rerank-bridge eval` against a real Elasticsearch: outputs, clean-up and one-line errors."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.cli import main
from bridge.errors import EvalError
from bridge.eval import systems as runner_module

pytestmark = pytest.mark.integration

DOCS = {
    "d1": "cordless drill with two batteries",
    "d2": "hammer drill bits set",
    "d3": "garden hose reel",
    "d4": "copper pipe fitting",
}


@pytest.fixture
def tiny_index(es_client: Any) -> Iterator[str]:
    name = f"test-eval-{uuid.uuid4().hex[:8]}"
    es_client.indices.create(
        index=name, mappings={"properties": {"title": {"type": "text", "analyzer": "standard"}}}
    )
    for doc_id, title in DOCS.items():
        es_client.index(index=name, id=doc_id, document={"title": title})
    es_client.indices.refresh(index=name)
    yield name
    es_client.indices.delete(index=name, ignore_unavailable=True)


@pytest.fixture
def queries_file(tmp_path: Path) -> Path:
    path = tmp_path / "queries.tsv"
    path.write_text("q1\tcordless drill\nq2\tgarden hose\nq3\tcopper pipe\n")
    return path


def _eval_index(es_url: str, index: str, queries: Path, qrels: Path, out: Path, model: Path) -> int:
    return main(
        [
            "eval",
            "--engine",
            es_url,
            "--index",
            index,
            "--queries",
            str(queries),
            "--qrels",
            str(qrels),
            "--model",
            str(model),
            "--window",
            "3",
            "--out",
            str(out),
            "--no-progress",
        ]
    )


def test_missing_index_is_a_one_line_error(
    es_url: str,
    queries_file: Path,
    tmp_path: Path,
    nano_cross_encoder_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    qrels = tmp_path / "qrels.txt"
    qrels.write_text("q1 0 d1 1\n")
    code = _eval_index(
        es_url, "no-such-index-xyz", queries_file, qrels, tmp_path / "o", nano_cross_encoder_dir
    )
    err = capsys.readouterr().err
    assert (code, err.strip().splitlines()) == (
        2,
        ["rerank-bridge: error: index 'no-such-index-xyz' does not exist"],
    )


def test_empty_qrels_file_is_a_one_line_error(
    es_url: str,
    tiny_index: str,
    queries_file: Path,
    tmp_path: Path,
    nano_cross_encoder_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    qrels = tmp_path / "empty.txt"
    qrels.write_text("")
    code = _eval_index(
        es_url, tiny_index, queries_file, qrels, tmp_path / "o", nano_cross_encoder_dir
    )
    err = capsys.readouterr().err
    assert (code, "Traceback" in err, "qrels file is empty" in err) == (2, False, True)


def test_queries_without_judgments_are_counted_in_the_report(
    es_url: str, tiny_index: str, queries_file: Path, tmp_path: Path, nano_cross_encoder_dir: Path
) -> None:
    qrels = tmp_path / "qrels.txt"
    qrels.write_text("q1 0 d1 2\nq2 0 d3 1\n")
    out = tmp_path / "out"
    assert _eval_index(es_url, tiny_index, queries_file, qrels, out, nano_cross_encoder_dir) == 0
    report = json.loads((out / "results.json").read_text())
    assert (report["queries"], report["warnings"][0]) == (
        2,
        "1 queries have no judgments and were skipped",
    )


def test_index_eval_finds_the_relevant_docs_with_bm25(
    es_url: str, tiny_index: str, queries_file: Path, tmp_path: Path, nano_cross_encoder_dir: Path
) -> None:
    qrels = tmp_path / "qrels.txt"
    qrels.write_text("q1 0 d1 2\nq2 0 d3 1\nq3 0 d4 1\n")
    out = tmp_path / "out"
    _eval_index(es_url, tiny_index, queries_file, qrels, out, nano_cross_encoder_dir)
    bm25 = json.loads((out / "results.json").read_text())["systems"][0]
    assert (bm25["system"], bm25["metrics"]["mrr@10"]) == ("bm25", 1.0)


def test_index_eval_runs_a_cascade_through_the_wrapper(
    es_url: str,
    tiny_index: str,
    queries_file: Path,
    tmp_path: Path,
    nano_cross_encoder_dir: Path,
    bi_encoder_dir: Path,
) -> None:
    qrels = tmp_path / "qrels.txt"
    qrels.write_text("q1 0 d1 2\nq2 0 d3 1\nq3 0 d4 1\n")
    out = tmp_path / "out"
    cascade = f"{bi_encoder_dir}@4>{nano_cross_encoder_dir}@2"
    code = main(
        [
            "eval", "--engine", es_url, "--index", tiny_index, "--queries", str(queries_file),
            "--qrels", str(qrels), "--model", cascade, "--window", "3", "--out", str(out),
            "--no-progress",
        ]
    )  # fmt: skip
    systems = json.loads((out / "results.json").read_text())["systems"]
    cascades = [s for s in systems if s["model"] and ">" in s["model"]]
    assert code == 0
    # one cascade system at its own first window (not --window's), every query reranked
    assert [(s["model"], s["window"], s["fallbacks"]) for s in cascades] == [
        ("all-MiniLM-L6-v2@4>cross-nano@2", 4, 0)
    ]


def _indices(es_client: Any) -> set[str]:
    return set(
        es_client.indices.get(index="rerank-bridge-eval-cranfield-*", expand_wildcards="all")
    )


@pytest.fixture(scope="module")
def cranfield_run(
    es_url: str, cranfield_dir: Path, nano_cross_encoder_dir: Path, tmp_path_factory: Any
) -> tuple[int, Path]:
    out = tmp_path_factory.mktemp("cranfield")
    code = main(
        [
            "eval",
            "--engine",
            es_url,
            "--dataset",
            str(cranfield_dir),
            "--model",
            str(nano_cross_encoder_dir),
            "--window",
            "5,10",
            "--max-queries",
            "5",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    return code, out


def test_dataset_eval_writes_results_table_and_plots(cranfield_run: tuple[int, Path]) -> None:
    code, out = cranfield_run
    written = sorted(p.name for p in out.iterdir())
    assert (code, written) == (
        0,
        ["ndcg_delta.png", "quality_latency.png", "results.json", "results.md"],
    )


def test_dataset_eval_runs_bm25_and_each_window(cranfield_run: tuple[int, Path]) -> None:
    systems = json.loads((cranfield_run[1] / "results.json").read_text())["systems"]
    assert [(s["system"], s["window"]) for s in systems] == [
        ("bm25", None),
        ("bm25+rerank", 5),
        ("bm25+rerank", 10),
    ]


def test_dataset_eval_deletes_its_temporary_index(
    cranfield_run: tuple[int, Path], es_client: Any
) -> None:
    assert _indices(es_client) == set()


def test_temporary_index_is_deleted_when_the_eval_fails(
    es_url: str,
    es_client: Any,
    cranfield_dir: Path,
    nano_cross_encoder_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    seen: list[set[str]] = []

    def failing_run(self: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(_indices(es_client))
        raise EvalError("injected failure")

    monkeypatch.setattr(runner_module.EvalRunner, "run", failing_run)
    args = ["--model", str(nano_cross_encoder_dir), "--out", str(tmp_path), "--no-progress"]
    code = main(["eval", "--engine", es_url, "--dataset", str(cranfield_dir), *args])
    assert (code, len(seen[0]), _indices(es_client)) == (2, 1, set())


@pytest.fixture
def tiny_vector_index(es_client: Any, bi_encoder_dir: Path) -> Iterator[str]:
    from bridge.scoring import load_scorer

    embed = load_scorer(bi_encoder_dir).embed
    vectors = embed(list(DOCS.values()))
    name = f"test-eval-vec-{uuid.uuid4().hex[:8]}"
    es_client.indices.create(
        index=name,
        mappings={
            "properties": {
                "title": {"type": "text", "analyzer": "standard"},
                "embedding": {"type": "dense_vector", "dims": int(vectors.shape[1])},
            }
        },
    )
    for (doc_id, title), vector in zip(DOCS.items(), vectors, strict=True):
        document = {"title": title, "embedding": [float(x) for x in vector]}
        es_client.index(index=name, id=doc_id, document=document)
    es_client.indices.refresh(index=name)
    yield name
    es_client.indices.delete(index=name, ignore_unavailable=True)


def test_index_with_vectors_adds_knn_and_hybrid_systems(
    es_url: str,
    tiny_vector_index: str,
    queries_file: Path,
    tmp_path: Path,
    nano_cross_encoder_dir: Path,
    bi_encoder_dir: Path,
) -> None:
    qrels = tmp_path / "qrels.txt"
    qrels.write_text("q1 0 d1 2\nq2 0 d3 1\n")
    out = tmp_path / "out"
    models = ["--embedding-model", str(bi_encoder_dir), "--model", str(nano_cross_encoder_dir)]
    files = ["--queries", str(queries_file), "--qrels", str(qrels), "--out", str(out)]
    options = ["--window", "3", "--no-progress"]
    code = main(
        ["eval", "--engine", es_url, "--index", tiny_vector_index, *files, *models, *options]
    )
    systems = json.loads((out / "results.json").read_text())["systems"]
    assert (code, [s["system"] for s in systems]) == (
        0,
        ["bm25", "knn", "bm25+rerank", "hybrid+rerank"],
    )


def test_eval_runs_on_opensearch(
    os_url: str, cranfield_dir: Path, nano_cross_encoder_dir: Path, tmp_path: Path
) -> None:
    args = ["--model", str(nano_cross_encoder_dir), "--max-queries", "3", "--window", "5"]
    where = ["--dataset", str(cranfield_dir), "--out", str(tmp_path), "--no-progress"]
    code = main(["eval", "--engine", os_url, *where, *args])
    report = json.loads((tmp_path / "results.json").read_text())
    assert (code, report["engine"], len(report["systems"])) == (0, "opensearch", 2)
