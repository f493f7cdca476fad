"""Cross- and bi-encoder scorers on real ONNX models: numerics, order, errors, caching, registry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from tokenizers import Tokenizer

from bridge.errors import InputError, ModelError
from bridge.scoring import BiEncoderScorer, CrossEncoderScorer, SharedScorers, load_scorer
from bridge.scoring.cross_encoder import _probabilities
from bridge.scoring.session import create_session, optimized_graph_path, resolve_providers
from bridge.scoring.tokenize import TextTokenizer

QUERY = "cordless drill"
DRILL = "DEWALT 20V MAX cordless drill kit"
PLATES = "white porcelain dinner plates"
PASSAGES = [
    PLATES,
    DRILL,
    "Milwaukee M18 brushless hammer drill with two lithium-ion batteries, charger and a bag",
    "garden hose 50 ft",
    "Ryobi ONE+ 18V cordless compact drill/driver kit with 1.5 Ah battery and charger",
]


@pytest.fixture(scope="module")
def graph_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("graphs")


@pytest.fixture(scope="module")
def trained(homedepot_cross_encoder_dir: Path, graph_cache: Path) -> CrossEncoderScorer:
    scorer = load_scorer(homedepot_cross_encoder_dir, cache_dir=graph_cache, max_length=128)
    assert isinstance(scorer, CrossEncoderScorer)
    return scorer


@pytest.fixture(scope="module")
def nano(nano_cross_encoder_dir: Path) -> CrossEncoderScorer:
    scorer = load_scorer(nano_cross_encoder_dir, max_length=128)
    assert isinstance(scorer, CrossEncoderScorer)
    return scorer


@pytest.fixture(scope="module")
def bi(bi_encoder_dir: Path) -> BiEncoderScorer:
    scorer = load_scorer(bi_encoder_dir)
    assert isinstance(scorer, BiEncoderScorer)
    return scorer


def _padded_reference(
    model_dir: Path, query: str, passages: list[str], max_length: int
) -> list[float]:
    """FlashRank's recipe: one batch padded to the longest, unoptimised graph, sigmoid."""
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=max_length)
    tokenizer.enable_padding()
    encodings = tokenizer.encode_batch([(query, p) for p in passages])
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(model_dir / "model.onnx"), options)
    feed = {
        "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
        "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
        "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
    }
    (logits,) = session.run(None, feed)
    return (1.0 / (1.0 + np.exp(-logits[:, 0].astype(np.float64)))).tolist()


def test_one_logit_becomes_a_sigmoid() -> None:
    assert _probabilities(np.array([[0.0], [2.0]])).tolist() == pytest.approx(
        [0.5, 0.880797], abs=1e-6
    )


def test_two_logits_become_softmax_column_one() -> None:
    assert _probabilities(np.array([[1.0, 3.0]])).tolist() == pytest.approx([0.880797], abs=1e-6)


def test_more_than_two_logits_is_a_model_error() -> None:
    with pytest.raises(ModelError):
        _probabilities(np.zeros((2, 3)))


def test_cross_scores_match_an_unoptimised_padded_run(
    trained: CrossEncoderScorer, homedepot_cross_encoder_dir: Path
) -> None:
    reference = _padded_reference(homedepot_cross_encoder_dir, QUERY, PASSAGES, 128)
    assert trained.score(QUERY, PASSAGES) == pytest.approx(reference, abs=1e-5)


def test_trained_cross_encoder_ranks_the_drill_above_plates(trained: CrossEncoderScorer) -> None:
    plates, drill = trained.score(QUERY, [PLATES, DRILL])
    assert drill > plates


def test_cross_scores_are_python_floats_in_the_unit_interval(nano: CrossEncoderScorer) -> None:
    scores = nano.score(QUERY, PASSAGES)
    assert all(type(s) is float and 0.0 < s < 1.0 for s in scores)


def test_scores_do_not_depend_on_the_other_passages_for_fp32(trained: CrossEncoderScorer) -> None:
    alone = [trained.score(QUERY, [p])[0] for p in PASSAGES]
    assert trained.score(QUERY, PASSAGES) == pytest.approx(alone, abs=1e-5)


def test_score_pairs_mixing_queries_equals_per_query_scores(trained: CrossEncoderScorer) -> None:
    other = "garden hose"
    pairs = [(QUERY, p) for p in PASSAGES] + [(other, p) for p in PASSAGES]
    expected = trained.score(QUERY, PASSAGES) + trained.score(other, PASSAGES)
    assert trained.score_pairs(pairs) == pytest.approx(expected, abs=1e-5)


