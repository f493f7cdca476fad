"""Which model the eval and the demo pick when none is named."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.config import DEFAULT_MODEL
from bridge.eval import choice


@pytest.fixture
def empty_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No shared folder, no built models, no overrides."""
    monkeypatch.setattr(choice, "REPO_ROOT", tmp_path / "repo")
    monkeypatch.setenv("RERANK_BRIDGE_SHARED", str(tmp_path / "shared"))
    for name in ("RERANK_BRIDGE_MODEL", "RERANK_BRIDGE_EMBEDDING_MODEL"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def _model_dir(path: Path, onnx: str = "model.onnx") -> Path:
    path.mkdir(parents=True)
    (path / onnx).write_bytes(b"")
    (path / "tokenizer.json").write_text("{}")
    return path


def test_explicit_model_variable_wins(empty_world: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _model_dir(empty_world / "shared" / "models" / "ce")
    monkeypatch.setenv("RERANK_BRIDGE_MODEL", "/models/mine")
    assert choice.default_models() == ["/models/mine"]


def test_shared_cross_encoders_come_before_the_bi_encoder(empty_world: Path) -> None:
    ce = _model_dir(empty_world / "shared" / "models" / "ce")
    bi = _model_dir(empty_world / "repo" / ".cache" / "models" / choice.BI_ENCODER_NAME)
    assert choice.default_models() == [str(ce), str(bi)]


def test_flashrank_nano_when_nothing_is_local(empty_world: Path) -> None:
    assert choice.default_models() == [DEFAULT_MODEL]


def test_display_name_of_a_directory_is_its_name(tmp_path: Path) -> None:
    assert choice.display_name(str(_model_dir(tmp_path / "my-ce"))) == "my-ce"
