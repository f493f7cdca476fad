"""The listwise objective of `train`: batches of whole query groups, softmax cross-entropy.

A *group* is one training query's pairs: its judged passages with their graded targets plus its
hard (BM25) and random negatives. Rerankers trained on a retriever's hard negatives gain from
scoring a query's candidates against each other rather than one by one (Gao et al. 2021,
"Rethink Training of BERT Rerankers in Multi-Stage Retrieval Pipeline": localized contrastive
estimation). With graded judgments the target distribution is ListNet's: proportional to each
pair's graded target ((grade - 1) / 2 on Home Depot) over the group, so a grade-3 product takes
more of the probability than a grade-2 one and negatives take none. A group whose targets are all
0 (only grade-1 products and negatives) has no target distribution and adds no listwise term.

A softmax is blind to a shift of all the scores of a group, but the fusion modes add the model's
score to the engine's, so the pointwise binary cross-entropy is kept beside it (``pointwise
weight`` x BCE over every pair) and the sigmoid of the score stays a calibrated value in [0, 1].
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bridge.errors import TrainingError
from bridge.training.pairs import Pair

LOSSES = ("pointwise", "listwise")
# one run of this many batches is sorted by length before it is cut (as length_buckets does)
BUCKET_WINDOW = 50


@dataclass(frozen=True)
class LossSettings:
    """``pointwise``: BCE on graded targets, shuffled pairs. ``listwise``: batches of whole
    query groups, listwise softmax cross-entropy + ``pointwise_weight`` x BCE."""

    kind: str = "pointwise"
    pointwise_weight: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in LOSSES:
            raise TrainingError(f"--loss must be one of {', '.join(LOSSES)}, got {self.kind!r}")
        if not math.isfinite(self.pointwise_weight) or self.pointwise_weight < 0:
            raise TrainingError(
                f"--pointwise-weight must be a finite number >= 0, got {self.pointwise_weight}"
            )

    def describe(self) -> str:
        if self.kind == "pointwise":
            return "pointwise binary cross-entropy on graded targets"
        return (
            "listwise softmax cross-entropy over each query group (target ∝ graded target) "
            f"+ {self.pointwise_weight:g} x pointwise binary cross-entropy"
        )


GroupBatch = tuple[list[tuple[str, str]], list[list[float]]]  # pairs, targets per group


def check_group(group: Sequence[Pair]) -> None:
    """A group is a non-empty list of pairs of one query with targets in [0, 1]."""
    if not group:
        raise TrainingError("a query group has no pairs")
    query = group[0].query
    for pair in group:
        if pair.query != query:
            raise TrainingError(
                f"a query group mixes queries {query!r} and {pair.query!r}: one query per group"
            )
        if not 0.0 <= pair.target <= 1.0 or math.isnan(pair.target):
            raise TrainingError(
                f"query {query!r}: target {pair.target} of a pair is outside [0, 1]"
            )


def group_batches(groups: Sequence[Sequence[Pair]], size: int, seed: int) -> list[GroupBatch]:
    """Batches of whole query groups, about ``size`` pairs each (a larger group is a batch of
    its own). As in pointwise training, each run of ``BUCKET_WINDOW`` batches is sorted by the
    group's longest pair before it is cut, so a batch pads little; the batch order is shuffled."""
    if size < 1:
        raise TrainingError(f"--batch-size must be >= 1, got {size}")
    if not groups:
        raise TrainingError("no query groups to train on")
    for group in groups:
        check_group(group)
    rng = random.Random(seed)
    order = list(groups)
    rng.shuffle(order)
    batches: list[list[Sequence[Pair]]] = []
    for run in _runs(order, size * BUCKET_WINDOW):
        run.sort(key=lambda g: max(len(p.query) + len(p.passage) for p in g))
        batches.extend(_pack(run, size))
    rng.shuffle(batches)
    return [
        ([(p.query, p.passage) for g in batch for p in g], [[p.target for p in g] for g in batch])
        for batch in batches
    ]


def _runs(groups: Sequence[Sequence[Pair]], pairs: int) -> list[list[Sequence[Pair]]]:
    """Consecutive groups cut into runs of about ``pairs`` pairs."""
    runs: list[list[Sequence[Pair]]] = [[]]
    count = 0
    for group in groups:
        if count >= pairs:
            runs.append([])
            count = 0
        runs[-1].append(group)
        count += len(group)
    return runs


def _pack(groups: Sequence[Sequence[Pair]], size: int) -> list[list[Sequence[Pair]]]:
    packed: list[list[Sequence[Pair]]] = []
    current: list[Sequence[Pair]] = []
    count = 0
    for group in groups:
        if current and count + len(group) > size:
            packed.append(current)
            current, count = [], 0
        current.append(group)
        count += len(group)
    if current:
        packed.append(current)
    return packed


def listwise_loss(logits: Any, groups: Sequence[Sequence[float]], pointwise_weight: float) -> Any:
    """Mean over the groups with a positive target of -sum(q log softmax(logits)), q = targets
    / their sum, plus ``pointwise_weight`` x the mean BCE over every pair of the batch."""
    import torch

    logits = logits.reshape(-1)  # a batch of one pair squeezes to a 0-d tensor
    sizes = [len(g) for g in groups]
    if not groups or min(sizes) < 1:
        raise TrainingError("a listwise batch needs non-empty query groups")
    if sum(sizes) != logits.shape[0]:
        raise TrainingError(f"{logits.shape[0]} scores for groups of {sum(sizes)} pairs")
    targets = torch.tensor([t for g in groups for t in g], dtype=logits.dtype)
    if bool(((targets < 0) | (targets > 1) | torch.isnan(targets)).any()):
        raise TrainingError("listwise targets must be in [0, 1]")
    listwise = logits.new_zeros(())
    counted = 0
    for scores, target in zip(torch.split(logits, sizes), torch.split(targets, sizes), strict=True):
        gain = target.sum()
        if float(gain) <= 0.0:
            continue
        listwise = listwise - torch.sum(target / gain * torch.log_softmax(scores, dim=0))
        counted += 1
    loss = listwise / counted if counted else listwise
    if pointwise_weight:
        bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets)
        loss = loss + pointwise_weight * bce
    return loss
