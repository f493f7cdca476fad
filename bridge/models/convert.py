"""Convert a BERT-family checkpoint (safetensors + config.json + tokenizer.json) to ONNX.

No PyTorch: ``convert_checkpoint`` builds the graph (:mod:`bridge.models.onnx_bert`), checks it
against the numpy reference forward pass (:mod:`bridge.models.reference`) on a few tokenized
inputs, optionally quantizes it to int8 with ONNX Runtime and checks the scores stay close, then
writes the tokenizer files and ``rerank_bridge.json`` (kind, file and output names, max length)
beside the model.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from bridge.errors import ModelError
from bridge.models import reference
from bridge.models.convert_weights import Checkpoint, load_checkpoint
from bridge.models.onnx_bert import (
    BI_OUTPUT,
    CROSS_OUTPUT,
    HIDDEN_OUTPUT,
    INPUT_NAMES,
    build_model,
    onnx_module,
)

logger = logging.getLogger(__name__)

METADATA_FILE = "rerank_bridge.json"
MODEL_FILE = "model.onnx"
QUANTIZED_FILE = "model_quantized.onnx"
TOKENIZER_FILES = (
    "tokenizer.json",
    "config.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
)
# fp32 graph vs float64 reference; the runtime's fused kernels stay well inside this.
REFERENCE_TOLERANCE = 1e-4
# int8 vs fp32: largest score change allowed (probability for cross, cosine for bi).
INT8_TOLERANCE = 0.1

_QUERIES = ("cordless drill", "how to fix a leaking kitchen faucet", "led light bulbs")
_PASSAGES = (
    "DEWALT 20V MAX cordless drill kit with two batteries and charger",
    "white porcelain dinner plates, set of 12",
    "A dripping faucet usually needs a new cartridge or O-ring; shut the water off first.",
    "60-watt equivalent A19 dimmable LED light bulb, soft white, 4-pack",
)

I64 = npt.NDArray[np.int64]
F32 = npt.NDArray[np.float32]


def convert_checkpoint(
    hf_dir: Path,
    out_dir: Path,
    *,
    kind: Literal["cross", "bi"] | None = None,
    int8: bool = False,
    int8_per_channel: bool = True,
    opset: int = 17,
) -> Path:
    """Convert ``hf_dir`` into ``out_dir`` and return the path of the ONNX file to use.

    With ``int8`` the quantized file (``model_quantized.onnx``) is returned and recorded in
    ``rerank_bridge.json`` as the model file; the fp32 ``model.onnx`` stays beside it. Its
    weights have one scale per output channel unless ``int8_per_channel`` is false (one per
    tensor, as FlashRank's own ``_Q`` files).
    Raises ModelError if the checkpoint is incomplete or the converted graph disagrees with the
    numpy reference.
    """
    hf_dir, out_dir = Path(hf_dir), Path(out_dir)
    ckpt = load_checkpoint(hf_dir, kind)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = build_model(ckpt, opset)
    fp32_path = out_dir / MODEL_FILE
    _save(model, fp32_path)
    logger.info("wrote %s (%s-encoder, %d layers)", fp32_path, ckpt.kind, ckpt.spec.num_layers)

    inputs, singles = verification_inputs(ckpt)
    expected = reference_outputs(ckpt, singles)
    fp32_out = run_onnx(fp32_path, inputs, output_name(ckpt.kind))
    diff = float(np.max(np.abs(fp32_out - expected)))
    if not diff <= REFERENCE_TOLERANCE:
        raise ModelError(
            f"converted graph of {hf_dir} disagrees with the numpy reference: "
            f"max abs diff {diff:.3g} > {REFERENCE_TOLERANCE}"
        )
    metadata: dict[str, Any] = {
        "format": 1,
        "kind": ckpt.kind,
        "model_file": MODEL_FILE,
        "fp32_file": MODEL_FILE,
        "inputs": list(INPUT_NAMES),
        "output": output_name(ckpt.kind),
        "outputs": [CROSS_OUTPUT] if ckpt.kind == "cross" else [BI_OUTPUT, HIDDEN_OUTPUT],
        "max_length": ckpt.max_length,
        "hidden_size": ckpt.spec.hidden_size,
        "num_layers": ckpt.spec.num_layers,
        "opset": opset,
        "source": hf_dir.name,
        "check": {"reference_max_abs_diff": diff},
    }
    if ckpt.kind == "cross":
        metadata["num_labels"] = ckpt.weights.num_labels
    else:
        metadata["pooling"] = ckpt.pooling
        metadata["normalized"] = True
        metadata["dimension"] = ckpt.spec.hidden_size
    result = fp32_path
    if not int8:
        # A quantized file left by an earlier --int8 run would no longer match model.onnx.
        (out_dir / QUANTIZED_FILE).unlink(missing_ok=True)
    if int8:
        result = out_dir / QUANTIZED_FILE
        quantize(fp32_path, result, per_channel=int8_per_channel)
        int8_diff = score_difference(
            ckpt, fp32_out, run_onnx(result, inputs, output_name(ckpt.kind))
        )
        if not int8_diff <= INT8_TOLERANCE:
            raise ModelError(
                f"int8 model of {hf_dir} drifts from fp32: max score diff {int8_diff:.3g} "
                f"> {INT8_TOLERANCE}"
            )
        metadata["model_file"] = QUANTIZED_FILE
        metadata["quantized"] = "int8-dynamic-per-channel" if int8_per_channel else "int8-dynamic"
        metadata["check"]["int8_max_score_diff"] = int8_diff
        logger.info("wrote %s (int8, max score diff vs fp32 %.3g)", result, int8_diff)
    copy_tokenizer_files(hf_dir, out_dir)
    write_metadata(out_dir, metadata)
    return result


def output_name(kind: str) -> str:
    return CROSS_OUTPUT if kind == "cross" else BI_OUTPUT


def copy_tokenizer_files(src: Path, dst: Path) -> None:
    for name in TOKENIZER_FILES:
        if (src / name).is_file() and src.resolve() != dst.resolve():
            shutil.copyfile(src / name, dst / name)


def write_metadata(out_dir: Path, metadata: dict[str, Any]) -> None:
    path = out_dir / METADATA_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _save(model: Any, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    onnx_module().save(model, str(tmp))
    os.replace(tmp, path)


def quantize(fp32_path: Path, out_path: Path, *, per_channel: bool = True) -> None:
    """Dynamic int8 quantization, QInt8 weights. Per channel (one scale per output channel of
    each MatMul): a trained cross-encoder keeps far more of its fp32 gain than with FlashRank's
    one scale per tensor, for at most a few per cent of speed (benchmarks/README.md, "int8 per
    channel")."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from bridge.models.ort_log_noise import PRE_PROCESSING, dropped_ort_messages

    tmp = out_path.with_name(out_path.name + ".tmp")
    with dropped_ort_messages(PRE_PROCESSING):
        quantize_dynamic(
            str(fp32_path), str(tmp), per_channel=per_channel, weight_type=QuantType.QInt8
        )
    os.replace(tmp, out_path)


def verification_inputs(ckpt: Checkpoint) -> tuple[dict[str, I64], list[dict[str, I64]]]:
    """A padded batch of tokenized checks, and the same rows unpadded one by one."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(ckpt.tokenizer_path))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=min(ckpt.max_length, 128))
    if ckpt.kind == "cross":
        encodings = tokenizer.encode_batch([(q, p) for q in _QUERIES for p in _PASSAGES])
    else:
        encodings = tokenizer.encode_batch([*_QUERIES, *_PASSAGES])
    rows = [(e.ids, e.attention_mask, e.type_ids) for e in encodings]
    for label, column, limit in (
        ("token id", 0, ckpt.spec.vocab_size),
        ("token type id", 2, ckpt.spec.type_vocab_size),
    ):
        too_big = max(max(row[column]) for row in rows)
        if too_big >= limit:
            raise ModelError(
                f"tokenizer of {ckpt.directory} yields {label} {too_big}, "
                f"beyond the model's table of {limit}"
            )
    width = max(len(ids) for ids, _, _ in rows)
    batch = {name: np.zeros((len(rows), width), dtype=np.int64) for name in INPUT_NAMES}
    batch["input_ids"][:] = ckpt.spec.pad_token_id
    singles = []
    for row, values in enumerate(rows):
        single = {}
        for name, value in zip(INPUT_NAMES, values, strict=True):
            batch[name][row, : len(value)] = value
            single[name] = np.asarray([value], dtype=np.int64)
        singles.append(single)
    return batch, singles


def reference_outputs(ckpt: Checkpoint, singles: list[dict[str, I64]]) -> npt.NDArray[np.float64]:
    """The numpy reference, run on each row unpadded so the graph's masking is checked too."""
    rows = []
    for single in singles:
        args = (single["input_ids"], single["attention_mask"], single["token_type_ids"])
        if ckpt.kind == "cross":
            rows.append(reference.cross_logits(ckpt.spec, ckpt.weights, *args)[0])
        else:
            rows.append(
                reference.sentence_embedding(ckpt.spec, ckpt.weights, *args, ckpt.pooling)[0]
            )
    return np.stack(rows)


def run_onnx(path: Path, inputs: dict[str, I64], output: str) -> F32:
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        (result,) = session.run([output], inputs)
    except Exception as exc:  # onnxruntime raises its own untyped exceptions
        raise ModelError(f"cannot run {path}: {exc}") from exc
    return np.asarray(result, dtype=np.float32)


def score_difference(ckpt: Checkpoint, fp32: F32, other: F32) -> float:
    """Largest change in what the scorer reports: probability for cross, cosine for bi."""
    if ckpt.kind == "cross":
        return float(np.max(np.abs(_probabilities(fp32) - _probabilities(other))))
    queries = len(_QUERIES)

    def cosines(emb: F32) -> npt.NDArray[np.float32]:
        normed = emb / np.linalg.norm(emb, axis=1, keepdims=True)
        similarities: npt.NDArray[np.float32] = normed[:queries] @ normed[queries:].T
        return similarities

    return float(np.max(np.abs(cosines(fp32) - cosines(other))))


def _probabilities(logits: F32) -> npt.NDArray[np.float64]:
    """What the scorer reports: sigmoid of one logit, else softmax (its last column for two)."""
    values = logits.astype(np.float64)
    if values.shape[1] == 1:
        sigmoid: npt.NDArray[np.float64] = 1.0 / (1.0 + np.exp(-values[:, 0]))
        return sigmoid
    shifted = np.exp(values - values.max(axis=1, keepdims=True))
    softmax: npt.NDArray[np.float64] = shifted / shifted.sum(axis=1, keepdims=True)
    return softmax[:, 1] if values.shape[1] == 2 else softmax
