"""Length-sorted batches under a token budget, padded per batch only (vectorised numpy).

Padding every sequence to the longest of the whole request (what FlashRank does) wastes most of the
work when passage lengths vary; sorting by length and padding each batch to its own longest keeps
the padded token count close to the real one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from bridge.scoring.tokenize import IntArray, Tokens


@dataclass(frozen=True)
class Batch:
    """Model inputs for some of the sequences; ``index`` maps rows back to input positions."""

    index: IntArray
    input_ids: IntArray
    attention_mask: IntArray
    token_type_ids: IntArray


def plan_batches(lengths: IntArray, *, token_budget: int, max_batch: int) -> list[IntArray]:
    """Split positions into batches, longest first, each at most ``token_budget`` padded tokens."""
    order = np.argsort(-lengths, kind="stable")
    batches: list[IntArray] = []
    start = 0
    n = int(order.shape[0])
    while start < n:
        longest = int(lengths[order[start]])
        size = max(1, min(max_batch, token_budget // max(longest, 1)))
        batches.append(order[start : start + size])
        start += size
    return batches


def _offsets(lengths: IntArray) -> IntArray:
    starts: IntArray = np.zeros_like(lengths)
    np.cumsum(lengths[:-1], out=starts[1:])
    return starts


def make_batches(tokens: Tokens, *, token_budget: int, max_batch: int, pad_id: int) -> list[Batch]:
    if len(tokens) == 0:
        return []
    starts = _offsets(tokens.lengths)
    last = max(int(tokens.ids.shape[0]) - 1, 0)
    batches = []
    for index in plan_batches(tokens.lengths, token_budget=token_budget, max_batch=max_batch):
        lengths = tokens.lengths[index]
        width = int(lengths.max())
        positions = np.arange(width, dtype=np.int64)
        mask: npt.NDArray[np.bool_] = positions[None, :] < lengths[:, None]
        gather = np.minimum(starts[index][:, None] + positions[None, :], last)
        batches.append(
            Batch(
                index=index,
                input_ids=np.where(mask, tokens.ids[gather], pad_id),
                attention_mask=mask.astype(np.int64),
                token_type_ids=np.where(mask, tokens.type_ids[gather], 0),
            )
        )
    return batches
