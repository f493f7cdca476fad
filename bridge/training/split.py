"""Split queries into train and held-out by a hash of their text: no query is ever in both.

The hash (not a random draw) keeps a query on the same side across runs, seeds and files, so a
model trained today is never evaluated on a query it saw. ``pinned`` texts (for instance the
eval's seeded query sample, which the demo also uses) are always held out, whatever their hash.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from bridge.errors import TrainingError


@dataclass(frozen=True)
class Split:
    train: list[str]  # query ids, sorted
    held_out: list[str]
    pinned: list[str]  # the held-out ids that were pinned (subset of held_out)


def normalize(text: str) -> str:
    return " ".join(text.lower().split())


def hash_fraction(text: str) -> float:
    """A number in [0, 1) fixed by the normalised query text."""
    digest = hashlib.sha256(normalize(text).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def is_held_out(text: str, fraction: float) -> bool:
    return hash_fraction(text) < fraction


def split_queries(
    queries: Mapping[str, str], fraction: float, pinned_texts: Iterable[str] = ()
) -> Split:
    if not 0.0 <= fraction < 1.0:
        raise TrainingError(f"--holdout must be in [0, 1), got {fraction}")
    pinned_norm = {normalize(t) for t in pinned_texts}
    train: list[str] = []
    held: list[str] = []
    pinned: list[str] = []
    for qid, text in sorted(queries.items()):
        if normalize(text) in pinned_norm:
            held.append(qid)
            pinned.append(qid)
        elif is_held_out(text, fraction):
            held.append(qid)
        else:
            train.append(qid)
    if not train:
        raise TrainingError("every query is held out: lower --holdout")
    return Split(train=train, held_out=held, pinned=pinned)
