"""What the rerank flow asks its door to do: the effects (frozen dataclasses, no I/O here).

``effect.name`` is the door method that performs it. A door throws one of ``TIMEOUTS`` into the
flow when a ``Score`` ran out of its budget; any other exception is a model error.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from dataclasses import dataclass
from typing import Any, ClassVar

from bridge.chunking import ChunkingConfig
from bridge.errors import RerankTimeout

# What a door throws in when a Score effect ran out of its budget (any of these counts).
TIMEOUTS = (TimeoutError, asyncio.TimeoutError, concurrent.futures.TimeoutError, RerankTimeout)


@dataclass(frozen=True)
class Embed:
    """Embed ``texts`` with ``model``; send back one vector (a sequence of floats) per text.

    ``max_length``: the truncation the scorer uses (a ``vector_field`` phase's, so its query is
    embedded by the scorer its ``Score`` would use); ``None``: the door's default scorer."""

    name: ClassVar[str] = "embed"
    model: str
    texts: tuple[str, ...]
    max_length: int | None = None


@dataclass(frozen=True)
class Search:
    """Run this engine search; send back its JSON answer (a mapping)."""

    name: ClassVar[str] = "search"
    body: dict[str, Any]
    params: dict[str, Any]


@dataclass(frozen=True)
class Score:
    """Score ``passages`` against ``query`` with ``model``; send back one float per passage.

    ``timeout_s`` is what is left of ``timeout_ms`` (``None``: no limit). A door that stops
    waiting throws a ``TimeoutError`` (or ``RerankTimeout``) in; loading the model is not part
    of the budget. With phases, each phase is one ``Score`` with its own model. With
    ``chunking`` the door scores each passage's windows and sends back a ``ChunkedScores``
    (``bridge.chunking``: the aggregated scores and each best window).
    """

    name: ClassVar[str] = "score"
    model: str
    max_length: int | None
    query: str
    passages: tuple[str, ...]
    timeout_s: float | None
    chunking: ChunkingConfig | None = None


@dataclass(frozen=True)
class CheckVectors:
    """Which of ``indices`` hold vectors in ``field`` that ``model`` did not write, or wrote with
    texts cut at another token limit than ``max_length`` (the phase's, as its ``Embed`` carries
    it; ``None``: the model's default): send back a mapping index -> reason (absent or empty:
    usable). A door reads each index's mapping ``_meta`` (``rerank-bridge embed`` records the
    model's fingerprint and limit there), cached; an exception thrown in makes the phase use the
    vectors after a dimension check only."""

    name: ClassVar[str] = "check_vectors"
    model: str
    field: str
    indices: tuple[str, ...]
    max_length: int | None = None


Effect = Embed | Search | Score | CheckVectors

__all__ = ["TIMEOUTS", "CheckVectors", "Effect", "Embed", "Score", "Search"]
