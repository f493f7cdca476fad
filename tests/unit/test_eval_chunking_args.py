"""`rerank-bridge eval --chunking`: bad values fail before any engine is contacted."""

from __future__ import annotations

import pytest

from bridge.chunking import ChunkingConfig
from bridge.cli import main
from bridge.eval.systems import chunking_name


def _error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["eval", "--engine", "http://127.0.0.1:9", "--dataset", "d", *argv])
    return code, capsys.readouterr().err.strip()


def test_chunking_must_be_json_or_off(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _error(["--chunking", "{tokens: 3"], capsys)
    assert (code, "--chunking is not valid JSON" in err) == (2, True)


def test_a_bad_chunking_field_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _error(["--chunking", "off", "--chunking", '{"aggregate": "median"}'], capsys)
    assert (code, "[--chunking.aggregate]" in err, "cannot reach" in err) == (2, True, False)


def test_systems_are_labelled_by_their_chunking() -> None:
    assert (
        chunking_name(None),
        chunking_name(ChunkingConfig(tokens=64)),
        chunking_name(ChunkingConfig(tokens=64, stride=32, aggregate="mean", size=2)),
    ) == (None, "chunks 64/48 max", "chunks 64/32 mean top 2")
