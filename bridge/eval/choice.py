"""Which model the eval and the demo use when none is named.

Offline machines have no hub: `RERANK_BRIDGE_MODEL=/path` wins, then the cross-encoders in
`../shared/models/` beside the clone, then the project-built bi-encoder; with network access the
FlashRank nano model is the fallback.
"""

from __future__ import annotations

import os
from pathlib import Path

from bridge.config import DEFAULT_MODEL

REPO_ROOT = Path(__file__).resolve().parents[2]
BI_ENCODER_NAME = "all-MiniLM-L6-v2"


def shared_dir() -> Path:
    override = os.environ.get("RERANK_BRIDGE_SHARED")
    return Path(override) if override else REPO_ROOT.parent / "shared"


def offline() -> bool:
    flags = ("HF_HUB_OFFLINE", "RERANK_BRIDGE_OFFLINE")
    return any(os.environ.get(v, "") not in ("", "0") for v in flags)


def bi_encoder_dir() -> Path | None:
    """The bi-encoder for kNN vectors: RERANK_BRIDGE_EMBEDDING_MODEL, else `make models` output."""
    override = os.environ.get("RERANK_BRIDGE_EMBEDDING_MODEL")
    candidates = [Path(override)] if override else []
    candidates.append(REPO_ROOT / ".cache" / "models" / BI_ENCODER_NAME)
    return next((c for c in candidates if (c / "tokenizer.json").is_file()), None)


def shared_models() -> list[Path]:
    root = shared_dir() / "models"
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if any(p.glob("*.onnx")))


def default_models() -> list[str]:
    """Models to rerank with when the user names none (see the module docstring)."""
    override = os.environ.get("RERANK_BRIDGE_MODEL")
    if override:
        return [override]
    found = [str(p) for p in shared_models()]
    bi = bi_encoder_dir()
    if bi is not None:
        found.append(str(bi))
    if found:
        return found
    return [DEFAULT_MODEL]


def display_name(model: str) -> str:
    """A short name for tables and plots: the directory name of a path, or the model name."""
    path = Path(model)
    return path.name if path.is_dir() else model
