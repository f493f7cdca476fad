"""Length-sorted token-budget batches and per-batch padding (pure numpy, no model)."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from bridge.scoring.token_batches import make_batches, plan_batches
from bridge.scoring.tokenize import Tokens

lengths_strategy = st.lists(st.integers(min_value=1, max_value=300), min_size=1, max_size=60)


def _tokens(lengths: list[int]) -> Tokens:
    arr = np.array(lengths, dtype=np.int64)
    total = int(arr.sum())
    # Each sequence's ids encode (sequence number, position) so a round trip is checkable.
    ids = np.concatenate([1000 * (i + 1) + np.arange(n) for i, n in enumerate(lengths)])
    types = np.concatenate([np.arange(n) % 2 for n in lengths])
    assert ids.shape[0] == total
    return Tokens(ids=ids.astype(np.int64), type_ids=types.astype(np.int64), lengths=arr)


@given(lengths_strategy)
def test_plan_batches_covers_every_position_once(lengths: list[int]) -> None:
    batches = plan_batches(np.array(lengths, dtype=np.int64), token_budget=512, max_batch=16)
    covered = np.sort(np.concatenate(batches))
    assert covered.tolist() == list(range(len(lengths)))


@given(lengths_strategy)
def test_plan_batches_keeps_padded_tokens_within_budget(lengths: list[int]) -> None:
    arr = np.array(lengths, dtype=np.int64)
    for batch in plan_batches(arr, token_budget=512, max_batch=16):
        assert len(batch) == 1 or len(batch) * int(arr[batch].max()) <= 512


def test_plan_batches_gives_an_over_budget_sequence_its_own_batch() -> None:
    batches = plan_batches(np.array([900, 10, 10], dtype=np.int64), token_budget=512, max_batch=8)
    assert [b.tolist() for b in batches] == [[0], [1, 2]]


def test_plan_batches_respects_max_batch() -> None:
    batches = plan_batches(np.full(10, 4, dtype=np.int64), token_budget=10_000, max_batch=3)
    assert [len(b) for b in batches] == [3, 3, 3, 1]


def test_plan_batches_groups_similar_lengths() -> None:
    lengths = np.array([5, 200, 6, 199, 7, 198], dtype=np.int64)
    batches = plan_batches(lengths, token_budget=600, max_batch=8)
    assert [sorted(b.tolist()) for b in batches] == [[1, 3, 5], [0, 2, 4]]


@given(lengths_strategy)
def test_make_batches_pads_each_batch_to_its_own_longest(lengths: list[int]) -> None:
    for batch in make_batches(_tokens(lengths), token_budget=512, max_batch=16, pad_id=0):
        assert batch.input_ids.shape[1] == max(lengths[i] for i in batch.index)


@given(lengths_strategy)
def test_make_batches_round_trips_ids_types_and_mask(lengths: list[int]) -> None:
    tokens = _tokens(lengths)
    for batch in make_batches(tokens, token_budget=512, max_batch=16, pad_id=-1):
        for row, i in enumerate(batch.index.tolist()):
            n = lengths[i]
            assert batch.input_ids[row, :n].tolist() == (1000 * (i + 1) + np.arange(n)).tolist()
            assert batch.token_type_ids[row, :n].tolist() == (np.arange(n) % 2).tolist()
            assert batch.attention_mask[row].tolist() == [1] * n + [0] * (
                batch.input_ids.shape[1] - n
            )
            assert set(batch.input_ids[row, n:].tolist()) <= {-1}


def test_make_batches_builds_int64_arrays() -> None:
    (batch,) = make_batches(_tokens([3, 4]), token_budget=512, max_batch=16, pad_id=0)
    dtypes = {batch.input_ids.dtype, batch.attention_mask.dtype, batch.token_type_ids.dtype}
    assert dtypes == {np.dtype(np.int64)}


def test_make_batches_of_nothing_is_empty() -> None:
    empty = Tokens(
        ids=np.zeros(0, dtype=np.int64),
        type_ids=np.zeros(0, dtype=np.int64),
        lengths=np.zeros(0, dtype=np.int64),
    )
    assert make_batches(empty, token_budget=512, max_batch=16, pad_id=0) == []
