"""Long passages as overlapping token windows (MaxP and friends).

``"chunking": {"tokens": 128, "stride": 96, "aggregate": "max"}``: each passage's tokens are split
into windows of ``tokens`` (fewer when the query leaves less room under ``max_length``; the stride
then shrinks in proportion) starting every ``stride`` tokens; window edges are moved to word
boundaries so each window is a piece of the passage's text. Every window is paired with the query
and scored like any passage, all in the same batches (so the score cache, the token cache and the
proxy's micro-batcher apply to windows as they are); the passage's score is the ``max`` (MaxP),
the ``first`` window's or the ``mean``. With ``size`` only the ``size`` windows that best match the
query's tokens (BM25 among the passage's own windows, as Elasticsearch's ``chunk_rescorer`` picks
its chunks) are scored. The best window is reported (its number, token span, character span and
text) for ``explain``. Without chunking a passage longer than ``max_length`` is cut.

A bi-encoder chunks the same way: a window's score is the cosine of its embedding and the query's.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from bridge.errors import ConfigError

Aggregate = Literal["max", "first", "mean"]
AGGREGATES: tuple[str, ...] = ("max", "first", "mean")
_KEYS = ("tokens", "stride", "aggregate", "size")


@dataclass(frozen=True)
class ChunkingConfig:
    """Long passages as overlapping token windows (this module).

    Windows of ``tokens`` passage tokens (fewer when the query leaves less room under
    ``max_length``) start every ``stride`` tokens; the passage scores the ``aggregate`` of its
    windows' scores (``max``: MaxP, ``first``, ``mean``). ``size`` scores only that many windows
    per passage, those best matching the query's tokens (Elasticsearch ``chunk_rescorer.size``).
    A small frozen value: a rerank phase can carry one too.
    """

    tokens: int = 128
    # None: three quarters of ``tokens`` (96 for 128)
    stride: int | None = None
    aggregate: Aggregate = "max"
    size: int | None = None

    def __post_init__(self) -> None:
        if not _is_positive_int(self.tokens):
            raise ConfigError(f"expected an integer >= 1, got {self.tokens!r}", field="tokens")
        if self.stride is None:
            object.__setattr__(self, "stride", max(1, self.tokens * 3 // 4))
        stride = self.stride
        if stride is None or not _is_positive_int(stride) or stride > self.tokens:
            raise ConfigError(
                f"expected an integer from 1 to tokens ({self.tokens}), got {self.stride!r}",
                field="stride",
            )
        if self.aggregate not in AGGREGATES:
            raise ConfigError(
                f"got {self.aggregate!r}; expected one of {list(AGGREGATES)}",
                field="aggregate",
            )
        if self.size is not None and not _is_positive_int(self.size):
            raise ConfigError(f"expected an integer >= 1 or null, got {self.size!r}", field="size")

    @classmethod
    def from_value(cls, value: Any, *, path: str = "rerank.chunking") -> ChunkingConfig | None:
        """``None``/``False``: off; ``True``: the defaults; an object: its fields."""
        if value is None or value is False:
            return None
        if isinstance(value, ChunkingConfig):
            return value
        if value is True:
            return cls()
        if not isinstance(value, Mapping):
            raise ConfigError(
                f"expected an object, true or false, got {type(value).__name__}", field=path
            )
        for key in value:
            if key not in _KEYS:
                raise ConfigError(
                    f"unknown field; expected one of {list(_KEYS)}", field=f"{path}.{key}"
                )
        try:
            return cls(**dict(value))
        except ConfigError as exc:
            raise ConfigError(exc.reason.split("] ", 1)[-1], field=f"{path}.{exc.field}") from None

    @property
    def step(self) -> int:
        """``stride`` resolved (never None after construction)."""
        return self.stride if self.stride is not None else max(1, self.tokens * 3 // 4)

    def to_dict(self) -> dict[str, Any]:
        return {
            "tokens": self.tokens,
            "stride": self.step,
            "aggregate": self.aggregate,
            "size": self.size,
        }


def _is_positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def fitted(chunking: ChunkingConfig, room: int) -> tuple[int, int]:
    """Window size and stride when ``room`` tokens are left beside the query: the window shrinks
    to fit and the stride in proportion (the overlap stays the same share of a window)."""
    size = max(1, min(chunking.tokens, room))
    if size == chunking.tokens:
        return size, chunking.step
    return size, max(1, round(chunking.step * size / chunking.tokens))


@dataclass(frozen=True)
class Window:
    """One window of one passage: whose (``owner``), which (``index``), where, and its text."""

    owner: int
    index: int
    tokens: tuple[int, int]
    chars: tuple[int, int]
    text: str


def passage_windows(
    owner: int,
    passage: str,
    offsets: Sequence[tuple[int, int]],
    words: Sequence[int | None],
    size: int,
    stride: int,
) -> list[Window]:
    """The windows of one tokenized passage (``offsets``/``words``: per token, no specials).

    A passage that fits is one window whose text is the passage itself (so its score is the
    unchunked one, cache entry included). Otherwise windows of at most ``size`` tokens start
    every ``stride`` tokens until one reaches the end; each start moves back and each end back
    to the start of the word they fall in, so a word cut off one window's end starts the next
    (a start moves forward instead past a word longer than the stride, unless that leaves a
    gap; a word longer than the window is cut).
    """
    count = len(offsets)
    if count <= size:
        return [Window(owner, 0, (0, count), (0, len(passage)), passage)]
    out: list[Window] = []
    first = _word_start(words, 0)
    while True:
        last = min(count, first + size)
        if last < count:
            snapped = _word_start(words, last)
            last = snapped if snapped > first else last
        chars = (offsets[first][0], offsets[last - 1][1])
        out.append(Window(owner, len(out), (first, last), chars, passage[chars[0] : chars[1]]))
        if last >= count:
            return out
        step = _word_start(words, first + stride)
        if step <= first:  # a word longer than the stride: the next word's start, if no gap
            step = _next_word_start(words, first + stride)
            step = step if step <= last else first + stride
        first = step


def _word_start(words: Sequence[int | None], at: int) -> int:
    """The first token of the word token ``at`` belongs to."""
    while 0 < at < len(words) and _continues(words, at):
        at -= 1
    return at


def _next_word_start(words: Sequence[int | None], at: int) -> int:
    """The first token at or after ``at`` that starts a word (``len(words)`` if none)."""
    while at < len(words) and _continues(words, at):
        at += 1
    return at


def _continues(words: Sequence[int | None], at: int) -> bool:
    return words[at] is not None and words[at] == words[at - 1]


def best_matching(windows: Sequence[Sequence[int]], query: Sequence[int], size: int) -> list[int]:
    """Indexes (in passage order) of the ``size`` windows whose token ids best match the query's,
    by BM25 among the passage's own windows (k1 1.2, b 0.75); ties and no match at all keep the
    earlier windows."""
    if len(windows) <= size:
        return list(range(len(windows)))
    terms = set(query)
    counts = [Counter(ids) for ids in windows]
    total = len(windows)
    average = sum(len(ids) for ids in windows) / total or 1.0
    frequency = Counter(term for count in counts for term in count if term in terms)
    idf = {t: math.log(1 + (total - n + 0.5) / (n + 0.5)) for t, n in frequency.items()}
    scores: list[float] = []
    for ids, count in zip(windows, counts, strict=True):
        norm = 1.2 * (1 - 0.75 + 0.75 * len(ids) / average)
        scores.append(sum(idf[t] * count[t] * 2.2 / (count[t] + norm) for t in idf if t in count))
    ranked = sorted(range(total), key=lambda i: (-scores[i], i))
    return sorted(ranked[:size])


@dataclass(frozen=True)
class BestWindow:
    """The window that decided (``max``) or best scored (``first``, ``mean``) a passage."""

    index: int
    windows: int
    scored: int
    tokens: tuple[int, int]
    chars: tuple[int, int]
    text: str
    score: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "windows": self.windows,
            "scored": self.scored,
            "tokens": list(self.tokens),
            "chars": list(self.chars),
            "text": self.text,
            "score": self.score,
        }


@dataclass(frozen=True)
class ChunkedScores:
    """Per passage: the aggregated score and its best window (what a chunked Score returns)."""

    scores: list[float]
    best: list[BestWindow]

    @property
    def windows(self) -> list[int]:
        """Windows scored per passage."""
        return [b.scored for b in self.best]


def aggregate(
    windows: Sequence[Window],
    scores: Sequence[float],
    totals: Sequence[int],
    how: Aggregate,
) -> ChunkedScores:
    """Each passage's score from its scored windows' scores (``windows`` grouped by ``owner``;
    ``totals``: how many windows each passage has, scored or not)."""
    passages = len(totals)
    grouped: list[list[int]] = [[] for _ in range(passages)]
    for row, window in enumerate(windows):
        grouped[window.owner].append(row)
    out: list[float] = []
    best: list[BestWindow] = []
    for rows in grouped:
        values = [float(scores[row]) for row in rows]
        top = max(range(len(values)), key=values.__getitem__)
        if how == "max":
            out.append(values[top])
        elif how == "first":
            out.append(values[0])
        else:
            out.append(sum(values) / len(values))
        window = windows[rows[top]]
        best.append(
            BestWindow(
                window.index,
                totals[window.owner],
                len(rows),
                window.tokens,
                window.chars,
                window.text,
                values[top],
            )
        )
    return ChunkedScores(out, best)


__all__ = [
    "AGGREGATES",
    "Aggregate",
    "BestWindow",
    "ChunkedScores",
    "ChunkingConfig",
    "Window",
    "aggregate",
    "best_matching",
    "fitted",
    "passage_windows",
]
