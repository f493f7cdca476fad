"""onnxruntime's two irrelevant warnings are dropped at our call sites; nothing else is.

Run in a child process: pytest installs its own root handlers, and the point is what a plain
program (no logging configured) prints.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

DROPPED = """
import logging
from bridge.models.ort_log_noise import (
    OPTIMIZER_LOGGER, PRE_PROCESSING, PRODUCER_MISMATCH, dropped_ort_messages)
with dropped_ort_messages(PRE_PROCESSING, PRODUCER_MISMATCH, loggers=("", OPTIMIZER_LOGGER)):
    logging.warning(PRE_PROCESSING + ". Refer to example")
    logging.getLogger(OPTIMIZER_LOGGER).warning(PRODUCER_MISMATCH + ': Expected "pytorch"')
    logging.getLogger(OPTIMIZER_LOGGER).warning("a warning that still matters")
print("root handlers after:", len(logging.getLogger().handlers))
"""

QUANTIZE = """
import sys
from pathlib import Path
from bridge.models.convert import quantize
quantize(Path(sys.argv[1]) / "model.onnx", Path(sys.argv[2]) / "q.onnx")
print("quantized", (Path(sys.argv[2]) / "q.onnx").stat().st_size > 0)
"""


def _run(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO_ROOT,
        check=True,
    )


def test_only_the_two_messages_are_dropped_and_logging_stays_unconfigured() -> None:
    result = _run(DROPPED)
    assert (result.stderr.strip(), result.stdout.strip()) == (
        "a warning that still matters",
        "root handlers after: 0",
    )


def test_quantizing_prints_no_pre_processing_advice(bi_encoder_dir: Path, tmp_path: Path) -> None:
    result = _run(QUANTIZE, str(bi_encoder_dir), str(tmp_path))
    assert ("pre-processing" in result.stderr + result.stdout, result.stdout.strip()) == (
        False,
        "quantized True",
    )


LOAD = """
import sys
from bridge import load_scorer
print(len(load_scorer(sys.argv[1]).embed(["cordless drill"])[0]))
"""


def test_first_load_of_an_fp32_model_prints_no_producer_warning(
    bi_encoder_dir: Path, tmp_path: Path
) -> None:
    import shutil

    copy = tmp_path / "bi"
    # a fresh copy without the optimized graph, so this load runs the transformer optimizer
    shutil.copytree(bi_encoder_dir, copy, ignore=shutil.ignore_patterns("*.optimized-*"))
    result = _run(LOAD, str(copy))
    assert (result.stderr.strip(), result.stdout.strip()) == ("", "384")
