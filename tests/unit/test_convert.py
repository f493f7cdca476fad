"""The converter: graph equals the numpy reference, metadata, kind detection, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper
from tokenizers import Encoding, Tokenizer

from bridge.errors import ConfigError, ModelError, ModelNotFoundError
from bridge.models import reference
from bridge.models.convert import METADATA_FILE, QUANTIZED_FILE, convert_checkpoint
from bridge.models.convert_weights import load_checkpoint
from tests.support.build_models import minilm_checkpoint_dir, synthesize_random_cross

FP32_TOLERANCE = 1e-4

# Other texts than the converter's own check, longer ones included, so padding varies widely.
QUERIES = ["cordless drill", "outdoor patio furniture cover waterproof"]
PASSAGES = [
    "DEWALT 20V MAX cordless drill kit",
    "white porcelain dinner plates",
    "Heavy duty 600D polyester cover for a rectangular patio table and six chairs, with vents "
    "and elastic hem cord; fits tables up to 108 inches long. Keeps furniture dry all winter.",
    "garden hose",
]


def _tokenizer(model_dir: Path) -> Tokenizer:
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=256)
    return tokenizer


def _batch(encodings: list[Encoding]) -> dict[str, np.ndarray]:
    rows = [(e.ids, e.attention_mask, e.type_ids) for e in encodings]
    width = max(len(ids) for ids, _, _ in rows)
    names = ("input_ids", "attention_mask", "token_type_ids")
    batch = {name: np.zeros((len(rows), width), dtype=np.int64) for name in names}
    for row, values in enumerate(rows):
        for name, value in zip(names, values, strict=True):
            batch[name][row, : len(value)] = value
    return batch


def _run(path: Path, batch: dict[str, np.ndarray], output: str) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.asarray(session.run([output], batch)[0])


def _unpadded(batch: dict[str, np.ndarray], row: int) -> tuple[np.ndarray, ...]:
    length = int(batch["attention_mask"][row].sum())
    return tuple(
        batch[name][row : row + 1, :length]
        for name in ("input_ids", "attention_mask", "token_type_ids")
    )


@pytest.fixture(scope="module")
def tiny_cross_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    location = tmp_path_factory.mktemp("tiny-cross-checkpoint")
    synthesize_random_cross(location, hidden=64, heads=4, intermediate=128, layers=3, seed=7)
    return location


@pytest.fixture(scope="module")
def tiny_cross_model(tiny_cross_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiny-cross-onnx")
    convert_checkpoint(tiny_cross_checkpoint, out, int8=True)
    return out


@pytest.fixture(scope="module")
def pair_batch(tiny_cross_model: Path) -> dict[str, np.ndarray]:
    tokenizer = _tokenizer(tiny_cross_model)
    return _batch(tokenizer.encode_batch([(q, p) for q in QUERIES for p in PASSAGES]))


def test_cross_logits_equal_numpy_reference(
    tiny_cross_checkpoint: Path, tiny_cross_model: Path, pair_batch: dict[str, np.ndarray]
) -> None:
    ckpt = load_checkpoint(tiny_cross_checkpoint)
    got = _run(tiny_cross_model / "model.onnx", pair_batch, "logits")
    expected = np.concatenate(
        [
            reference.cross_logits(ckpt.spec, ckpt.weights, *_unpadded(pair_batch, row))
            for row in range(len(got))
        ]
    )
    assert np.max(np.abs(got - expected)) <= FP32_TOLERANCE


def test_bi_embeddings_equal_numpy_reference(bi_encoder_dir: Path) -> None:
    ckpt = load_checkpoint(minilm_checkpoint_dir())
    batch = _batch(_tokenizer(bi_encoder_dir).encode_batch(QUERIES + PASSAGES))
    got = _run(bi_encoder_dir / "model.onnx", batch, "sentence_embedding")
    expected = np.concatenate(
        [
            reference.sentence_embedding(ckpt.spec, ckpt.weights, *_unpadded(batch, row))
            for row in range(len(got))
        ]
    )
    assert np.max(np.abs(got - expected)) <= FP32_TOLERANCE


def test_bi_encoder_ranks_drill_kit_above_dinner_plates(bi_encoder_dir: Path) -> None:
    texts = ["cordless drill", "DEWALT 20V MAX cordless drill kit", "white porcelain dinner plates"]
    batch = _batch(_tokenizer(bi_encoder_dir).encode_batch(texts))
    query, drill, plates = _run(bi_encoder_dir / "model.onnx", batch, "sentence_embedding")
    assert float(query @ drill) > float(query @ plates)


def test_bi_embeddings_are_unit_length(bi_encoder_dir: Path) -> None:
    batch = _batch(_tokenizer(bi_encoder_dir).encode_batch(PASSAGES))
    embeddings = _run(bi_encoder_dir / "model.onnx", batch, "sentence_embedding")
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)


def test_int8_probabilities_stay_close_to_fp32(
    tiny_cross_model: Path, pair_batch: dict[str, np.ndarray]
) -> None:
    def probabilities(path: Path) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-_run(path, pair_batch, "logits")[:, 0]))

    fp32 = probabilities(tiny_cross_model / "model.onnx")
    int8 = probabilities(tiny_cross_model / QUANTIZED_FILE)
    assert np.max(np.abs(fp32 - int8)) <= 0.05


def test_int8_matmul_weights_have_one_scale_per_output_channel(tiny_cross_model: Path) -> None:
    graph = onnx.load(str(tiny_cross_model / QUANTIZED_FILE)).graph
    weights = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    matmul_weights = {node.input[1] for node in graph.node if node.op_type == "MatMulInteger"}
    assert matmul_weights, "no MatMulInteger: the graph was not quantized"
    for name in matmul_weights:
        scale = weights[name.removesuffix("_quantized") + "_scale"]
        assert scale.shape == (weights[name].shape[1],), name


def test_int8_per_tensor_on_request(tiny_cross_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "per-tensor"
    convert_checkpoint(tiny_cross_checkpoint, out, int8=True, int8_per_channel=False)
    graph = onnx.load(str(out / QUANTIZED_FILE)).graph
    scales = [numpy_helper.to_array(i) for i in graph.initializer if i.name.endswith("_scale")]
    assert scales
    assert all(scale.shape == () for scale in scales)
    assert json.loads((out / "rerank_bridge.json").read_text())["quantized"] == "int8-dynamic"


def test_int8_file_is_smaller_than_fp32(tiny_cross_model: Path) -> None:
    fp32 = (tiny_cross_model / "model.onnx").stat().st_size
    assert (tiny_cross_model / QUANTIZED_FILE).stat().st_size < fp32 / 2


def test_two_label_head_outputs_two_logits(tmp_path: Path) -> None:
    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    synthesize_random_cross(
        checkpoint, hidden=32, heads=2, intermediate=64, layers=1, seed=3, num_labels=2
    )
    path = convert_checkpoint(checkpoint, tmp_path / "out")
    batch = _batch(_tokenizer(tmp_path / "out").encode_batch([("a query", "a passage")]))
    assert _run(path, batch, "logits").shape == (1, 2)


def test_metadata_names_kind_file_and_output(tiny_cross_model: Path) -> None:
    metadata = json.loads((tiny_cross_model / METADATA_FILE).read_text(encoding="utf-8"))
    assert (
        metadata["kind"],
        metadata["model_file"],
        metadata["output"],
        metadata["max_length"],
    ) == (
        "cross",
        QUANTIZED_FILE,
        "logits",
        512,
    )


def test_bi_metadata_uses_sentence_transformers_max_length(bi_encoder_dir: Path) -> None:
    metadata = json.loads((bi_encoder_dir / METADATA_FILE).read_text(encoding="utf-8"))
    assert (metadata["kind"], metadata["output"], metadata["max_length"]) == (
        "bi",
        "sentence_embedding",
        256,
    )


def test_tokenizer_files_are_copied_beside_the_model(tiny_cross_model: Path) -> None:
    names = ["tokenizer.json", "config.json", "tokenizer_config.json", "special_tokens_map.json"]
    assert [name for name in names if not (tiny_cross_model / name).is_file()] == []


def test_graph_inputs_have_dynamic_batch_and_sequence_axes(tiny_cross_model: Path) -> None:
    graph = onnx.load(str(tiny_cross_model / "model.onnx"), load_external_data=False).graph
    dims = {
        item.name: [d.dim_param for d in item.type.tensor_type.shape.dim] for item in graph.input
    }
    assert dims == {
        "input_ids": ["batch", "sequence"],
        "attention_mask": ["batch", "sequence"],
        "token_type_ids": ["batch", "sequence"],
    }


def test_kind_is_cross_for_sequence_classification(tiny_cross_checkpoint: Path) -> None:
    assert load_checkpoint(tiny_cross_checkpoint).kind == "cross"


def test_kind_is_bi_for_sentence_transformers_folder() -> None:
    assert load_checkpoint(minilm_checkpoint_dir()).kind == "bi"


def test_missing_files_error_names_each_missing_file(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}", encoding="utf-8")
    with pytest.raises(ModelNotFoundError) as raised:
        convert_checkpoint(tmp_path, tmp_path / "out")
    named = raised.value.reason
    assert [name for name in ("tokenizer.json", "model.safetensors") if name not in named] == []


def test_missing_tensor_is_a_model_error_naming_it(
    tiny_cross_checkpoint: Path, tmp_path: Path
) -> None:
    from safetensors.numpy import load_file, save_file

    for item in tiny_cross_checkpoint.iterdir():
        (tmp_path / item.name).write_bytes(item.read_bytes())
    tensors = load_file(str(tmp_path / "model.safetensors"))
    del tensors["bert.encoder.layer.1.output.dense.weight"]
    save_file(tensors, str(tmp_path / "model.safetensors"))
    with pytest.raises(ModelError, match=r"bert\.encoder\.layer\.1\.output\.dense\.weight"):
        load_checkpoint(tmp_path)


def test_unsupported_opset_is_a_config_error(tiny_cross_checkpoint: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="opset"):
        convert_checkpoint(tiny_cross_checkpoint, tmp_path, opset=13)


def test_sabotaged_graph_fails_the_reference_check(
    tiny_cross_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A graph built with the wrong mask constant attends to padding: the check must catch it.
    import bridge.models.onnx_bert as onnx_bert

    monkeypatch.setattr(onnx_bert, "MASK_VALUE", 0.0)
    with pytest.raises(ModelError, match="numpy reference"):
        convert_checkpoint(tiny_cross_checkpoint, tmp_path)
