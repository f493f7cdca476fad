"""Node state is kept per project, so one checkout never sees another's node."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.devtools.localnode.state import nodes_dir, project_root


def _clone(base: Path, name: str) -> Path:
    root = base / name
    (root / ".git").mkdir(parents=True)
    (root / "sub" / "dir").mkdir(parents=True)
    return root


def test_two_clones_get_different_node_dirs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RERANK_BRIDGE_NODES_DIR", raising=False)
    first, second = _clone(tmp_path / "a", "rerank-bridge"), _clone(tmp_path / "b", "rerank-bridge")
    monkeypatch.chdir(first)
    first_dir = nodes_dir()
    monkeypatch.chdir(second)
    assert nodes_dir() != first_dir


def test_a_subfolder_belongs_to_its_checkout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RERANK_BRIDGE_NODES_DIR", raising=False)
    root = _clone(tmp_path, "clone")
    monkeypatch.chdir(root / "sub" / "dir")
    assert project_root() == root.resolve()
