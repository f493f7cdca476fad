"""Training pairs: each training query's judged passages (graded targets) plus negatives.

Negatives come from two places:

- *hard* negatives: the engine's BM25 top-``depth`` hits for the query that nobody judged for it,
  sampled. The risk: an unjudged hit may well be relevant (judgments only cover what an old engine
  showed); training then teaches the model to push a good result down. The knobs: ``skip_top``
  leaves out the first hits (the likeliest to be relevant), ``target`` gives them a label above 0
  (soft negatives), ``per_query`` sets how many.
- *random* negatives: passages drawn from the whole collection, almost surely irrelevant.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bridge.errors import TrainingError
from bridge.training.engine import Hit
from bridge.training.judgments import Judgments


@dataclass(frozen=True)
class Pair:
    query: str
    passage: str
    target: float  # 0..1
    kind: str  # "judged", "hard", "random"


@dataclass(frozen=True)
class NegativeSettings:
    per_query: int = 4
    depth: int = 30
    skip_top: int = 0
    target: float = 0.0
    random_per_query: int = 1

    def __post_init__(self) -> None:
        if self.per_query < 0 or self.random_per_query < 0:
            raise TrainingError("negatives per query must be >= 0")
        if self.depth < 1 or self.skip_top < 0 or self.skip_top >= self.depth:
            raise TrainingError("--negative-depth must be >= 1 and above --negative-skip")
        if not 0.0 <= self.target < 1.0:
            raise TrainingError(f"--negative-target must be in [0, 1), got {self.target}")


def build_pairs(
    judgments: Judgments,
    train_qids: Sequence[str],
    *,
    hits: Mapping[str, Sequence[Hit]] | None,
    negatives: NegativeSettings,
    seed: int,
    max_pairs: int | None = None,
) -> list[Pair]:
    """Pairs for ``train_qids``, whole queries at a time up to ``max_pairs``, shuffled."""
    rng = random.Random(seed)
    pairs = [
        p
        for group in _groups(judgments, train_qids, hits, negatives, rng, max_pairs)
        for p in group
    ]
    rng.shuffle(pairs)
    return pairs


def build_groups(
    judgments: Judgments,
    train_qids: Sequence[str],
    *,
    hits: Mapping[str, Sequence[Hit]] | None,
    negatives: NegativeSettings,
    seed: int,
    max_pairs: int | None = None,
) -> list[list[Pair]]:
    """The same pairs as :func:`build_pairs` (same seed, same queries and negatives), kept as
    one group per query (its judged passages, then its negatives), for listwise training."""
    return _groups(judgments, train_qids, hits, negatives, random.Random(seed), max_pairs)


def _groups(
    judgments: Judgments,
    train_qids: Sequence[str],
    hits: Mapping[str, Sequence[Hit]] | None,
    negatives: NegativeSettings,
    rng: random.Random,
    max_pairs: int | None,
) -> list[list[Pair]]:
    order = list(train_qids)
    rng.shuffle(order)
    pool = list(judgments.passages)
    groups: list[list[Pair]] = []
    count = 0
    for qid in order:
        group = _query_pairs(judgments, qid, hits, negatives, rng, pool)
        if max_pairs is not None and count and count + len(group) > max_pairs:
            break
        groups.append(group)
        count += len(group)
    if not count:
        raise TrainingError("no training pairs: every query is held out or has no passage")
    return groups


def _query_pairs(
    judgments: Judgments,
    qid: str,
    hits: Mapping[str, Sequence[Hit]] | None,
    negatives: NegativeSettings,
    rng: random.Random,
    pool: list[str],
) -> list[Pair]:
    text = judgments.queries[qid]
    judged = judgments.gains[qid]
    group = [
        Pair(text, judgments.passages[pid], judgments.target(qid, pid), "judged")
        for pid in sorted(judged)
    ]
    if hits is not None and negatives.per_query:
        unjudged = [
            (pid, passage)
            for pid, passage in list(hits.get(qid, ()))[negatives.skip_top : negatives.depth]
            if pid not in judged and passage
        ]
        for _, passage in rng.sample(unjudged, min(negatives.per_query, len(unjudged))):
            group.append(Pair(text, passage, negatives.target, "hard"))
    for _ in range(negatives.random_per_query):
        pid = pool[rng.randrange(len(pool))]
        if pid not in judged and judgments.passages[pid]:
            group.append(Pair(text, judgments.passages[pid], 0.0, "random"))
    return group
