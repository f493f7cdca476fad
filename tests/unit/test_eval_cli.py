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


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("a@100>b@200", "[--model[1].window_size] 200 exceeds the previous phase's window_size"),
        ("a>b@20", "--model phase 'a' is not MODEL@WINDOW"),
        ("a@x>b@20", "--model phase 'a@x' is not MODEL@WINDOW"),
        ('[{"model": "a"}]', "[--model[0].window_size] is required"),
        ("[{bad", "--model phases are not valid JSON"),
    ],
)
def test_bad_cascades_are_named_before_any_engine_is_contacted(
    model: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = _error(["--engine", "http://x", "--dataset", "d", "--model", model], capsys)
    assert (code, message in err) == (2, True)


def test_a_cascade_model_spec_reads_as_phases() -> None:
    from bridge.cli.eval import model_spec

    shorthand = model_spec("bi@100>/models/ce@20")
    as_json = model_spec(
        '[{"model": "bi", "window_size": 100, "fusion": "linear"},'
        ' {"model": "/models/ce", "window_size": 20}]'
    )
    assert not isinstance(shorthand, str)
    assert not isinstance(as_json, str)
    assert [(p.model, p.window_size) for p in shorthand] == [("bi", 100), ("/models/ce", 20)]
    assert [p.fusion and p.fusion.method for p in as_json] == ["linear", None]
    assert model_spec("plain-model") == "plain-model"


def test_a_cascade_phase_names_its_stored_vector_field_in_the_rerank_section() -> None:
    from bridge.cli.eval import model_spec
    from bridge.config import RerankConfig

    phases = model_spec(
        '[{"model": "bi", "window_size": 100, "vector_field": "title_vector"},'
        ' {"model": "ce", "window_size": 20}]'
    )
    assert not isinstance(phases, str)
    assert [p.vector_field for p in phases] == ["title_vector", None]
    # what the eval sends as the rerank section (phase.to_dict) keeps the field
    section = {"phases": [p.to_dict() for p in phases]}
    assert RerankConfig.from_value(section).vector_fields == ("title_vector",)
