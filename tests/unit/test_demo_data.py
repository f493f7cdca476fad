"""`make demo` checks its data first and stops at once, saying what it needs."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from bridge.devtools.demo_data import REQUIRED, problem

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_the_problem_names_each_missing_file_and_the_variable(tmp_path: Path) -> None:
    message = problem(tmp_path) or ""
    assert [name in message for name in REQUIRED] + ["RERANK_BRIDGE_SHARED" in message] == [
        True
    ] * (len(REQUIRED) + 1)


def test_no_problem_when_the_required_files_exist(tmp_path: Path) -> None:
    for name in REQUIRED:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x\n")
    assert problem(tmp_path) is None


def test_make_demo_without_data_stops_within_ten_seconds_saying_what_it_needs(
    tmp_path: Path,
) -> None:
    env = {**os.environ, "RERANK_BRIDGE_SHARED": str(tmp_path / "nowhere")}
    started = time.monotonic()
    result = subprocess.run(
        ["make", "--no-print-directory", "demo"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert (result.returncode != 0, elapsed < 10, "products.jsonl" in result.stderr) == (
        True,
        True,
        True,
    ), (elapsed, result.stdout, result.stderr)
