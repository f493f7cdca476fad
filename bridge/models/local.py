"""Resolve a model name or a local path to the files a scorer needs, and tell its kind.

Understood layouts:

- FlashRank: ``flashrank-*.onnx`` + ``tokenizer.json`` + ``config.json`` (+ tokenizer_config...);
- an ONNX export: ``model.onnx`` or ``onnx/model*.onnx`` + ``tokenizer.json``;
- a directory written by ``rerank-bridge models convert``: ``rerank_bridge.json`` names kind/files;
- a path to an ``.onnx`` file, with ``tokenizer.json`` beside it or one level up.

Kind comes from ``rerank_bridge.json``, else config.json architectures, else the graph's outputs.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from bridge.config import DEFAULT_MAX_LENGTH
from bridge.errors import ModelError, ModelNotFoundError
from bridge.models.cache_dir import default_cache_dir
from bridge.models.onnx_meta import OnnxSignature, TensorInfo, read_signature
from bridge.models.registry import (
    KNOWN_MODELS,
    KnownModel,
)

logger = logging.getLogger(__name__)

Kind = Literal["cross", "bi"]

MANIFEST = "rerank_bridge.json"
TOKENIZER = "tokenizer.json"
# Feeds the scorer knows how to build from a tokenizer encoding.
SUPPORTED_INPUTS = frozenset({"input_ids", "attention_mask", "token_type_ids"})
_BI_OUTPUTS = ("sentence_embedding", "last_hidden_state", "token_embeddings")
# Architectures whose position table reserves the first two slots (padding offset).
_OFFSET_POSITION_TYPES = frozenset({"roberta", "xlm-roberta", "camembert"})
# A tokenizer_config.json ``model_max_length`` above this is the "unbounded" sentinel (1e30).
_SANE_MAX_LENGTH = 1 << 16


@dataclass(frozen=True)
class ModelFiles:
    """Everything a scorer needs to load a model, found on disk and checked."""

    name: str
    directory: Path
    onnx_path: Path
    tokenizer_path: Path
    kind: Kind
    output_name: str
    num_labels: int | None
    max_length: int
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    # How per-token outputs become one vector (bi-encoders): "mean" unless rerank_bridge.json says.
    pooling: str | None = None
    config: dict[str, Any] = field(default_factory=dict, hash=False, compare=False, repr=False)
    tokenizer_config: dict[str, Any] = field(
        default_factory=dict, hash=False, compare=False, repr=False
    )

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.inputs)

    @property
    def output(self) -> TensorInfo:
        return next(t for t in self.outputs if t.name == self.output_name)

    @property
    def needs_pooling(self) -> bool:
        """True when the output is per token (batch, seq, hidden) and must be mean-pooled."""
        shape = self.output.shape
        return self.kind == "bi" and (shape is None or len(shape) == 3)

    @property
    def size_bytes(self) -> int:
        """On-disk size of the ONNX graph plus any external-data files beside it."""
        total = self.onnx_path.stat().st_size
        for extra in self.onnx_path.parent.glob(f"{self.onnx_path.name}_data*"):
            total += extra.stat().st_size
        return total


# The scorer saves a model's optimised graph as ``<stem>.optimized-<16 hex digits>.onnx``
# (bridge.scoring.session.optimized_graph_path).
OPTIMIZED_INFIX = ".optimized-"


def is_derived_onnx(path: Path) -> bool:
    """Graphs the scorer writes beside a model (optimised copies) are not model candidates, and
    never the source of another optimised graph."""
    return ".optimized" in path.name


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ModelError(f"{path} must hold a JSON object")
    return data


def _candidates(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*.onnx") if p.is_file() and not is_derived_onnx(p))


def _find_onnx(directory: Path, manifest: dict[str, Any], known: KnownModel | None) -> Path | None:
    named = manifest.get("model_file") or manifest.get("onnx") or manifest.get("onnx_file")
    if isinstance(named, str):
        return directory / named
    if known is not None:
        return directory / known.onnx_file
    if (directory / "model.onnx").is_file():
        return directory / "model.onnx"
    for folder in (directory, directory / "onnx"):
        if not folder.is_dir():
            continue
        if folder != directory and (folder / "model.onnx").is_file():
            return folder / "model.onnx"
        found = _candidates(folder)
        flashrank = [p for p in found if p.name.startswith("flashrank-")]
        if len(flashrank) == 1:
            return flashrank[0]
        if len(found) == 1:
            return found[0]
        if found:
            names = ", ".join(str(p.relative_to(directory)) for p in found)
            raise ModelError(
                f"{directory} holds several ONNX files ({names}); pass the path of the one to use"
            )
    return None


def _find_tokenizer(directory: Path, onnx_path: Path | None) -> Path:
    for folder in (directory, *([onnx_path.parent] if onnx_path else [])):
        if (folder / TOKENIZER).is_file():
            return folder / TOKENIZER
    return directory / TOKENIZER


def missing_files(directory: Path, known: KnownModel | None = None) -> list[str]:
    """Files a model directory lacks (empty when complete); explains an absent ONNX file."""
    if not directory.is_dir():
        return [str(directory / f) for f in known.required_files] if known else [str(directory)]
    manifest = _read_json(directory / MANIFEST)
    onnx = _find_onnx(directory, manifest, known)
    missing: list[str] = []
    if onnx is None:
        missing.append(
            f"an ONNX file ({directory / 'model.onnx'}, {directory / 'onnx' / 'model.onnx'} "
            f"or {directory / 'flashrank-*.onnx'})"
        )
    elif not onnx.is_file():
        missing.append(str(onnx))
    if not _find_tokenizer(directory, onnx).is_file():
        missing.append(str(directory / TOKENIZER))
    if known is not None:
        for extra in known.required_files:
            path = directory / extra
            if not path.is_file() and str(path) not in missing:
                missing.append(str(path))
    return missing


def _cross_output(signature: OnnxSignature) -> TensorInfo | None:
    for info in signature.outputs:
        if info.name == "logits":
            return info
    if len(signature.outputs) == 1 and signature.outputs[0].name not in _BI_OUTPUTS:
        return signature.outputs[0]
    return None


def _bi_output(signature: OnnxSignature) -> TensorInfo | None:
    for name in _BI_OUTPUTS:
        for info in signature.outputs:
            if info.name == name:
                return info
    return None


def _detect_kind(manifest: dict[str, Any], config: dict[str, Any], sig: OnnxSignature) -> Kind:
    declared = manifest.get("kind")
    if declared in ("cross", "bi"):
        return "cross" if declared == "cross" else "bi"
    if declared is not None:
        raise ModelError(f"{MANIFEST}: kind must be 'cross' or 'bi', not {declared!r}")
    architectures = config.get("architectures") or []
    if any(str(a).endswith("ForSequenceClassification") for a in architectures):
        return "cross"
    if _bi_output(sig) is not None:
        return "bi"
    if _cross_output(sig) is not None:
        return "cross"
    raise ModelError(
        "cannot tell whether this is a cross-encoder or a bi-encoder: outputs "
        f"{list(sig.output_names)}, architectures {architectures}; add {MANIFEST} with "
        '{"kind": "cross"} or {"kind": "bi"}'
    )


def _pick_output(
    kind: Kind, manifest: dict[str, Any], sig: OnnxSignature, where: Path
) -> TensorInfo:
    named = manifest.get("output_name") or manifest.get("output")
    if isinstance(named, str):
        try:
            return sig.output(named)
        except KeyError:
            raise ModelError(
                f"{where}: {MANIFEST} names output {named!r}, graph has {list(sig.output_names)}"
            ) from None
    info = _cross_output(sig) if kind == "cross" else _bi_output(sig)
    if info is None:
        if kind == "bi" and len(sig.outputs) == 1:
            return sig.outputs[0]
        raise ModelError(
            f"{where}: no {'logits' if kind == 'cross' else 'embedding'} output among "
            f"{list(sig.output_names)}"
        )
    return info


def _check_output(kind: Kind, info: TensorInfo, where: Path) -> None:
    rank = None if info.shape is None else len(info.shape)
    if kind == "cross":
        last = info.shape[-1] if info.shape else None
        if rank is not None and rank not in (1, 2):
            raise ModelError(
                f"{where}: output {info.describe()} is not one score per pair (rank {rank}); "
                "generative/sequence-to-sequence rerankers are not supported"
            )
        if rank == 2 and isinstance(last, int) and last not in (1, 2):
            raise ModelError(
                f"{where}: output {info.describe()} has {last} labels; a cross-encoder needs 1 "
                "(sigmoid) or 2 (softmax)"
            )
    elif rank is not None and rank not in (2, 3):
        raise ModelError(f"{where}: embedding output {info.describe()} must have rank 2 or 3")


def _check_inputs(sig: OnnxSignature, where: Path) -> None:
    names = set(sig.input_names)
    unsupported = sorted(names - SUPPORTED_INPUTS)
    if unsupported:
        raise ModelError(
            f"{where}: the graph needs input(s) {unsupported} that rerank-bridge cannot feed "
            "(it feeds input_ids, attention_mask, token_type_ids); encoder-decoder or "
            "generative graphs are not supported"
        )
    if "input_ids" not in names:
        raise ModelError(f"{where}: the graph has no input_ids input ({sorted(names)})")


def _max_length(
    manifest: dict[str, Any], config: dict[str, Any], tokenizer_config: dict[str, Any]
) -> int:
    positions = config.get("max_position_embeddings")
    limit: int | None = None
    if isinstance(positions, int) and positions > 0:
        offset = 2 if config.get("model_type") in _OFFSET_POSITION_TYPES else 0
        limit = positions - offset
    for candidate in (manifest.get("max_length"), tokenizer_config.get("model_max_length")):
        if isinstance(candidate, int) and 0 < candidate <= _SANE_MAX_LENGTH:
            return min(candidate, limit) if limit else candidate
    return limit or DEFAULT_MAX_LENGTH


def _num_labels(
    kind: Kind, manifest: dict[str, Any], config: dict[str, Any], info: TensorInfo
) -> int | None:
    if kind != "cross":
        return None
    if info.shape and len(info.shape) == 2 and isinstance(info.shape[-1], int):
        return info.shape[-1]
    if info.shape and len(info.shape) == 1:
        return 1
    for value in (manifest.get("num_labels"), config.get("num_labels")):
        if isinstance(value, int):
            return value
    labels = config.get("id2label")
    return len(labels) if isinstance(labels, dict) and labels else None


def _pooling(kind: Kind, manifest: dict[str, Any], info: TensorInfo) -> str | None:
    if kind != "bi":
        return None
    declared = manifest.get("pooling")
    if info.shape is not None and len(info.shape) == 2:
        return None  # the graph pools already
    return declared if isinstance(declared, str) else "mean"


def _cache_hint(directory: Path) -> str:
    """A FlashRank-style cache holds one folder per model; say so when one is passed as a model."""
    if not directory.is_dir():
        return ""
    names = sorted(n for n in KNOWN_MODELS if (directory / n).is_dir())
    if not names:
        return ""
    return (
        f" (this looks like a model cache holding {', '.join(names)}: pass a model name with "
        f"cache_dir={directory}, or the path of one model folder)"
    )


def inspect_directory(
    directory: Path,
    *,
    name: str | None = None,
    known: KnownModel | None = None,
    onnx_path: Path | None = None,
) -> ModelFiles:
    """Check a model directory (or one ONNX file in it) and describe it; errors say what's wrong."""
    directory = directory.expanduser()
    if onnx_path is None:
        missing = missing_files(directory, known)
        if missing:
            raise ModelNotFoundError(
                f"model directory {directory} is missing: {', '.join(missing)}"
                + _cache_hint(directory)
            )
    manifest = _read_json(directory / MANIFEST)
    onnx = onnx_path or _find_onnx(directory, manifest, known)
    assert onnx is not None  # missing_files() guarantees it
    tokenizer = _find_tokenizer(directory, onnx)
    if not tokenizer.is_file():
        raise ModelNotFoundError(f"model directory {directory} is missing: {tokenizer}")
    config = _read_json(directory / "config.json")
    tokenizer_config = _read_json(tokenizer.parent / "tokenizer_config.json")
    signature = read_signature(onnx)
    _check_inputs(signature, onnx)
    kind = _detect_kind(manifest, config, signature)
    output = _pick_output(kind, manifest, signature, onnx)
    _check_output(kind, output, onnx)
    return ModelFiles(
        name=name or directory.name,
        directory=directory,
        onnx_path=onnx,
        tokenizer_path=tokenizer,
        kind=kind,
        output_name=output.name,
        num_labels=_num_labels(kind, manifest, config, output),
        max_length=_max_length(manifest, config, tokenizer_config),
        inputs=signature.inputs,
        outputs=signature.outputs,
        pooling=_pooling(kind, manifest, output),
        config=config,
        tokenizer_config=tokenizer_config,
    )


def known_cache_dir(name: str, cache_dir: Path | None = None) -> Path:
    """Where the known model ``name`` lives in the cache (present or not)."""
    return (cache_dir if cache_dir is not None else default_cache_dir()) / name
