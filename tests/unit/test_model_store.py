"""Resolving names and local directories to ModelFiles; kind detection; the cache location."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bridge.errors import ModelError, ModelNotFoundError
from bridge.models import (
    DEFAULT_MODEL,
    KNOWN_MODELS,
    default_cache_dir,
    known_model_names,
    read_signature,
    resolve_model,
)
from tests.unit._model_store_helpers import flashrank_files, tiny_onnx, write_files


def _export_dir(root: Path, *, outputs: list[tuple[str, tuple[int | str, ...]]]) -> Path:
    """A Hugging Face / sentence-transformers style export: onnx/model.onnx + tokenizer.json."""
    tiny_onnx(root / "onnx" / "model.onnx", outputs=outputs)
    (root / "tokenizer.json").write_text("{}")
    return root


# --- known names -------------------------------------------------------------------------------


def test_known_names_put_the_default_first() -> None:
    assert known_model_names()[0] == DEFAULT_MODEL


def test_known_names_cover_the_five_flashrank_models() -> None:
    assert set(known_model_names()) == {
        "ms-marco-TinyBERT-L-2-v2",
        "ms-marco-MiniLM-L-12-v2",
        "rank-T5-flan",
        "ms-marco-MultiBERT-L-12",
        "ce-esci-MiniLM-L12-v2",
    }


def test_known_model_files_follow_flashrank_names() -> None:
    assert KNOWN_MODELS["ms-marco-MiniLM-L-12-v2"].onnx_file == "flashrank-MiniLM-L-12-v2_Q.onnx"


def test_unknown_name_error_lists_every_known_name(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError) as raised:
        resolve_model("bge-reranker-base", cache_dir=tmp_path)
    assert all(name in str(raised.value) for name in known_model_names())


def test_known_name_not_cached_without_download_names_missing_files(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match=r"flashrank-TinyBERT-L-2-v2\.onnx"):
        resolve_model(DEFAULT_MODEL, cache_dir=tmp_path, download=False)


def test_known_name_resolves_from_a_flashrank_cache_layout(tmp_path: Path) -> None:
    name = "ce-esci-MiniLM-L12-v2"
    write_files(tmp_path / name, flashrank_files(KNOWN_MODELS[name].onnx_file))
    assert resolve_model(name, cache_dir=tmp_path, download=False).name == name


# --- local directories -------------------------------------------------------------------------


def test_flashrank_directory_is_a_cross_encoder(tmp_path: Path) -> None:
    write_files(tmp_path, flashrank_files("flashrank-MiniLM-L-12-v2_Q.onnx"))
    files = resolve_model(tmp_path)
    assert (files.kind, files.onnx_path.name) == ("cross", "flashrank-MiniLM-L-12-v2_Q.onnx")


def test_trained_cross_encoder_layout_resolves(homedepot_cross_encoder_dir: Path) -> None:
    files = resolve_model(homedepot_cross_encoder_dir)
    assert (files.kind, files.output_name, files.num_labels) == ("cross", "logits", 1)


def test_trained_cross_encoder_max_length_comes_from_its_tokenizer_config(
    homedepot_cross_encoder_dir: Path,
) -> None:
    assert resolve_model(str(homedepot_cross_encoder_dir)).max_length == 512


def test_export_with_token_embeddings_is_a_bi_encoder_needing_pooling(tmp_path: Path) -> None:
    files = resolve_model(_export_dir(tmp_path, outputs=[("last_hidden_state", ("b", "s", 8))]))
    assert (files.kind, files.needs_pooling) == ("bi", True)


def test_sentence_embedding_output_is_preferred_and_already_pooled(tmp_path: Path) -> None:
    outputs = [("last_hidden_state", ("b", "s", 8)), ("sentence_embedding", ("b", 8))]
    files = resolve_model(_export_dir(tmp_path, outputs=outputs))
    assert (files.output_name, files.needs_pooling) == ("sentence_embedding", False)


def test_export_tokenizer_is_found_at_the_root(tmp_path: Path) -> None:
    files = resolve_model(_export_dir(tmp_path, outputs=[("logits", ("b", 1))]))
    assert files.tokenizer_path == tmp_path / "tokenizer.json"


def test_path_to_an_onnx_file_selects_that_file(tmp_path: Path) -> None:
    _export_dir(tmp_path, outputs=[("logits", ("b", 2))])
    chosen = tiny_onnx(tmp_path / "onnx" / "model_quantized.onnx", outputs=[("logits", ("b", 2))])
    assert resolve_model(chosen).onnx_path == chosen


def test_two_label_head_reports_two_labels(tmp_path: Path) -> None:
    files = resolve_model(_export_dir(tmp_path, outputs=[("logits", ("b", 2))]))
    assert files.num_labels == 2


def test_manifest_kind_overrides_config_architectures(tmp_path: Path) -> None:
    tiny_onnx(tmp_path / "model.onnx", outputs=[("embedding", ("b", 8))])
    (tmp_path / "tokenizer.json").write_text("{}")
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["BertModel"]}))
    (tmp_path / "rerank_bridge.json").write_text(
        json.dumps({"kind": "bi", "output_name": "embedding", "max_length": 128})
    )
    files = resolve_model(tmp_path)
    assert (files.kind, files.output_name, files.max_length) == ("bi", "embedding", 128)


def test_sequence_classification_architecture_makes_a_cross_encoder(tmp_path: Path) -> None:
    tiny_onnx(tmp_path / "model.onnx", outputs=[("scores", ("b", 1))])
    (tmp_path / "tokenizer.json").write_text("{}")
    (tmp_path / "config.json").write_text(
        json.dumps({"architectures": ["XLMRobertaForSequenceClassification"]})
    )
    assert resolve_model(tmp_path).kind == "cross"


def test_roberta_position_offset_limits_max_length(tmp_path: Path) -> None:
    tiny_onnx(tmp_path / "model.onnx")
    (tmp_path / "tokenizer.json").write_text("{}")
    (tmp_path / "config.json").write_text(
        json.dumps({"model_type": "xlm-roberta", "max_position_embeddings": 514})
    )
    assert resolve_model(tmp_path).max_length == 512


def test_unbounded_tokenizer_max_length_falls_back_to_positions(tmp_path: Path) -> None:
    tiny_onnx(tmp_path / "model.onnx")
    (tmp_path / "tokenizer.json").write_text("{}")
    (tmp_path / "config.json").write_text(json.dumps({"max_position_embeddings": 256}))
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 10**30}))
    assert resolve_model(tmp_path).max_length == 256


def test_optimised_graph_beside_the_model_is_not_a_candidate(tmp_path: Path) -> None:
    tiny_onnx(tmp_path / "flashrank-x.onnx")
    tiny_onnx(tmp_path / "flashrank-x.optimized-0123456789abcdef.onnx")
    (tmp_path / "tokenizer.json").write_text("{}")
    assert resolve_model(tmp_path).onnx_path.name == "flashrank-x.onnx"


def test_several_onnx_files_are_reported_as_ambiguous(tmp_path: Path) -> None:
    tiny_onnx(tmp_path / "a.onnx")
    tiny_onnx(tmp_path / "b.onnx")
    (tmp_path / "tokenizer.json").write_text("{}")
    with pytest.raises(ModelError, match=r"a\.onnx, b\.onnx"):
        resolve_model(tmp_path)


# --- errors ------------------------------------------------------------------------------------


def test_directory_without_tokenizer_names_it(tmp_path: Path) -> None:
    tiny_onnx(tmp_path / "model.onnx")
    with pytest.raises(ModelNotFoundError, match=r"tokenizer\.json"):
        resolve_model(tmp_path)


def test_empty_directory_names_both_missing_files(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError) as raised:
        resolve_model(tmp_path)
    assert ("ONNX file" in str(raised.value), "tokenizer.json" in str(raised.value)) == (True, True)


def test_missing_path_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        resolve_model(tmp_path / "nowhere")


def test_encoder_decoder_graph_is_refused(tmp_path: Path) -> None:
    tiny_onnx(tmp_path / "model.onnx", inputs=("input_ids", "attention_mask", "decoder_input_ids"))
    (tmp_path / "tokenizer.json").write_text("{}")
    with pytest.raises(ModelError, match="decoder_input_ids"):
        resolve_model(tmp_path)


def test_per_token_logits_are_refused_as_a_cross_encoder(tmp_path: Path) -> None:
    tiny_onnx(tmp_path / "model.onnx", outputs=[("logits", ("b", "s", 32128))])
    (tmp_path / "tokenizer.json").write_text("{}")
    with pytest.raises(ModelError, match="not one score per pair"):
        resolve_model(tmp_path)


def test_many_label_head_is_refused(tmp_path: Path) -> None:
    tiny_onnx(tmp_path / "model.onnx", outputs=[("logits", ("b", 3))])
    (tmp_path / "tokenizer.json").write_text("{}")
    with pytest.raises(ModelError, match="3 labels"):
        resolve_model(tmp_path)


def test_unrecognisable_outputs_ask_for_a_manifest(tmp_path: Path) -> None:
    tiny_onnx(tmp_path / "model.onnx", outputs=[("a", ("b", 1)), ("c", ("b", 1))])
    (tmp_path / "tokenizer.json").write_text("{}")
    with pytest.raises(ModelError, match=r"rerank_bridge\.json"):
        resolve_model(tmp_path)


def test_file_that_is_not_onnx_is_a_model_error(tmp_path: Path) -> None:
    (tmp_path / "model.onnx").write_bytes(b"\xff\xff\xff\xff not protobuf")
    (tmp_path / "tokenizer.json").write_text("{}")
    with pytest.raises(ModelError, match="not a readable ONNX model"):
        resolve_model(tmp_path)


# --- ONNX signature reader ---------------------------------------------------------------------


def test_signature_matches_onnxruntime(tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    path = tiny_onnx(tmp_path / "m.onnx", outputs=[("logits", ("batch", 1))])
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    signature = read_signature(path)
    expected = (
        [(i.name, tuple(i.shape)) for i in session.get_inputs()],
        [(o.name, tuple(o.shape)) for o in session.get_outputs()],
    )
    actual = (
        [(i.name, i.shape) for i in signature.inputs],
        [(o.name, o.shape) for o in signature.outputs],
    )
    assert actual == expected


def test_signature_omits_weights_listed_as_inputs(tmp_path: Path) -> None:
    path = tiny_onnx(tmp_path / "m.onnx", ir_version=3, weights_as_inputs=True)
    assert read_signature(path).input_names == ("input_ids", "attention_mask", "token_type_ids")


# --- cache location ----------------------------------------------------------------------------


def test_cache_env_variable_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RERANK_BRIDGE_CACHE", str(tmp_path / "models"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "models"


def test_cache_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("RERANK_BRIDGE_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "rerank-bridge"


def test_cache_defaults_to_the_home_cache_not_tmp(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RERANK_BRIDGE_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert default_cache_dir() == Path.home() / ".cache" / "rerank-bridge"


# --- converted directories (rerank_bridge.json written by `models convert`) --------------------


def test_manifest_model_file_picks_the_quantized_graph(tmp_path: Path) -> None:
    tiny_onnx(tmp_path / "model.onnx")
    tiny_onnx(tmp_path / "model_quantized.onnx")
    (tmp_path / "tokenizer.json").write_text("{}")
    (tmp_path / "rerank_bridge.json").write_text(
        json.dumps({"kind": "cross", "model_file": "model_quantized.onnx", "output": "logits"})
    )
    assert resolve_model(tmp_path).onnx_path.name == "model_quantized.onnx"


def test_manifest_pooling_applies_to_token_outputs(tmp_path: Path) -> None:
    tiny_onnx(tmp_path / "model.onnx", outputs=[("last_hidden_state", ("b", "s", 8))])
    (tmp_path / "tokenizer.json").write_text("{}")
    (tmp_path / "rerank_bridge.json").write_text(json.dumps({"kind": "bi", "pooling": "cls"}))
    assert resolve_model(tmp_path).pooling == "cls"


def test_pooled_output_needs_no_pooling(tmp_path: Path) -> None:
    tiny_onnx(tmp_path / "model.onnx", outputs=[("sentence_embedding", ("b", 8))])
    (tmp_path / "tokenizer.json").write_text("{}")
    (tmp_path / "rerank_bridge.json").write_text(json.dumps({"kind": "bi", "pooling": "mean"}))
    assert resolve_model(tmp_path).pooling is None


def test_converted_bi_encoder_resolves(bi_encoder_dir: Path) -> None:
    files = resolve_model(bi_encoder_dir)
    assert (files.kind, files.output_name) == ("bi", "sentence_embedding")


def test_cache_directory_passed_as_a_model_gets_a_hint(tmp_path: Path) -> None:
    write_files(tmp_path / DEFAULT_MODEL, flashrank_files(KNOWN_MODELS[DEFAULT_MODEL].onnx_file))
    with pytest.raises(ModelNotFoundError, match="looks like a model cache"):
        resolve_model(tmp_path)


# --- rank-T5-flan: scored pointwise like FlashRank does, or refused clearly --------------------

T5_CONFIG: dict[str, object] = {"architectures": ["T5ForConditionalGeneration"], "model_type": "t5"}


def test_rank_t5_pointwise_graph_resolves_without_token_type_ids(tmp_path: Path) -> None:
    onnx_file = KNOWN_MODELS["rank-T5-flan"].onnx_file
    write_files(tmp_path / "rank-T5-flan", flashrank_files(onnx_file, config=T5_CONFIG))
    files = resolve_model("rank-T5-flan", cache_dir=tmp_path, download=False)
    assert (files.kind, files.input_names) == ("cross", ("input_ids", "attention_mask"))


def test_rank_t5_seq2seq_graph_is_refused_with_the_reason(tmp_path: Path) -> None:
    folder = tmp_path / "rank-T5-flan"
    write_files(folder, flashrank_files(KNOWN_MODELS["rank-T5-flan"].onnx_file, config=T5_CONFIG))
    tiny_onnx(
        folder / KNOWN_MODELS["rank-T5-flan"].onnx_file,
        inputs=("input_ids", "attention_mask", "decoder_input_ids"),
        outputs=[("logits", ("b", "t", 32128))],
    )
    with pytest.raises(ModelError, match="encoder-decoder or generative graphs are not supported"):
        resolve_model("rank-T5-flan", cache_dir=tmp_path, download=False)


def test_flashrank_listwise_llm_is_refused_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="listwise LLM reranker"):
        resolve_model("rank_zephyr_7b_v1_full", cache_dir=tmp_path)