def test_scoring_no_passages_returns_an_empty_list(nano: CrossEncoderScorer) -> None:
    assert nano.score(QUERY, []) == []


def test_a_non_string_passage_is_an_input_error_naming_its_index(nano: CrossEncoderScorer) -> None:
    with pytest.raises(InputError, match=r"passage \[1\]"):
        nano.score(QUERY, ["ok", 3])  # type: ignore[list-item]


def test_cross_encoder_embed_is_a_model_error(nano: CrossEncoderScorer) -> None:
    with pytest.raises(ModelError):
        nano.embed(["drill"])


def test_score_cache_serves_repeated_pairs(nano_cross_encoder_dir: Path) -> None:
    scorer = load_scorer(nano_cross_encoder_dir, max_length=128, cache_size=100)
    first = scorer.score(QUERY, PASSAGES)
    second = scorer.score(QUERY, PASSAGES)
    assert scorer.cache is not None
    assert (second, scorer.cache.hits) == (first, len(PASSAGES))


def test_bi_encoder_embeddings_are_unit_float32_rows(bi: BiEncoderScorer) -> None:
    vectors = bi.embed([DRILL, PLATES, "garden hose"])
    norms = np.linalg.norm(vectors, axis=1)
    assert (vectors.dtype, vectors.shape[0], norms.tolist()) == (
        np.dtype(np.float32),
        3,
        pytest.approx([1.0, 1.0, 1.0], abs=1e-5),
    )


def test_bi_encoder_ranks_the_drill_above_plates(bi: BiEncoderScorer) -> None:
    plates, drill = bi.score(QUERY, [PLATES, DRILL])
    assert drill > plates


def test_bi_encoder_score_is_the_cosine_of_embeddings(bi: BiEncoderScorer) -> None:
    q, d = bi.embed([QUERY, DRILL])
    assert bi.score(QUERY, [DRILL])[0] == pytest.approx(float(q @ d), abs=1e-5)


def test_bi_encoder_embedding_does_not_depend_on_batch_companions(bi: BiEncoderScorer) -> None:
    alone = bi.embed([DRILL])[0]
    together = bi.embed([PASSAGES[2], DRILL, PLATES])[1]
    assert np.abs(alone - together).max() < 1e-5


def test_optimised_graph_is_saved_beside_a_writable_model(nano_cross_encoder_dir: Path) -> None:
    # the source graph, not an optimised copy saved by an earlier load (glob order is arbitrary)
    onnx_path = next(
        p for p in nano_cross_encoder_dir.glob("model*.onnx") if "optimized" not in p.name
    )
    create_session(onnx_path, model_config={})
    assert optimized_graph_path(onnx_path, resolve_providers(None), None, tag="NonexNone").is_file()


def test_optimised_graph_of_a_read_only_model_goes_to_the_cache(
    trained: CrossEncoderScorer, graph_cache: Path
) -> None:
    assert list((graph_cache / "optimized").glob("*.onnx"))


def test_a_saved_optimised_graph_is_reused(nano_cross_encoder_dir: Path) -> None:
    onnx_path = next(
        p for p in nano_cross_encoder_dir.glob("model*.onnx") if "optimized" not in p.name
    )
    create_session(onnx_path, model_config={})
    saved = optimized_graph_path(onnx_path, resolve_providers(None), None, tag="NonexNone")
    before = saved.stat().st_mtime_ns
    create_session(onnx_path, model_config={})
    assert saved.stat().st_mtime_ns == before


def test_an_unavailable_provider_is_a_model_error_naming_it() -> None:
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("CUDA is available here")
    with pytest.raises(ModelError, match="CUDAExecutionProvider"):
        resolve_providers(["cuda"])


def test_shared_scorers_load_each_model_and_options_once(nano_cross_encoder_dir: Path) -> None:
    registry = SharedScorers()
    first = registry.get(nano_cross_encoder_dir, max_length=64)
    again = registry.get(nano_cross_encoder_dir, max_length=64)
    other = registry.get(nano_cross_encoder_dir, max_length=32)
    assert (first is again, first is other) == (True, False)


