"""Architecture variants the converter claims to support each match the numpy reference.

``convert_checkpoint`` raises ModelError when its graph disagrees with the reference, so a
successful conversion is itself the check; each test then re-runs the comparison independently.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from tokenizers import Tokenizer

from bridge.models import reference
from bridge.models.convert import convert_checkpoint
from bridge.models.convert_weights import load_checkpoint
from tests.support.build_models import synthesize_random_cross

TEXTS = ["cordless drill", "white porcelain dinner plates for twelve people", "hose"]


def _checkpoint(location: Path, *, bi: bool = False, pooling: str = "mean", **config: Any) -> Path:
    synthesize_random_cross(location, hidden=48, heads=3, intermediate=96, layers=2, seed=11)
    path = location / "config.json"
    merged = {**json.loads(path.read_text(encoding="utf-8")), **config}
    if bi:
        merged["architectures"] = ["BertModel"]
        pooling_dir = location / "1_Pooling"
        pooling_dir.mkdir()
        (pooling_dir / "config.json").write_text(
            json.dumps(
                {
                    "pooling_mode_cls_token": pooling == "cls",
                    "pooling_mode_mean_tokens": pooling == "mean",
                }
            ),
            encoding="utf-8",
        )
    path.write_text(json.dumps(merged), encoding="utf-8")
    return location


def _max_diff(checkpoint: Path, out: Path) -> float:
    ckpt = load_checkpoint(checkpoint)
    onnx_path = convert_checkpoint(checkpoint, out)
    tokenizer = Tokenizer.from_file(str(out / "tokenizer.json"))
    tokenizer.no_padding()
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    worst = 0.0
    for text in TEXTS:
        enc = tokenizer.encode(text)
        feed = {
            "input_ids": np.array([enc.ids], dtype=np.int64),
            "attention_mask": np.array([enc.attention_mask], dtype=np.int64),
            "token_type_ids": np.array([enc.type_ids], dtype=np.int64),
        }
        args = (feed["input_ids"], feed["attention_mask"], feed["token_type_ids"])
        if ckpt.kind == "cross":
            expected = reference.cross_logits(ckpt.spec, ckpt.weights, *args)
            (got,) = session.run(["logits"], feed)
        else:
            expected = reference.sentence_embedding(ckpt.spec, ckpt.weights, *args, ckpt.pooling)
            (got,) = session.run(["sentence_embedding"], feed)
        worst = max(worst, float(np.max(np.abs(got - expected))))
    return worst


@pytest.mark.parametrize(
    ("label", "options"),
    [
        ("relu activation", {"hidden_act": "relu"}),
        ("large layer-norm epsilon", {"layer_norm_eps": 1e-3}),
        ("mean-pooled bi-encoder", {"bi": True}),
        ("CLS-pooled bi-encoder", {"bi": True, "pooling": "cls"}),
    ],
)
def test_variant_matches_numpy_reference(
    tmp_path: Path, label: str, options: dict[str, Any]
) -> None:
    checkpoint = _checkpoint(tmp_path / "checkpoint", **options)
    assert _max_diff(checkpoint, tmp_path / "out") <= 1e-4, label


def test_layer_norm_epsilon_reaches_the_graph(tmp_path: Path) -> None:
    # Converting with a huge epsilon must change the logits: the config value is really used.
    def logits(eps: float, name: str) -> np.ndarray:
        checkpoint = _checkpoint(tmp_path / name, layer_norm_eps=eps)
        path = convert_checkpoint(checkpoint, tmp_path / (name + "-out"))
        enc = Tokenizer.from_file(str(checkpoint / "tokenizer.json")).encode("cordless drill")
        feed = {
            "input_ids": np.array([enc.ids], dtype=np.int64),
            "attention_mask": np.array([enc.attention_mask], dtype=np.int64),
            "token_type_ids": np.array([enc.type_ids], dtype=np.int64),
        }
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return np.asarray(session.run(["logits"], feed)[0])

    assert not np.allclose(logits(1e-12, "small-eps"), logits(10.0, "huge-eps"), atol=1e-3)


def test_unsupported_activation_is_refused_by_name(tmp_path: Path) -> None:
    from bridge.errors import ModelError

    checkpoint = _checkpoint(tmp_path / "checkpoint", hidden_act="silu")
    with pytest.raises(ModelError, match="silu"):
        load_checkpoint(checkpoint)


def test_pair_type_ids_beyond_the_type_table_are_refused(tmp_path: Path) -> None:
    from safetensors.numpy import load_file, save_file

    from bridge.errors import ModelError

    checkpoint = _checkpoint(tmp_path / "checkpoint", type_vocab_size=1)
    weights = checkpoint / "model.safetensors"
    tensors = load_file(str(weights))
    table = "bert.embeddings.token_type_embeddings.weight"
    tensors[table] = np.ascontiguousarray(tensors[table][:1])
    save_file(tensors, str(weights))
    with pytest.raises(ModelError, match="token type id 1"):
        convert_checkpoint(checkpoint, tmp_path / "out")


def test_fp32_conversion_removes_a_stale_quantized_file(tmp_path: Path) -> None:
    checkpoint = _checkpoint(tmp_path / "checkpoint")
    out = tmp_path / "out"
    convert_checkpoint(checkpoint, out, int8=True)
    convert_checkpoint(checkpoint, out)
    assert not (out / "model_quantized.onnx").exists()
