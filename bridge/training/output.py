"""Write a model folder all at once: build it in a hidden staging folder, rename it at the end.

Ctrl-C, an error or a crash before the rename leaves ``--out`` exactly as it was (absent, or the
previous model); the staging folder is removed on the way out.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bridge.errors import TrainingError


def check_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise TrainingError(f"--out {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise TrainingError(f"--out {out} is not empty: pick another folder or pass --overwrite")


@contextmanager
def staging(out: Path) -> Iterator[Path]:
    """A scratch folder beside ``out`` (same file system, so the final rename is atomic)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def publish(built: Path, out: Path) -> None:
    """Move the finished folder ``built`` to ``out``, replacing what was there only now."""
    old: Path | None = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
    try:
        os.replace(built, out)
    except BaseException:
        if old is not None:
            os.replace(old, out)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
