"""Where downloaded models live and whether the network may be used to fetch them."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "RERANK_BRIDGE_CACHE"
OFFLINE_ENVS = ("RERANK_BRIDGE_OFFLINE", "HF_HUB_OFFLINE")
_TRUE = {"1", "true", "yes", "on"}


def default_cache_dir() -> Path:
    """``$RERANK_BRIDGE_CACHE``, else ``$XDG_CACHE_HOME/rerank-bridge``, else ``~/.cache/...``.

    Never a shared temporary directory: another user could plant a model there.
    """
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "rerank-bridge"


def offline_reason() -> str | None:
    """The environment variable that forbids downloads (``NAME=value``), or None when online."""
    for name in OFFLINE_ENVS:
        value = os.environ.get(name, "")
        if value.strip().lower() in _TRUE:
            return f"{name}={value}"
    return None
