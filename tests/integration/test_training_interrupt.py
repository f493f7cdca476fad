"""Ctrl-C and SIGTERM in the middle of a real `rerank-bridge train` leave nothing half-written.

A real subprocess trains from all-MiniLM-L6-v2 against the real engine (its temporary index of the
passages holds the BM25 hard negatives); once its progress bar shows the fit running, the test
sends SIGINT (Ctrl-C) or SIGTERM (`kill`, a CI timeout). Expected: exit 130 with one line
("interrupted"), no traceback, ``--out`` exactly as it was (a previous model, replaced only at the
very end with --overwrite), no ``.<out>.partial-*`` staging folder beside it, and the temporary
index gone.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.support.build_models import minilm_checkpoint_dir

pytest.importorskip("torch", reason="the `train` extra is not installed")
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]

STARTUP_S = 300.0  # importing torch and indexing on a loaded 2-core machine
EXIT_S = 120.0


def _pairs_file(folder: Path, name: str) -> Path:
    """Enough pairs (1,200) that one epoch lasts minutes: the signal lands in the fit."""
    lines = []
    for number in range(300):
        query = f"bracket model {number}"
        for grade, passage in enumerate(
            (
                f"garden hose {number} metres",
                f"angle bracket {number} steel",
                f"bracket model {number} galvanised steel",
                f"corner bracket {number}",
            )
        ):
            lines.append(json.dumps({"query": query, "passage": passage, "label": grade / 3}))
    path = folder / f"{name}.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _listen_to_ctrl_c() -> None:
    """Runs in the child before exec. A shell starts background jobs (`make test &`, a CI step run
    in a subshell) with SIGINT ignored, Python keeps an inherited SIG_IGN, and the child would
    then finish training as if Ctrl-C had never come: give it the terminal's default."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _command() -> list[str]:
    script = Path(sys.executable).with_name("rerank-bridge")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from bridge.cli import main; sys.exit(main())"]


class _Stderr:
    """Collects the child's stderr on a thread (tqdm redraws with carriage returns)."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.text = ""
        self._thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self._thread.start()

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stderr is not None
        for chunk in iter(lambda: process.stderr.read(1), ""):  # type: ignore[union-attr]
            self.text += chunk

    def wait_for(self, marker: str, process: subprocess.Popen[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while marker not in self.text:
            if process.poll() is not None:
                pytest.fail(f"train ended ({process.returncode}) before {marker!r}:\n{self.text}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {marker!r} after {timeout:.0f} s:\n{self.text}")
            time.sleep(0.2)

    def join(self) -> None:
        self._thread.join(timeout=10)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupted_train_leaves_out_as_it_was(
    sig: signal.Signals, es_url: str, es_client: Any, tmp_path: Path
) -> None:
    token = uuid.uuid4().hex[:8]
    data = _pairs_file(tmp_path, f"interrupt-{token}")
    out = tmp_path / "model"
    out.mkdir()
    (out / "model.onnx").write_text("the previous model", encoding="utf-8")
    before = sorted(p.name for p in tmp_path.iterdir())
    command = [
        *_command(), "train", "--data", str(data), "--base", str(minilm_checkpoint_dir()),
        "--out", str(out), "--overwrite", "--engine", es_url, "--batch-size", "4",
        "--threads", "1", "--eval-queries", "5",
    ]  # fmt: skip
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        preexec_fn=_listen_to_ctrl_c,
    )
    stderr = _Stderr(process)
    try:
        stderr.wait_for("training:", process, STARTUP_S)  # the fit's progress bar
        time.sleep(3)
        assert process.poll() is None, stderr.text
        staged = [p for p in tmp_path.iterdir() if p.name.startswith(".model.partial-")]
        assert len(staged) == 1
        assert any(staged[0].iterdir())  # something half-built to clean up
        temporary = f"rerank-bridge-train-interrupt-{token}-*"
        assert len(es_client.indices.get(index=temporary)) == 1
        process.send_signal(sig)
        code = process.wait(timeout=EXIT_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    stderr.join()
    lines = [line for line in stderr.text.replace("\r", "\n").splitlines() if line.strip()]
    assert (code, lines[-1]) == (130, "rerank-bridge: interrupted"), stderr.text
    assert "Traceback" not in stderr.text
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no .model.partial-*/.old-*
    assert [p.name for p in out.iterdir()] == ["model.onnx"]
    assert (out / "model.onnx").read_text(encoding="utf-8") == "the previous model"
    assert es_client.indices.get(index=temporary, allow_no_indices=True) == {}
