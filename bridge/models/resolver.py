"""``resolve_model``: a known model name or a local path -> checked ``ModelFiles``.

Above both ``local`` (reading a model directory) and ``download`` (fetching a known model into
the cache), so neither imports the other's caller: local <- download <- resolver.
"""

from __future__ import annotations

import os
from pathlib import Path

from bridge.errors import ModelError, ModelNotFoundError
from bridge.models.download import download_model
from bridge.models.local import ModelFiles, inspect_directory, known_cache_dir, missing_files
from bridge.models.registry import KNOWN_MODELS, UNSUPPORTED_MODELS, known_model_names


def _resolve_path(path: Path) -> ModelFiles:
    path = path.expanduser()
    if path.is_file() and path.suffix == ".onnx":
        # onnx/model.onnx in an export: the model's own files sit one level up
        directory = path.parent.parent if path.parent.name == "onnx" else path.parent
        return inspect_directory(directory, onnx_path=path)
    if path.is_dir():
        return inspect_directory(path)
    raise ModelNotFoundError(f"model path {path} does not exist")


def _looks_like_path(text: str) -> bool:
    return os.sep in text or "/" in text or text.startswith((".", "~")) or text.endswith(".onnx")


def model_location(model: str | os.PathLike[str], *, cache_dir: Path | str | None = None) -> str:
    """Where ``model`` resolves, as ``resolve_model`` would look (a known name's folder in
    ``cache_dir``, a path), made absolute with symlinks resolved; nothing is read or downloaded.
    An unknown name that is not a path is returned as it is (it resolves nowhere).

    The model breaker keys failures by this: one name in two cache folders is two models.
    """
    if isinstance(model, str) and model in KNOWN_MODELS:
        cache = Path(cache_dir).expanduser() if cache_dir is not None else None
        return os.path.realpath(known_cache_dir(model, cache))
    text = os.fspath(model)
    if not isinstance(model, str) or _looks_like_path(text) or Path(text).exists():
        return os.path.realpath(Path(text).expanduser())
    return text


def resolve_model(
    model: str | os.PathLike[str],
    *,
    cache_dir: Path | str | None = None,
    download: bool = True,
    progress: bool = True,
) -> ModelFiles:
    """Turn a known model name or a local path into checked :class:`ModelFiles`.

    Known names are looked up in ``cache_dir`` (default :func:`default_cache_dir`) and downloaded
    when absent and ``download`` is true. An unknown name that is not an existing path raises
    ModelNotFoundError listing the known names, before any network access.
    """
    cache = Path(cache_dir).expanduser() if cache_dir is not None else None
    if not isinstance(model, str):
        return _resolve_path(Path(os.fspath(model)))
    known = KNOWN_MODELS.get(model)
    if known is None:
        if _looks_like_path(model) or Path(model).exists():
            return _resolve_path(Path(model))
        if model in UNSUPPORTED_MODELS:
            raise ModelError(
                f"model {model} is not supported: {UNSUPPORTED_MODELS[model]}; "
                f"supported names: {', '.join(known_model_names())}"
            )
        raise ModelNotFoundError(
            f"unknown model {model!r}: not a local path and not one of "
            f"{', '.join(known_model_names())}"
        )
    directory = known_cache_dir(model, cache)
    missing = missing_files(directory, known)
    if missing:
        if not download:
            raise ModelNotFoundError(
                f"model {model} is not in the cache (missing: {', '.join(missing)}); "
                f"run `rerank-bridge models download {model}`"
            )
        directory = download_model(model, cache_dir=cache, progress=progress)
    return inspect_directory(directory, name=model, known=known)
