"""The built cross-encoders load in FlashRank 0.2.10 itself, offline, from the same int8 files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.build_models import FLASHRANK_NAMES, NANO, SMALL, build_all

PASSAGES = [
    {"id": 1, "text": "DEWALT 20V MAX cordless drill kit"},
    {"id": 2, "text": "white porcelain dinner plates"},
]


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    import requests

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(requests, "get", refuse)
    monkeypatch.setattr(requests.Session, "request", refuse)


@pytest.mark.usefixtures("no_network")
@pytest.mark.parametrize("name", [NANO, SMALL])
def test_flashrank_scores_every_passage_offline(flashrank_cache_dir: Path, name: str) -> None:
    from flashrank import Ranker, RerankRequest

    model_name = FLASHRANK_NAMES[name][0]
    ranker = Ranker(model_name=model_name, cache_dir=str(flashrank_cache_dir), log_level="WARNING")
    ranked = ranker.rerank(
        RerankRequest(query="cordless drill", passages=[dict(p) for p in PASSAGES])
    )
    assert sorted(p["id"] for p in ranked if 0.0 < float(p["score"]) < 1.0) == [1, 2]


@pytest.mark.parametrize("name", [NANO, SMALL])
def test_flashrank_file_has_the_bytes_of_the_converted_int8_file(
    models_dir: Path, flashrank_cache_dir: Path, name: str
) -> None:
    model_name, file_name = FLASHRANK_NAMES[name]
    metadata = json.loads((models_dir / name / "rerank_bridge.json").read_text(encoding="utf-8"))
    converted = (models_dir / name / metadata["model_file"]).read_bytes()
    assert (flashrank_cache_dir / model_name / file_name).read_bytes() == converted


def test_nano_int8_file_is_in_the_real_nano_size_class(nano_cross_encoder_dir: Path) -> None:
    size_mb = (nano_cross_encoder_dir / "model_quantized.onnx").stat().st_size / 1e6
    assert 3.0 < size_mb < 6.0


def test_second_build_skips_everything(
    models_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    build_all(models_dir)
    assert "building" not in capsys.readouterr().out
