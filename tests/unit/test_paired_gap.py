"""benchmarks/paired_gap.py: its interval and p-value say what a paired comparison should."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.support.benchmark_scripts import BENCHMARKS, load_benchmark


def script() -> ModuleType:
    return load_benchmark("paired_gap")


def run_script(
    report: dict[str, object], folder: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    """The script run on ``report`` written as results.json in ``folder``."""
    path = folder / "results.json"
    path.write_text(json.dumps(report), encoding="utf-8")
    command = [sys.executable, str(BENCHMARKS / "paired_gap.py"), str(path), *args]
    return subprocess.run(command, capture_output=True, text=True)


def test_a_gap_every_query_shares_is_certain() -> None:
    a = {f"q{i}": 0.5 + (i % 7) / 20 for i in range(60)}
    b = {q: v - 0.1 for q, v in a.items()}
    figures = script().paired_gap(a, b, 2000, 1)
    assert figures["mean_gap"] == 0.1
    assert figures["ci95"] == [0.1, 0.1]
    assert figures["p_randomization"] < 0.001
    assert (figures["a_wins"], figures["b_wins"]) == (60, 0)


def test_a_gap_of_a_few_lucky_queries_is_not() -> None:
    a = {f"q{i}": 0.4 for i in range(100)}
    b = dict(a)
    for i in range(3):  # three queries where A happens to do much better
        a[f"q{i}"] = 0.9
    figures = script().paired_gap(a, b, 4000, 2)
    assert figures["mean_gap"] == 0.015
    low, high = figures["ci95"]
    assert low <= 0.0 < 0.015 < high  # the interval holds 0
    assert figures["p_randomization"] > 0.1
    assert figures["ties"] == 97


def test_reads_an_eval_report_per_window(tmp_path: Path) -> None:
    def system(model: str, window: int, values: list[float]) -> dict[str, object]:
        per_query = {f"q{i}": {"ndcg@10": v} for i, v in enumerate(values)}
        return {"system": "bm25+rerank", "model": model, "window": window, "per_query": per_query}

    report = {
        "systems": [
            {"system": "bm25", "model": None, "window": None, "per_query": {}},
            system("/m/trained", 20, [0.6, 0.7, 0.8]),
            system("/m/shared-ce", 20, [0.5, 0.7, 0.9]),
            system("/m/trained", 50, [0.6, 0.6, 0.6]),
            system("/m/shared-ce", 50, [0.5, 0.5, 0.5]),
        ]
    }
    run = run_script(report, tmp_path, "--a", "trained", "--b", "shared")
    assert run.returncode == 0, run.stderr
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    assert [line["window"] for line in lines] == [20, 50]
    assert lines[0]["mean_gap"] == 0.0
    assert (lines[0]["a_wins"], lines[0]["b_wins"], lines[0]["ties"]) == (1, 1, 1)
    assert lines[1]["mean_gap"] == 0.1


def test_a_name_that_matches_two_models_is_refused(tmp_path: Path) -> None:
    report = {
        "systems": [
            {"system": "bm25+rerank", "model": "/m/a1", "window": 20, "per_query": {}},
            {"system": "bm25+rerank", "model": "/m/a2", "window": 20, "per_query": {}},
        ]
    }
    run = run_script(report, tmp_path, "--a", "/m/a", "--b", "a2")
    assert run.returncode != 0
    assert "matches 2 models" in run.stderr


def test_subsets_count_how_often_a_sample_says_what_the_whole_set_says() -> None:
    module = script()
    queries = [f"q{i}" for i in range(200)]
    # at window 20 A is ahead on every query; at 50 ahead on half of them by 0.1, behind on the
    # other half by 0.1: a 100-query subset is ahead at 50 about half the time
    a_runs = {20: dict.fromkeys(queries, 0.6), 50: dict.fromkeys(queries, 0.5)}
    b_runs = {
        20: dict.fromkeys(queries, 0.5),
        50: {q: 0.4 if i % 2 else 0.6 for i, q in enumerate(queries)},
    }
    shares = module.subset_shares(a_runs, b_runs, 4000, 100, -0.01, 3)
    assert shares["queries"] == 200
    assert shares["a_ahead_share"]["20"] == 1.0
    assert 0.35 < shares["a_ahead_share"]["50"] < 0.55  # a gap of exactly 0 is not "ahead"
    assert shares["a_ahead_at_every_window_share"] == shares["a_ahead_share"]["50"]
    assert 0.0 < shares["gap_at_most_-0.01_share_w50"] < 0.3


def test_a_subset_larger_than_the_queries_is_refused() -> None:
    runs = {20: {"q1": 0.5, "q2": 0.4}}
    with pytest.raises(SystemExit, match="more than the 2 shared queries"):
        script().subset_shares(runs, runs, 10, 3, None, 1)


def test_a_report_without_per_query_figures_is_refused(tmp_path: Path) -> None:
    report = {"systems": [{"system": "bm25+rerank", "model": "/m/a", "window": 20}]}
    run = run_script(report, tmp_path, "--a", "/m/a", "--b", "/m/a")
    assert run.returncode == 1
    assert "without per-query ndcg@10 figures" in run.stderr
    assert "Traceback" not in run.stderr


def test_two_systems_of_one_model_at_one_window_are_refused(tmp_path: Path) -> None:
    per_query = {"q1": {"ndcg@10": 0.5}}
    report = {
        "systems": [
            {"model": "/m/a", "window": 20, "fusion": "replace", "per_query": per_query},
            {"model": "/m/a", "window": 20, "fusion": "linear", "per_query": per_query},
            {"model": "/m/b", "window": 20, "fusion": "replace", "per_query": per_query},
        ]
    }
    run = run_script(report, tmp_path, "--a", "/m/a", "--b", "/m/b")
    assert run.returncode == 1
    assert "more than one system at window 20" in run.stderr


def test_models_without_a_common_window_are_refused(tmp_path: Path) -> None:
    per_query = {"q1": {"ndcg@10": 0.5}}
    report = {
        "systems": [
            {"model": "/m/a", "window": 20, "per_query": per_query},
            {"model": "/m/b", "window": 50, "per_query": per_query},
        ]
    }
    run = run_script(report, tmp_path, "--a", "/m/a", "--b", "/m/b")
    assert run.returncode == 1
    assert "not run at a common window" in run.stderr
