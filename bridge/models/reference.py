"""A plain-numpy BERT forward pass: the yardstick the converted ONNX graph is checked against.

It repeats the graph's math in float64 (so its own rounding is negligible) straight from the
checkpoint weights; any disagreement beyond float32 noise means the graph is wrong.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from bridge.models.convert_weights import BertSpec, BertWeights, LayerWeights, Pooling

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

# The additive attention mask of classic BERT: exp(-10000) is exactly 0 in float32.
MASK_VALUE = -10000.0


def _erf(x: F64) -> F64:
    return np.vectorize(math.erf, otypes=[np.float64])(x)  # type: ignore[no-any-return]


def activation(x: F64, name: str) -> F64:
    if name == "relu":
        return np.maximum(x, 0.0)
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def layer_norm(
    x: F64, weight: npt.NDArray[np.float32], bias: npt.NDArray[np.float32], eps: float
) -> F64:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    normed: F64 = (x - mean) / np.sqrt(var + eps) * weight + bias
    return normed


def _linear(x: F64, weight: npt.NDArray[np.float32], bias: npt.NDArray[np.float32]) -> F64:
    out: F64 = x @ weight.astype(np.float64).T + bias
    return out


def _layer(x: F64, mask_add: F64, w: LayerWeights, spec: BertSpec) -> F64:
    batch, seq, hidden = x.shape
    heads, size = spec.num_heads, spec.head_size

    def split(t: F64) -> F64:
        split_t: F64 = t.reshape(batch, seq, heads, size).transpose(0, 2, 1, 3)
        return split_t

    q = split(_linear(x, w.query_w, w.query_b))
    k = split(_linear(x, w.key_w, w.key_b))
    v = split(_linear(x, w.value_w, w.value_b))
    scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(size) + mask_add
    scores = scores - scores.max(axis=-1, keepdims=True)
    probs = np.exp(scores)
    probs = probs / probs.sum(axis=-1, keepdims=True)
    context = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, seq, hidden)
    x = layer_norm(
        _linear(context, w.attn_out_w, w.attn_out_b) + x,
        w.attn_ln_w,
        w.attn_ln_b,
        spec.layer_norm_eps,
    )
    inner = activation(_linear(x, w.inter_w, w.inter_b), spec.hidden_act)
    return layer_norm(
        _linear(inner, w.out_w, w.out_b) + x, w.out_ln_w, w.out_ln_b, spec.layer_norm_eps
    )


def encode(
    spec: BertSpec, weights: BertWeights, input_ids: I64, attention_mask: I64, token_type_ids: I64
) -> F64:
    """The last hidden state, shape ``[batch, seq, hidden]``."""
    seq = input_ids.shape[1]
    x = (
        weights.word[input_ids].astype(np.float64)
        + weights.position[:seq].astype(np.float64)
        + weights.token_type[token_type_ids].astype(np.float64)
    )
    x = layer_norm(x, weights.emb_ln_w, weights.emb_ln_b, spec.layer_norm_eps)
    mask_add = (1.0 - attention_mask.astype(np.float64))[:, None, None, :] * MASK_VALUE
    for layer in weights.layers:
        x = _layer(x, mask_add, layer, spec)
    return x


def cross_logits(
    spec: BertSpec, weights: BertWeights, input_ids: I64, attention_mask: I64, token_type_ids: I64
) -> F64:
    """Pooler (tanh dense on [CLS]) then classifier: ``[batch, num_labels]``."""
    assert weights.pooler_w is not None
    assert weights.pooler_b is not None
    assert weights.classifier_w is not None
    assert weights.classifier_b is not None
    hidden = encode(spec, weights, input_ids, attention_mask, token_type_ids)
    pooled = np.tanh(_linear(hidden[:, 0], weights.pooler_w, weights.pooler_b))
    return _linear(pooled, weights.classifier_w, weights.classifier_b)


def sentence_embedding(
    spec: BertSpec,
    weights: BertWeights,
    input_ids: I64,
    attention_mask: I64,
    token_type_ids: I64,
    pooling: Pooling = "mean",
) -> F64:
    """Mean (or CLS) pooling over the attention mask, then L2 normalisation: ``[batch, hidden]``."""
    hidden = encode(spec, weights, input_ids, attention_mask, token_type_ids)
    if pooling == "cls":
        pooled = hidden[:, 0]
    else:
        mask = attention_mask.astype(np.float64)[:, :, None]
        pooled = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
    norm = np.linalg.norm(pooled, axis=1, keepdims=True)
    normalised: F64 = pooled / np.maximum(norm, 1e-12)
    return normalised
