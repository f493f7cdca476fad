"""Build the ONNX graph of a BERT encoder with the ``onnx`` helper API (no PyTorch involved).

Inputs are int64 ``input_ids``, ``attention_mask``, ``token_type_ids`` of shape
``[batch, sequence]`` (both axes dynamic). A cross-encoder outputs ``logits``
``[batch, num_labels]``; a bi-encoder outputs ``sentence_embedding`` ``[batch, hidden]``
(pooled, L2-normalised) and ``last_hidden_state``. The math is the one of
:mod:`bridge.models.reference`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from bridge.errors import ConfigError, ModelError
from bridge.models.convert_weights import Checkpoint, LayerWeights
from bridge.models.reference import MASK_VALUE

if TYPE_CHECKING:
    import onnx

INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
CROSS_OUTPUT = "logits"
BI_OUTPUT = "sentence_embedding"
HIDDEN_OUTPUT = "last_hidden_state"
# LayerNormalization is an ONNX operator from opset 17; the graph uses nothing changed up to 21.
MIN_OPSET, MAX_OPSET = 17, 21


def onnx_module() -> Any:
    """The ``onnx`` package, or a ModelError naming the extra that provides it."""
    try:
        import onnx
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ModelError(
            "converting needs the 'onnx' package: pip install 'rerank-bridge[convert]'"
        ) from exc
    return onnx


class _GraphBuilder:
    """Accumulates nodes and initializers; every helper returns the name of its output tensor."""

    def __init__(self) -> None:
        self.onnx = onnx_module()
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._count = 0

    def _name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, hint: str, value: npt.NDArray[Any]) -> str:
        name = self._name(hint)
        self.initializers.append(
            self.onnx.numpy_helper.from_array(np.ascontiguousarray(value), name)
        )
        return name

    def op(self, op_type: str, inputs: list[str], hint: str | None = None, **attrs: Any) -> str:
        output = self._name(hint or op_type.lower())
        self.nodes.append(self.onnx.helper.make_node(op_type, inputs, [output], **attrs))
        return output

    def linear(
        self, x: str, weight: npt.NDArray[np.float32], bias: npt.NDArray[np.float32], hint: str
    ) -> str:
        # Weights arrive as PyTorch [out, in]; MatMul wants [in, out].
        product = self.op("MatMul", [x, self.const(hint + ".weight", weight.T)], hint + ".matmul")
        return self.op("Add", [product, self.const(hint + ".bias", bias)], hint)

    def layer_norm(
        self,
        x: str,
        weight: npt.NDArray[np.float32],
        bias: npt.NDArray[np.float32],
        eps: float,
        hint: str,
    ) -> str:
        return self.op(
            "LayerNormalization",
            [x, self.const(hint + ".weight", weight), self.const(hint + ".bias", bias)],
            hint,
            axis=-1,
            epsilon=eps,
        )


def _embeddings(g: _GraphBuilder, ckpt: Checkpoint) -> str:
    w = ckpt.weights
    words = g.op("Gather", [g.const("word_embeddings", w.word), "input_ids"], "words")
    # A Slice of the position table, not Gather(Range): the runtime's Range+Gather rewrite breaks
    # on scalar Range bounds.
    seq_len = g.op("Shape", ["input_ids"], "seq_len", start=1, end=2)
    zero = g.const("zero", np.array([0], dtype=np.int64))
    pos = g.op(
        "Slice", [g.const("position_embeddings", w.position), zero, seq_len, zero], "positions"
    )
    types = g.op(
        "Gather", [g.const("token_type_embeddings", w.token_type), "token_type_ids"], "types"
    )
    summed = g.op("Add", [g.op("Add", [words, pos]), types], "embeddings_sum")
    return g.layer_norm(
        summed, w.emb_ln_w, w.emb_ln_b, ckpt.spec.layer_norm_eps, "embeddings.LayerNorm"
    )


def _mask_bias(g: _GraphBuilder) -> str:
    """(1 - mask) * -10000, shaped [batch, 1, 1, seq] to broadcast over heads and queries."""
    mask = g.op("Cast", ["attention_mask"], "mask_float", to=g.onnx.TensorProto.FLOAT)
    inverted = g.op(
        "Sub", [g.const("one_f", np.array(1.0, dtype=np.float32)), mask], "mask_inverted"
    )
    bias = g.op(
        "Mul",
        [inverted, g.const("mask_value", np.array(MASK_VALUE, dtype=np.float32))],
        "mask_bias",
    )
    return g.op(
        "Unsqueeze", [bias, g.const("mask_axes", np.array([1, 2], dtype=np.int64))], "mask_bias_4d"
    )


def _layer(
    g: _GraphBuilder, x: str, mask_bias: str, w: LayerWeights, ckpt: Checkpoint, index: int
) -> str:
    spec = ckpt.spec
    p = f"layer.{index}"
    split_shape = g.const(
        p + ".split_shape", np.array([0, 0, spec.num_heads, spec.head_size], dtype=np.int64)
    )
    merge_shape = g.const(p + ".merge_shape", np.array([0, 0, spec.hidden_size], dtype=np.int64))

    def heads(t: str, perm: list[int], hint: str) -> str:
        return g.op("Transpose", [g.op("Reshape", [t, split_shape])], hint, perm=perm)

    q = heads(g.linear(x, w.query_w, w.query_b, p + ".query"), [0, 2, 1, 3], p + ".q")
    k = heads(g.linear(x, w.key_w, w.key_b, p + ".key"), [0, 2, 3, 1], p + ".k")
    v = heads(g.linear(x, w.value_w, w.value_b, p + ".value"), [0, 2, 1, 3], p + ".v")
    scores = g.op("MatMul", [q, k], p + ".scores")
    scale = g.const(p + ".scale", np.array(1.0 / math.sqrt(spec.head_size), dtype=np.float32))
    scores = g.op("Add", [g.op("Mul", [scores, scale]), mask_bias], p + ".masked_scores")
    probs = g.op("Softmax", [scores], p + ".probs", axis=-1)
    context = g.op("Transpose", [g.op("MatMul", [probs, v])], p + ".context_t", perm=[0, 2, 1, 3])
    context = g.op("Reshape", [context, merge_shape], p + ".context")
    attn = g.linear(context, w.attn_out_w, w.attn_out_b, p + ".attention.output")
    x = g.layer_norm(
        g.op("Add", [attn, x]),
        w.attn_ln_w,
        w.attn_ln_b,
        spec.layer_norm_eps,
        p + ".attention.LayerNorm",
    )
    inner = g.linear(x, w.inter_w, w.inter_b, p + ".intermediate")
    inner = _activation(g, inner, spec.hidden_act, p)
    out = g.linear(inner, w.out_w, w.out_b, p + ".output")
    return g.layer_norm(
        g.op("Add", [out, x]), w.out_ln_w, w.out_ln_b, spec.layer_norm_eps, p + ".output.LayerNorm"
    )


def _activation(g: _GraphBuilder, x: str, name: str, hint: str) -> str:
    if name == "relu":
        return g.op("Relu", [x], hint + ".relu")
    # GELU (erf form) spelled out so ONNX Runtime can fuse it into its own Gelu kernel.
    scaled = g.op("Div", [x, g.const(hint + ".sqrt2", np.array(math.sqrt(2.0), dtype=np.float32))])
    one_plus = g.op(
        "Add", [g.op("Erf", [scaled]), g.const(hint + ".one", np.array(1.0, dtype=np.float32))]
    )
    half_x = g.op("Mul", [x, g.const(hint + ".half", np.array(0.5, dtype=np.float32))])
    return g.op("Mul", [half_x, one_plus], hint + ".gelu")


def _first_token(g: _GraphBuilder, hidden: str) -> str:
    """hidden[:, 0] as Slice + Squeeze: the runtime rewrites a constant-index Gather wrongly."""
    zero = g.const("zero_1d", np.array([0], dtype=np.int64))
    one = g.const("one_1d", np.array([1], dtype=np.int64))
    first = g.op("Slice", [hidden, zero, one, one], "first_token_3d")
    return g.op("Squeeze", [first, one], "first_token")


def _cross_head(g: _GraphBuilder, hidden: str, ckpt: Checkpoint) -> str:
    w = ckpt.weights
    assert w.pooler_w is not None
    assert w.pooler_b is not None
    assert w.classifier_w is not None
    assert w.classifier_b is not None
    cls = _first_token(g, hidden)
    pooled = g.op("Tanh", [g.linear(cls, w.pooler_w, w.pooler_b, "pooler.dense")], "pooled")
    product = g.op("MatMul", [pooled, g.const("classifier.weight", w.classifier_w.T)])
    g.nodes.append(
        g.onnx.helper.make_node(
            "Add", [product, g.const("classifier.bias", w.classifier_b)], [CROSS_OUTPUT]
        )
    )
    return CROSS_OUTPUT


def _bi_head(g: _GraphBuilder, hidden: str, ckpt: Checkpoint) -> str:
    axis1 = g.const("axis1", np.array([1], dtype=np.int64))
    if ckpt.pooling == "cls":
        pooled = _first_token(g, hidden)
    else:
        mask = g.op("Cast", ["attention_mask"], "pool_mask", to=g.onnx.TensorProto.FLOAT)
        mask = g.op(
            "Unsqueeze", [mask, g.const("axis2", np.array([2], dtype=np.int64))], "pool_mask_3d"
        )
        summed = g.op("ReduceSum", [g.op("Mul", [hidden, mask]), axis1], "pool_sum", keepdims=0)
        count = g.op("ReduceSum", [mask, axis1], "pool_count", keepdims=0)
        count = g.op("Max", [count, g.const("min_count", np.array(1e-9, dtype=np.float32))])
        pooled = g.op("Div", [summed, count], "mean_pooled")
    square_sum = g.op("ReduceSum", [g.op("Mul", [pooled, pooled]), axis1], "square_sum", keepdims=1)
    norm = g.op(
        "Max", [g.op("Sqrt", [square_sum]), g.const("min_norm", np.array(1e-12, dtype=np.float32))]
    )
    g.nodes.append(g.onnx.helper.make_node("Div", [pooled, norm], [BI_OUTPUT]))
    return BI_OUTPUT


def build_model(ckpt: Checkpoint, opset: int = 17) -> onnx.ModelProto:
    """The ONNX model of ``ckpt``; call ``onnx.save`` on it."""
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ConfigError(
            f"opset must be between {MIN_OPSET} and {MAX_OPSET}, got {opset}", field="opset"
        )
    g = _GraphBuilder()
    onnx = g.onnx
    helper, tp = onnx.helper, onnx.TensorProto
    hidden = _embeddings(g, ckpt)
    mask_bias = _mask_bias(g)
    for index, layer in enumerate(ckpt.weights.layers):
        hidden = _layer(g, hidden, mask_bias, layer, ckpt, index)
    inputs = [
        helper.make_tensor_value_info(name, tp.INT64, ["batch", "sequence"]) for name in INPUT_NAMES
    ]
    if ckpt.kind == "cross":
        _cross_head(g, hidden, ckpt)
        outputs = [
            helper.make_tensor_value_info(
                CROSS_OUTPUT, tp.FLOAT, ["batch", ckpt.weights.num_labels]
            )
        ]
    else:
        g.nodes.append(helper.make_node("Identity", [hidden], [HIDDEN_OUTPUT]))
        _bi_head(g, HIDDEN_OUTPUT, ckpt)
        outputs = [
            helper.make_tensor_value_info(BI_OUTPUT, tp.FLOAT, ["batch", ckpt.spec.hidden_size]),
            helper.make_tensor_value_info(
                HIDDEN_OUTPUT, tp.FLOAT, ["batch", "sequence", ckpt.spec.hidden_size]
            ),
        ]
    graph = helper.make_graph(
        g.nodes, "bert_" + ckpt.kind, inputs, outputs, initializer=g.initializers
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", opset)],
        producer_name="rerank-bridge",
        doc_string=f"BERT {ckpt.kind}-encoder converted from {ckpt.directory.name}",
    )
    # The runtime we pin reads IR 10 at most; newer onnx packages would otherwise stamp a later IR.
    model.ir_version = min(model.ir_version, 10)
    onnx.checker.check_model(model, full_check=False)
    # Recorded shapes let the runtime fuse Add + LayerNormalization into SkipLayerNormalization.
    return onnx.shape_inference.infer_shapes(model)  # type: ignore[no-any-return]
