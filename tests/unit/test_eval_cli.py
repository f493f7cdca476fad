"""Argument checks of `rerank-bridge eval` that fail before any engine is contacted."""

from __future__ import annotations

import pytest

from bridge.cli import main


def _error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["eval", *argv])
    return code, capsys.readouterr().err.strip()


def test_engine_url_is_required(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RERANK_BRIDGE_ES_URL", raising=False)
    assert _error(["--dataset", "x"], capsys) == (
        2,
        "rerank-bridge: error: --engine URL is required (or set RERANK_BRIDGE_ES_URL)",
    )


def test_dataset_and_index_are_exclusive(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _error(["--engine", "http://x", "--dataset", "d", "--index", "i"], capsys)
    assert (code, "either --dataset" in err) == (2, True)


def test_index_needs_queries_and_qrels(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _error(["--engine", "http://x", "--index", "i"], capsys)
    assert (code, "--queries FILE and --qrels FILE" in err) == (2, True)


def test_window_must_be_integers(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _error(["--engine", "http://x", "--dataset", "d", "--window", "20,x"], capsys)
    assert (code, "--window expects integers" in err) == (2, True)


def test_unknown_fusion_method_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _error(["--engine", "http://x", "--dataset", "d", "--fusion", "magic"], capsys)
    assert (code, "'magic'" in err) == (2, True)


def test_fusion_json_must_parse(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _error(["--engine", "http://x", "--dataset", "d", "--fusion", "{bad"], capsys)
    assert (code, "not valid JSON" in err) == (2, True)


def test_unreachable_engine_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _error(["--engine", "http://127.0.0.1:9", "--dataset", "d"], capsys)
    assert (code, len(err.splitlines()), "cannot reach an engine" in err) == (2, 1, True)
