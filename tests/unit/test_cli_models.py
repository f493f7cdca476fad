"""`rerank-bridge models ...`: output, exit codes, and no traceback for bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bridge.cli import main
from bridge.models import KNOWN_MODELS, known_model_names
from tests.unit._model_store_helpers import Reply, flashrank_files, model_zip, serve, write_files

NAME = "ms-marco-TinyBERT-L-2-v2"
ONNX = KNOWN_MODELS[NAME].onnx_file
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RERANK_BRIDGE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("RERANK_BRIDGE_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)


def _run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The real entry point in a child process, as a user would run it."""
    return subprocess.run(
        [sys.executable, "-m", "bridge", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_list_shows_every_known_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in known_model_names())


def test_list_reports_cached_models(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_files(tmp_path / "cache" / NAME, flashrank_files(ONNX))
    main(["models", "list", "--json"])
    rows = {row["name"]: row["cached"] for row in json.loads(capsys.readouterr().out)["models"]}
    assert rows == {name: name == NAME for name in KNOWN_MODELS}


def test_download_prints_the_model_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with serve(Reply(model_zip(flashrank_files(ONNX), folder=NAME))) as server:
        monkeypatch.setenv("RERANK_BRIDGE_MODEL_URL", server.url)
        code = main(["models", "download", NAME, "--cache-dir", str(tmp_path / "c"), "--quiet"])
    assert (code, capsys.readouterr().out.strip()) == (0, str(tmp_path / "c" / NAME))


def test_info_describes_a_flashrank_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_files(tmp_path / "m", flashrank_files(ONNX))
    main(["models", "info", str(tmp_path / "m"), "--json"])
    info = json.loads(capsys.readouterr().out)
    assert (info["kind"], info["output"], info["max_length"]) == ("cross", "logits", 512)


def test_info_text_names_kind_and_outputs(
    homedepot_cross_encoder_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["models", "info", str(homedepot_cross_encoder_dir)])
    out = capsys.readouterr().out
    assert ("cross-encoder" in out, "logits: float32[batch, 1]" in out) == (True, True)


def test_unknown_model_exits_2_with_the_known_names(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["models", "info", "no-such-model"])
    err = capsys.readouterr().err
    assert (code, all(name in err for name in known_model_names())) == (2, True)


def test_info_of_an_uncached_name_suggests_download(capsys: pytest.CaptureFixture[str]) -> None:
    main(["models", "info", NAME])
    assert f"rerank-bridge models download {NAME}" in capsys.readouterr().err


def test_convert_without_the_extra_explains_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "bridge.models.convert", None)  # import now fails
    code = main(["models", "convert", str(tmp_path), "--out", str(tmp_path / "out")])
    assert (code, "rerank-bridge[convert]" in capsys.readouterr().err) == (2, True)


def test_convert_of_a_missing_directory_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["models", "convert", str(tmp_path / "none"), "--out", str(tmp_path / "o")])
    assert (code, "does not exist" in capsys.readouterr().err) == (2, True)


@pytest.mark.slow
def test_convert_writes_a_model_that_info_can_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.support.build_models import minilm_checkpoint_dir

    code = main(["models", "convert", str(minilm_checkpoint_dir()), "--out", str(tmp_path / "o")])
    out = capsys.readouterr().out
    assert (code, "bi-encoder" in out, (tmp_path / "o" / "model.onnx").is_file()) == (0, True, True)


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["models", "info", "no-such-model"], {}),
        (["models", "info", "/nonexistent/model/dir"], {}),
        (["models", "download", "no-such-model"], {}),
        (["models", "download", NAME], {"RERANK_BRIDGE_OFFLINE": "1"}),
        (["models", "download", NAME], {"RERANK_BRIDGE_MODEL_URL": "http://127.0.0.1:9/x"}),
        (["models", "convert", "/nonexistent", "--out", "/nonexistent-out"], {}),
        (["models", "frobnicate"], {}),
    ],
    ids=[
        "unknown-name",
        "missing-dir",
        "download-unknown",
        "offline",
        "unreachable",
        "convert",
        "bad-cmd",
    ],
)
def test_bad_input_reaches_the_user_without_a_traceback(
    args: list[str], env: dict[str, str], tmp_path: Path
) -> None:
    result = _run_cli(*args, env={"RERANK_BRIDGE_CACHE": str(tmp_path), **env})
    assert (result.returncode, "Traceback" in result.stderr) == (2, False), result.stderr


def test_corrupt_model_file_is_a_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "model.onnx").write_bytes(b"\x00garbage")
    (tmp_path / "tokenizer.json").write_text("{}")
    result = _run_cli("models", "info", str(tmp_path))
    assert (result.returncode, result.stderr.count("\n")) == (2, 1), result.stderr
