"""What to do when a model cannot be had: the fix that errors, warnings and health checks give."""

from __future__ import annotations

from pathlib import Path

from bridge.models.cache_dir import default_cache_dir
from bridge.models.registry import KNOWN_MODELS


def model_fix(model: str, target: Path | None = None) -> str:
    """What to do when ``model`` cannot be loaded: a local folder, a mirror, the offline flag.

    ``target``: where the cache expects a known model's folder (default: the default cache).
    """
    if model in KNOWN_MODELS:
        target = target or default_cache_dir() / model
        return (
            f"name a local model folder instead (rerank-bridge serve --model /path/to/folder, "
            f"or rerank.model), or set RERANK_BRIDGE_MODEL_URL to a mirror serving {model}.zip, "
            f"or run `rerank-bridge models download {model}` where the network is reachable and "
            f"copy the folder to {target}; RERANK_BRIDGE_OFFLINE=1 stops download attempts"
        )
    if Path(model).expanduser().exists():
        return (
            f"make {model} a model folder: an .onnx file (model.onnx or onnx/model.onnx) with its "
            "tokenizer.json and config.json (`rerank-bridge models info` checks one)"
        )
    return (
        f"{model} is neither a known model name nor an existing folder: give a model folder's "
        "path or one of `rerank-bridge models list`"
    )


__all__ = ["model_fix"]
