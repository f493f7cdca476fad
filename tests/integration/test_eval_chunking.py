"""`rerank-bridge eval --chunking` against a real Elasticsearch: one rerank system per value."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bridge.cli import main
from tests.integration.test_eval_cli import queries_file, tiny_index  # noqa: F401 (fixtures)

pytestmark = pytest.mark.integration


def test_each_chunking_value_is_one_more_rerank_system(
    es_url: str,
    tiny_index: str,  # noqa: F811
    queries_file: Path,  # noqa: F811
    tmp_path: Path,
    homedepot_cross_encoder_dir: Path,
) -> None:
    qrels = tmp_path / "qrels.txt"
    qrels.write_text("q1 0 d1 2\nq2 0 d3 1\n")
    out = tmp_path / "out"
    files = ["--queries", str(queries_file), "--qrels", str(qrels), "--out", str(out)]
    grid = ["--chunking", "off", "--chunking", '{"tokens": 8, "aggregate": "mean"}']
    options = ["--window", "3", "--max-length", "32", "--no-progress"]
    where = ["--engine", es_url, "--index", tiny_index, "--model", str(homedepot_cross_encoder_dir)]
    code = main(["eval", *where, *files, *grid, *options])
    systems: list[dict[str, Any]] = json.loads((out / "results.json").read_text())["systems"]
    assert (code, [(s["system"], s["chunking"], s["fallbacks"]) for s in systems]) == (
        0,
        [("bm25", None, 0), ("bm25+rerank", None, 0), ("bm25+rerank", "chunks 8/6 mean", 0)],
    )
    assert systems[2]["label"].endswith("chunks 8/6 mean")