def test_shared_scorers_differing_only_in_max_length_share_one_session(
    nano_cross_encoder_dir: Path,
) -> None:
    registry = SharedScorers()
    ranker_style = registry.get(nano_cross_encoder_dir, max_length=512)
    wrapper_style = registry.get(nano_cross_encoder_dir)
    assert ranker_style._model.session is wrapper_style._model.session


def _token_output_scorer(
    bi: BiEncoderScorer, bi_encoder_dir: Path, pooling: str
) -> BiEncoderScorer:
    return BiEncoderScorer(
        bi._model.session,
        TextTokenizer(bi_encoder_dir / "tokenizer.json", max_length=bi.max_length),
        model_name="token-output",
        output_name="last_hidden_state",
        pooling=pooling,
    )


def test_mean_pooling_token_outputs_equals_the_models_sentence_embedding(
    bi: BiEncoderScorer, bi_encoder_dir: Path
) -> None:
    pooled = _token_output_scorer(bi, bi_encoder_dir, "mean").embed([DRILL, PLATES])
    assert np.abs(pooled - bi.embed([DRILL, PLATES])).max() < 1e-5


def test_cls_pooling_takes_the_first_token(bi: BiEncoderScorer, bi_encoder_dir: Path) -> None:
    cls = _token_output_scorer(bi, bi_encoder_dir, "cls").embed([DRILL])
    mean = _token_output_scorer(bi, bi_encoder_dir, "mean").embed([DRILL])
    assert np.abs(cls - mean).max() > 1e-3


def test_an_unknown_pooling_is_a_model_error(bi: BiEncoderScorer, bi_encoder_dir: Path) -> None:
    with pytest.raises(ModelError, match="pooling"):
        _token_output_scorer(bi, bi_encoder_dir, "max")


def test_batches_run_in_parallel_give_the_sequential_scores(nano_cross_encoder_dir: Path) -> None:
    # A tiny token budget cuts 40 pairs into many batches, so ordering mistakes would show.
    scorer = load_scorer(nano_cross_encoder_dir, token_budget=64)
    passages = [f"cordless drill kit number {i} " + "with battery " * (i % 7) for i in range(40)]
    scorer._model.parallel_batches = 1
    sequential = scorer.score("cordless drill", passages)
    scorer._model.parallel_batches = 2
    assert scorer.score("cordless drill", passages) == sequential


def _optimised_ops(model_dir: Path, config: dict[str, int]) -> set[str]:
    import onnx

    onnx_path = next(p for p in model_dir.glob("model*.onnx") if "optimized" not in p.name)
    create_session(onnx_path, model_config=config)
    tag = f"{config.get('num_attention_heads')}x{config.get('hidden_size')}"
    saved = optimized_graph_path(onnx_path, resolve_providers(None), None, tag=tag)
    return {node.op_type for node in onnx.load(str(saved)).graph.node}


def test_cpu_graphs_keep_add_and_layer_norm_instead_of_the_slow_skip_layer_norm(
    nano_cross_encoder_dir: Path, bi_encoder_dir: Path
) -> None:
    # int8 graph: onnxruntime's own pass; fp32 graph: the transformer optimizer as well.
    int8_ops = _optimised_ops(nano_cross_encoder_dir, {})
    fp32_ops = _optimised_ops(bi_encoder_dir, {"num_attention_heads": 12, "hidden_size": 384})
    for ops in (int8_ops, fp32_ops):
        assert "LayerNormalization" in ops
        assert "SkipLayerNormalization" not in ops
    assert "BiasGelu" in fp32_ops  # the transformer optimizer's other fusions still apply


def _batch_sizes(scorer: CrossEncoderScorer, passages: list[str]) -> list[int]:
    tokens = scorer._tokenizer.encode_pairs([("cordless drill", p) for p in passages])
    return [int(b.attention_mask.sum()) for b, _ in scorer._model.run(tokens, 0)]


def test_a_short_call_is_split_evenly_between_the_two_workers(
    nano_cross_encoder_dir: Path,
) -> None:
    scorer = load_scorer(nano_cross_encoder_dir)
    titles = [f"DEWALT 20V MAX cordless drill kit model {i} with two batteries" for i in range(20)]
    sizes = _batch_sizes(scorer, titles)
    assert len(sizes) == 2  # 20 titles fit one 512-token batch, which would idle a core
    assert abs(sizes[0] - sizes[1]) <= max(sizes) // 4
    assert len(_batch_sizes(scorer, titles[:4])) == 1  # under 256 tokens: one run is cheaper
