"""`train` / `distill` input: judgments formats, graded targets, the hash split, one-line errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bridge.cli import main
from bridge.errors import TrainingError
from bridge.training.judgments import load_judgments
from bridge.training.pairs import NegativeSettings, build_pairs
from bridge.training.split import hash_fraction, split_queries


def _homedepot(tmp_path: Path, rows: list[str], products: list[dict[str, str]]) -> Path:
    folder = tmp_path / "hd"
    folder.mkdir()
    (folder / "judgments.tsv").write_text(
        "query\tproduct_uid\trelevance\n" + "".join(r + "\n" for r in rows), encoding="utf-8"
    )
    (folder / "products.jsonl").write_text(
        "".join(json.dumps(p) + "\n" for p in products), encoding="utf-8"
    )
    return folder


PRODUCTS = [
    {"product_uid": "1", "title": "DEWALT 20V cordless drill"},
    {"product_uid": "2", "title": "white porcelain dinner plates"},
    {"product_uid": "3", "title": "LED light bulb 4-pack"},
]


def test_homedepot_grades_become_graded_targets_not_zero_or_one(tmp_path: Path) -> None:
    data = _homedepot(tmp_path, ["cordless drill\t1\t3", "cordless drill\t2\t1.67"], PRODUCTS)
    judgments = load_judgments(data)
    (qid,) = judgments.queries
    targets = {pid: round(judgments.target(qid, pid), 3) for pid in judgments.gains[qid]}
    assert targets == {"1": 1.0, "2": 0.333}  # 1.67 is the average 5/3 of three grades


def test_jsonl_labels_in_zero_one_are_used_as_targets(tmp_path: Path) -> None:
    path = tmp_path / "pairs.jsonl"
    lines = [
        {"query": "drill", "passage": "cordless drill", "label": 1},
        {"query": "drill", "passage": "dinner plates", "label": 0.25},
    ]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    judgments = load_judgments(path)
    (qid,) = judgments.queries
    assert sorted(judgments.target(qid, p) for p in judgments.gains[qid]) == [0.25, 1.0]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (["cordless drill\t1\t4"], "judgments.tsv:2: relevance 4 is outside 1..3"),
        (["cordless drill\t1\tgood"], "judgments.tsv:2: relevance 'good' is not a number"),
        (["cordless drill\t99\t3"], "judgments.tsv:2: query 'cordless drill' has no passage"),
        ([], "judgments.tsv: no judgments"),
    ],
)
def test_bad_homedepot_judgments_name_file_and_line(
    tmp_path: Path, rows: list[str], message: str
) -> None:
    data = _homedepot(tmp_path, rows, PRODUCTS)
    with pytest.raises(TrainingError) as caught:
        load_judgments(data)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"query": "drill", "passage": "a drill", "label": 2}, "pairs.jsonl:1: label 2 is outside"),
        ({"query": "drill", "passage": "", "label": 1}, "pairs.jsonl:1: query 'drill' has no"),
        ({"query": "drill", "label": 1}, "pairs.jsonl:1: query 'drill' has no passage"),
        ({"passage": "a drill", "label": 1}, 'pairs.jsonl:1: missing or empty "query"'),
        ({"query": "drill", "passage": "a drill", "label": "yes"}, 'pairs.jsonl:1: "label"'),
    ],
)
def test_bad_jsonl_pairs_name_file_and_line(
    tmp_path: Path, record: dict[str, object], message: str
) -> None:
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    with pytest.raises(TrainingError) as caught:
        load_judgments(path)
    assert message in str(caught.value)


def test_empty_and_missing_judgments_name_the_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n", encoding="utf-8")
    for path, message in ((empty, "empty.jsonl: no judgments"), (tmp_path / "nope", "not found")):
        with pytest.raises(TrainingError) as caught:
            load_judgments(path)
        assert str(path) in str(caught.value)
        assert message in str(caught.value)


def test_the_hash_split_is_stable_disjoint_and_holds_out_pinned_queries() -> None:
    queries = {f"q{i}": f"query number {i}" for i in range(2000)}
    split = split_queries(queries, 0.1, pinned_texts=["Query  number 7", "query number 8"])
    again = split_queries(
        dict(reversed(queries.items())), 0.1, ["query number 7", "query number 8"]
    )
    assert split == again
    assert not set(split.train) & set(split.held_out)
    assert set(split.train) | set(split.held_out) == set(queries)
    assert {"q7", "q8"} <= set(split.held_out)
    assert split.pinned == ["q7", "q8"]
    assert 150 < len(split.held_out) < 250  # ~10 % by hash
    assert hash_fraction("Query  Number 7") == hash_fraction("query number 7")


def test_pairs_keep_graded_targets_and_add_unjudged_hits_as_hard_negatives(tmp_path: Path) -> None:
    data = _homedepot(tmp_path, ["cordless drill\t1\t3", "cordless drill\t3\t2"], PRODUCTS)
    judgments = load_judgments(data)
    (qid,) = judgments.queries
    hits = {qid: [("1", "DEWALT 20V cordless drill"), ("2", "white porcelain dinner plates")]}
    pairs = build_pairs(
        judgments,
        [qid],
        hits=hits,
        negatives=NegativeSettings(per_query=4, depth=10, target=0.1, random_per_query=0),
        seed=1,
    )
    got = sorted((p.kind, p.passage, p.target) for p in pairs)
    assert got == [
        ("hard", "white porcelain dinner plates", 0.1),
        ("judged", "DEWALT 20V cordless drill", 1.0),
        ("judged", "LED light bulb 4-pack", 0.5),
    ]


def _run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    return code, capsys.readouterr().err.strip()


def test_train_with_a_base_folder_without_weights_fails_in_one_line_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _homedepot(tmp_path, ["cordless drill\t1\t3"], PRODUCTS)
    base = tmp_path / "base"
    base.mkdir()
    (base / "config.json").write_text("{}", encoding="utf-8")
    (base / "tokenizer.json").write_text("{}", encoding="utf-8")
    out = tmp_path / "out"
    argv = ["train", "--data", str(data), "--base", str(base), "--out", str(out)]
    code, err = _run_cli(argv, capsys)
    assert (code, err.count("\n"), "Traceback" in err) == (2, 0, False)
    assert f"{base}: base checkpoint lacks model.safetensors (no weights)" in err
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base", "hd"]


def test_train_with_bad_judgments_fails_in_one_line_naming_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _homedepot(tmp_path, ["cordless drill\t1\t3", "drill\t2\t7"], PRODUCTS)
    out = tmp_path / "out"
    argv = ["train", "--data", str(data), "--base", str(tmp_path), "--out", str(out)]
    code, err = _run_cli(argv, capsys)
    assert (code, err.count("\n")) == (2, 0)
    assert f"{data / 'judgments.tsv'}:3: relevance 7 is outside 1..3" in err
    assert not out.exists()


def test_distill_with_an_empty_query_file_fails_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], nano_cross_encoder_dir: Path
) -> None:
    teacher = tmp_path / "teacher"
    shutil.copytree(nano_cross_encoder_dir, teacher)
    (teacher / "model.safetensors").write_bytes(b"")
    queries = tmp_path / "queries.txt"
    queries.write_text("\n\n", encoding="utf-8")
    out = tmp_path / "student"
    argv = ["distill", "--teacher", str(teacher), "--queries", str(queries), "--out", str(out)]
    code, err = _run_cli([*argv, "--engine", "http://127.0.0.1:9"], capsys)
    assert (code, err) == (2, f"rerank-bridge: error: {queries}: no queries")
    assert not out.exists()


def test_the_demos_100_query_sample_is_held_out_of_training(homedepot_dir: Path) -> None:
    from bridge.eval.datasets import load_homedepot
    from bridge.training.train import pinned_sample

    judgments = load_judgments(homedepot_dir)
    sample = pinned_sample(homedepot_dir, 100, 13)
    split = split_queries(judgments.queries, 0.1, sample)
    demo = set(load_homedepot(homedepot_dir, max_queries=100).queries.values())  # as the demo
    trained = {judgments.queries[q] for q in split.train}
    held = {judgments.queries[q] for q in split.held_out}
    assert (len(demo), len(split.pinned), demo & trained, demo <= held) == (100, 100, set(), True)


def test_bad_products_jsonl_names_file_and_line(tmp_path: Path) -> None:
    data = _homedepot(tmp_path, ["cordless drill\t1\t3"], PRODUCTS)
    with (data / "products.jsonl").open("a", encoding="utf-8") as handle:
        handle.write("[1, 2]\n{not json\n")
    with pytest.raises(TrainingError) as caught:
        load_judgments(data)
    assert f"{data / 'products.jsonl'}:4: expected a JSON object" in str(caught.value)


def test_teacher_scores_file_round_trips_and_bad_lines_name_file_and_line(tmp_path: Path) -> None:
    from bridge.training.distill import read_scores, write_scores

    path = tmp_path / "scores.jsonl"
    lists = [("drill", ["a drill", "a plate"]), ("bulb", ["LED bulb", "a drill", "a plate"])]
    logits = [[2.5, -3.0], [4.0, -1.0, -6.5]]
    write_scores(path, lists, logits)
    assert read_scores(path) == (lists, logits)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.jsonl"]
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps({"query": "x", "passages": ["a", "b"], "teacher": [1.0]}) + "\n")
    with pytest.raises(TrainingError) as caught:
        read_scores(path)
    assert f"{path}:3: expected {{query, passages, teacher}}" in str(caught.value)


@pytest.mark.parametrize(
    ("count", "layers", "kept"),
    [(2, None, [0, 5]), (3, None, [0, 2, 5]), (2, (1, 0), [0, 1]), (2, (6,), None)],
)
def test_the_student_keeps_spread_or_named_teacher_layers(
    count: int, layers: tuple[int, ...] | None, kept: list[int] | None
) -> None:
    from bridge.training.distill import DistillOptions, student_layers

    options = DistillOptions(
        Path("t"), Path("q"), Path("o"), "http://x", student_layers=count, layers=layers
    )
    if kept is None:
        with pytest.raises(TrainingError, match=r"the teacher has layers 0\.\.5"):
            student_layers(6, options)
    else:
        assert student_layers(6, options) == kept


def test_the_head_is_the_pooler_and_the_classifier() -> None:
    from bridge.training.torch_model import is_head

    names = ["bert.pooler.dense.weight", "classifier.bias", "bert.encoder.layer.5.attention.x"]
    assert [is_head(n) for n in names] == [True, True, False]
