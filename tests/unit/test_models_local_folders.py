"""`rerank-bridge models list` shows the local model folders it knows, with kind and size."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def _list_json(env: dict[str, str], cwd: Path) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-m", "bridge", "models", "list", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={**env, "PYTHONPATH": str(REPO_ROOT)},
        check=True,
    )
    return dict(json.loads(result.stdout))


@pytest.fixture
def models_env(
    tmp_path: Path, nano_cross_encoder_dir: Path, bi_encoder_dir: Path
) -> dict[str, str]:
    mine = tmp_path / "mine"
    mine.mkdir()
    shutil.copytree(nano_cross_encoder_dir, mine / "my-cross")
    (mine / "not-a-model").mkdir()
    (mine / "not-a-model" / "notes.txt").write_text("hello\n")
    shared = tmp_path / "shared"
    (shared / "models").mkdir(parents=True)
    (shared / "models" / "my-bi").symlink_to(bi_encoder_dir)
    return {
        **os.environ,
        "RERANK_BRIDGE_MODELS": str(mine),
        "RERANK_BRIDGE_SHARED": str(shared),
        "RERANK_BRIDGE_CACHE": str(tmp_path / "cache"),
    }


def test_lists_model_folders_with_kind_size_and_source(
    models_env: dict[str, str], tmp_path: Path
) -> None:
    local = _list_json(models_env, tmp_path)["local"]
    assert isinstance(local, list)
    rows = {
        Path(row["path"]).name: (row["kind"], row["source"], row["size_mb"] > 1) for row in local
    }
    assert rows == {
        "my-cross": ("cross", "RERANK_BRIDGE_MODELS", True),
        "my-bi": ("bi", "shared", True),
    }


def test_lists_the_built_test_models_of_the_project(
    models_env: dict[str, str], nano_cross_encoder_dir: Path
) -> None:
    local = _list_json(models_env, REPO_ROOT)["local"]
    assert isinstance(local, list)
    assert str(nano_cross_encoder_dir) in {row["path"] for row in local}
