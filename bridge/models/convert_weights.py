"""Read a BERT-family checkpoint directory (config.json + safetensors + tokenizer.json) into numpy.

Two layouts are understood: a Hugging Face ``BertForSequenceClassification`` export (a
cross-encoder, weights under ``bert.``) and a plain ``BertModel`` or sentence-transformers folder
(a bi-encoder, pooling read from ``1_Pooling/config.json``). Weights keep the PyTorch ``Linear``
orientation ``[out, in]``; the graph builder and the numpy reference transpose them themselves.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from bridge.errors import ModelError, ModelNotFoundError

Kind = Literal["cross", "bi"]
Pooling = Literal["mean", "cls"]
Array = npt.NDArray[np.float32]

SUPPORTED_ACTIVATIONS = ("gelu", "relu")
_EMBEDDING_KEY = "embeddings.word_embeddings.weight"


@dataclass(frozen=True)
class BertSpec:
    """The architecture numbers of a BERT encoder, read from config.json."""

    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    max_position_embeddings: int
    type_vocab_size: int
    layer_norm_eps: float
    hidden_act: str
    pad_token_id: int

    @property
    def head_size(self) -> int:
        return self.hidden_size // self.num_heads


@dataclass(frozen=True)
class LayerWeights:
    """One encoder layer: self-attention, its output projection, then the feed-forward block."""

    query_w: Array
    query_b: Array
    key_w: Array
    key_b: Array
    value_w: Array
    value_b: Array
    attn_out_w: Array
    attn_out_b: Array
    attn_ln_w: Array
    attn_ln_b: Array
    inter_w: Array
    inter_b: Array
    out_w: Array
    out_b: Array
    out_ln_w: Array
    out_ln_b: Array


@dataclass(frozen=True)
class BertWeights:
    word: Array
    position: Array
    token_type: Array
    emb_ln_w: Array
    emb_ln_b: Array
    layers: tuple[LayerWeights, ...]
    pooler_w: Array | None = None
    pooler_b: Array | None = None
    classifier_w: Array | None = None
    classifier_b: Array | None = None

    @property
    def num_labels(self) -> int:
        return 0 if self.classifier_w is None else int(self.classifier_w.shape[0])


@dataclass(frozen=True)
class Checkpoint:
    """Everything the converter needs from a checkpoint directory."""

    directory: Path
    spec: BertSpec
    weights: BertWeights
    kind: Kind
    pooling: Pooling
    max_length: int
    tokenizer_path: Path


def missing_files(hf_dir: Path) -> list[str]:
    """Names of the files a convertible checkpoint needs that ``hf_dir`` lacks."""
    missing = [name for name in ("config.json", "tokenizer.json") if not (hf_dir / name).is_file()]
    if not _safetensors_files(hf_dir):
        missing.append("model.safetensors")
    return missing


def load_checkpoint(hf_dir: Path, kind: Kind | None = None) -> Checkpoint:
    """Validate ``hf_dir`` and load config and weights; raise ModelError naming what is wrong."""
    if not hf_dir.is_dir():
        raise ModelNotFoundError(f"checkpoint directory {hf_dir} does not exist")
    missing = missing_files(hf_dir)
    if missing:
        hint = ""
        if "model.safetensors" in missing and (hf_dir / "pytorch_model.bin").is_file():
            hint = " (only pytorch_model.bin found: re-save the checkpoint as safetensors)"
        raise ModelNotFoundError(
            f"checkpoint directory {hf_dir} is missing {', '.join(missing)}{hint}"
        )
    config = _read_json(hf_dir / "config.json")
    spec = _spec_from_config(config, hf_dir)
    tensors = _load_tensors(hf_dir)
    resolved_kind = kind or detect_kind(config, hf_dir, tensors)
    weights = _bert_weights(tensors, spec, resolved_kind, hf_dir)
    return Checkpoint(
        directory=hf_dir,
        spec=spec,
        weights=weights,
        kind=resolved_kind,
        pooling=_pooling(hf_dir),
        max_length=_max_length(hf_dir, spec),
        tokenizer_path=hf_dir / "tokenizer.json",
    )


def detect_kind(config: dict[str, Any], hf_dir: Path, tensors: dict[str, Array]) -> Kind:
    """Cross for ``*ForSequenceClassification``; bi for ``BertModel`` or sentence-transformers."""
    architectures = [str(name) for name in config.get("architectures") or []]
    if any(name.endswith("ForSequenceClassification") for name in architectures):
        return "cross"
    if any(name.endswith("Model") for name in architectures) or (hf_dir / "modules.json").is_file():
        return "bi"
    if "classifier.weight" in tensors:
        return "cross"
    raise ModelError(
        f"cannot tell whether {hf_dir} is a cross-encoder or a bi-encoder "
        f"(architectures={architectures}); pass kind='cross' or kind='bi'"
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ModelError(f"{path} does not hold a JSON object")
    return data


def _spec_from_config(config: dict[str, Any], hf_dir: Path) -> BertSpec:
    model_type = config.get("model_type", "bert")
    if model_type != "bert":
        raise ModelError(f"{hf_dir}: model_type {model_type!r} is not supported (only 'bert')")
    position_type = config.get("position_embedding_type", "absolute")
    if position_type != "absolute":
        raise ModelError(f"{hf_dir}: position_embedding_type {position_type!r} is not supported")
    hidden_act = str(config.get("hidden_act", "gelu"))
    if hidden_act not in SUPPORTED_ACTIVATIONS:
        raise ModelError(
            f"{hf_dir}: hidden_act {hidden_act!r} is not supported "
            f"(supported: {', '.join(SUPPORTED_ACTIVATIONS)})"
        )
    try:
        spec = BertSpec(
            vocab_size=int(config["vocab_size"]),
            hidden_size=int(config["hidden_size"]),
            num_layers=int(config["num_hidden_layers"]),
            num_heads=int(config["num_attention_heads"]),
            intermediate_size=int(config["intermediate_size"]),
            max_position_embeddings=int(config.get("max_position_embeddings", 512)),
            type_vocab_size=int(config.get("type_vocab_size", 2)),
            layer_norm_eps=float(config.get("layer_norm_eps", 1e-12)),
            hidden_act=hidden_act,
            pad_token_id=int(config.get("pad_token_id", 0)),
        )
    except KeyError as exc:
        raise ModelError(f"{hf_dir / 'config.json'} lacks {exc.args[0]!r}") from exc
    if spec.hidden_size % spec.num_heads:
        raise ModelError(
            f"{hf_dir}: hidden_size {spec.hidden_size} is not a multiple of "
            f"num_attention_heads {spec.num_heads}"
        )
    return spec


def _safetensors_files(hf_dir: Path) -> list[Path]:
    return sorted(hf_dir.glob("*.safetensors"))


def _load_tensors(hf_dir: Path) -> dict[str, Array]:
    try:
        from safetensors.numpy import load_file
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ModelError(
            "converting needs the 'safetensors' package: pip install 'rerank-bridge[convert]'"
        ) from exc
    tensors: dict[str, Array] = {}
    for path in _safetensors_files(hf_dir):
        try:
            loaded = load_file(str(path))
        except Exception as exc:  # safetensors raises its own untyped errors
            raise ModelError(f"cannot read {path}: {exc}") from exc
        for name, value in loaded.items():
            if np.issubdtype(value.dtype, np.floating):
                tensors[name] = np.ascontiguousarray(value, dtype=np.float32)
    return tensors


def _prefix(tensors: dict[str, Array], hf_dir: Path) -> str:
    """The key prefix of the encoder (``""``, ``"bert."``...), found from the word embeddings."""
    for name in tensors:
        if name.endswith(_EMBEDDING_KEY):
            return name[: -len(_EMBEDDING_KEY)]
    raise ModelError(f"{hf_dir}: no tensor named '*{_EMBEDDING_KEY}' in the safetensors file(s)")


def _bert_weights(
    tensors: dict[str, Array], spec: BertSpec, kind: Kind, hf_dir: Path
) -> BertWeights:
    prefix = _prefix(tensors, hf_dir)

    def get(name: str, shape: tuple[int, ...]) -> Array:
        value = tensors.get(name)
        if value is None:
            raise ModelError(f"{hf_dir}: tensor {name!r} is missing from the checkpoint")
        if value.shape != shape:
            raise ModelError(f"{hf_dir}: tensor {name!r} has shape {value.shape}, expected {shape}")
        return value

    h, i = spec.hidden_size, spec.intermediate_size
    emb = prefix + "embeddings."
    layers = []
    for index in range(spec.num_layers):
        p = f"{prefix}encoder.layer.{index}."
        layers.append(
            LayerWeights(
                query_w=get(p + "attention.self.query.weight", (h, h)),
                query_b=get(p + "attention.self.query.bias", (h,)),
                key_w=get(p + "attention.self.key.weight", (h, h)),
                key_b=get(p + "attention.self.key.bias", (h,)),
                value_w=get(p + "attention.self.value.weight", (h, h)),
                value_b=get(p + "attention.self.value.bias", (h,)),
                attn_out_w=get(p + "attention.output.dense.weight", (h, h)),
                attn_out_b=get(p + "attention.output.dense.bias", (h,)),
                attn_ln_w=get(p + "attention.output.LayerNorm.weight", (h,)),
                attn_ln_b=get(p + "attention.output.LayerNorm.bias", (h,)),
                inter_w=get(p + "intermediate.dense.weight", (i, h)),
                inter_b=get(p + "intermediate.dense.bias", (i,)),
                out_w=get(p + "output.dense.weight", (h, i)),
                out_b=get(p + "output.dense.bias", (h,)),
                out_ln_w=get(p + "output.LayerNorm.weight", (h,)),
                out_ln_b=get(p + "output.LayerNorm.bias", (h,)),
            )
        )
    pooler_w = pooler_b = classifier_w = classifier_b = None
    if kind == "cross":
        pooler_w = get(prefix + "pooler.dense.weight", (h, h))
        pooler_b = get(prefix + "pooler.dense.bias", (h,))
        classifier_w = tensors.get("classifier.weight")
        if classifier_w is None or classifier_w.ndim != 2 or classifier_w.shape[1] != h:
            raise ModelError(
                f"{hf_dir}: a cross-encoder needs 'classifier.weight' of shape [num_labels, {h}]"
            )
        classifier_b = get("classifier.bias", (classifier_w.shape[0],))
    return BertWeights(
        word=get(emb + "word_embeddings.weight", (spec.vocab_size, h)),
        position=get(emb + "position_embeddings.weight", (spec.max_position_embeddings, h)),
        token_type=get(emb + "token_type_embeddings.weight", (spec.type_vocab_size, h)),
        emb_ln_w=get(emb + "LayerNorm.weight", (h,)),
        emb_ln_b=get(emb + "LayerNorm.bias", (h,)),
        layers=tuple(layers),
        pooler_w=pooler_w,
        pooler_b=pooler_b,
        classifier_w=classifier_w,
        classifier_b=classifier_b,
    )


def _pooling(hf_dir: Path) -> Pooling:
    config_path = hf_dir / "1_Pooling" / "config.json"
    if not config_path.is_file():
        return "mean"
    config = _read_json(config_path)
    if config.get("pooling_mode_cls_token"):
        return "cls"
    if config.get("pooling_mode_mean_tokens", True):
        return "mean"
    raise ModelError(f"{config_path}: only mean or CLS pooling is supported")


def _max_length(hf_dir: Path, spec: BertSpec) -> int:
    """The smallest of the position table, the tokenizer's and sentence-transformers' limits."""
    limits = [spec.max_position_embeddings]
    for name, key in (
        ("tokenizer_config.json", "model_max_length"),
        ("sentence_bert_config.json", "max_seq_length"),
    ):
        path = hf_dir / name
        if path.is_file():
            value = _read_json(path).get(key)
            if isinstance(value, int) and value > 0:
                limits.append(value)
    return min(limits)
