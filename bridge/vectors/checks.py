"""A door's answer to ``CheckVectors``: which indices hold vectors another model wrote.

Each index's mapping ``_meta`` (written by ``rerank-bridge embed``) names the fingerprint of the
model that made its vectors and the token limit (``max_length``) its texts were cut at; a phase's
model must match both: its fingerprint, and the limit the phase embeds at (its ``max_length``,
else ``rerank.max_length``, else the model's default, as the door's scorer applies it). Verdicts
are cached per (index, field, model, requested limit) for ``ttl_s`` (one mapping request per
index, not per search; a re-embedded index is seen again after the TTL). An index without a
record is used as it is (vectors written by other tools carry no fingerprint; the phase still
checks their dimension).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.models.local import ModelFiles
from bridge.pipeline.effects import CheckVectors
from bridge.vectors.fingerprint import VectorsMeta, effective_max_length, model_fingerprint

Verdicts = dict[str, str | None]
DEFAULT_TTL_S = 60.0


def verdict(
    mapping: Mapping[str, Any] | None,
    field: str,
    fingerprint: str,
    max_length: int | None = None,
    default_max_length: int | None = None,
) -> str | None:
    """Why an index's vectors in ``field`` are not what this model computes at ``max_length``
    tokens (``None``: usable, or the limit not compared). ``default_max_length``: the model's
    default limit, which a record without one was written at."""
    meta = VectorsMeta.from_mapping(mapping or {}, field)
    if meta is None:
        return None
    if meta.fingerprint != fingerprint:
        return (
            f"the vectors in {field!r} were written by {meta.model} ({meta.fingerprint[:19]}...), "
            f"not by this phase's model ({fingerprint[:19]}...)"
        )
    # a record written before embed recorded the limit: embed then always cut at the default
    stored = meta.max_length if meta.max_length is not None else default_max_length
    if max_length is None or stored is None or stored == max_length:
        return None
    return (
        f"the vectors in {field!r} were embedded from texts cut at {stored} tokens, "
        f"not at this phase's max_length {max_length}"
    )


def mappings_of(body: Any) -> dict[str, Mapping[str, Any]]:
    """Index name -> its ``mappings`` object, from a ``GET /{index}/_mapping`` answer."""
    found: dict[str, Mapping[str, Any]] = {}
    if isinstance(body, Mapping):
        for name, value in body.items():
            mapping = value.get("mappings") if isinstance(value, Mapping) else None
            if isinstance(mapping, Mapping):
                found[str(name)] = mapping
    return found


class VectorChecks:
    """Cached verdicts for one door owner (a wrapper or the proxy); thread-safe."""

    def __init__(
        self,
        *,
        ttl_s: float = DEFAULT_TTL_S,
        cache_dir: str | Path | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_s = ttl_s
        self.cache_dir = cache_dir
        self._clock = clock
        self._lock = threading.Lock()
        self._verdicts: dict[tuple[str, str, str, int | None], tuple[float, str | None]] = {}
        self._models: dict[str, _Model] = {}

    def fingerprint(self, model: str) -> str:
        """The fingerprint of ``model`` as the scorers resolve it (computed once)."""
        return self._model(model).fingerprint

    def max_length(self, model: str, requested: int | None) -> int:
        """The token limit the door's scorer for ``model`` opened at ``requested`` cuts at."""
        return effective_max_length(self._model(model).files, requested)

    def _model(self, model: str) -> _Model:
        with self._lock:
            if model in self._models:
                return self._models[model]
        from bridge.models.resolver import resolve_model

        files = resolve_model(model, cache_dir=self.cache_dir, download=False)
        found = _Model(files, model_fingerprint(files))
        with self._lock:
            self._models[model] = found
        return found

    def cached(self, effect: CheckVectors) -> tuple[Verdicts, list[str]]:
        """The verdicts still fresh, and the indices to read the mapping of."""
        now = self._clock()
        known: Verdicts = {}
        missing: list[str] = []
        with self._lock:
            for index in effect.indices:
                entry = self._verdicts.get(_key(index, effect))
                if entry is not None and now - entry[0] < self.ttl_s:
                    known[index] = entry[1]
                else:
                    missing.append(index)
        return known, missing

    def store(
        self, effect: CheckVectors, indices: Sequence[str], mappings: Mapping[str, Any]
    ) -> Verdicts:
        fingerprint = self.fingerprint(effect.model)
        limit = self.max_length(effect.model, effect.max_length)
        default = self.max_length(effect.model, None)
        now = self._clock()
        found = {
            i: verdict(mappings.get(i), effect.field, fingerprint, limit, default) for i in indices
        }
        with self._lock:
            for index, reason in found.items():
                self._verdicts[_key(index, effect)] = (now, reason)
        return found

    def check(
        self, effect: CheckVectors, read: Callable[[Sequence[str]], Mapping[str, Any]]
    ) -> Verdicts:
        """Verdicts for ``effect.indices``; ``read(indices)`` returns their mappings by name."""
        known, missing = self.cached(effect)
        if missing:
            known.update(self.store(effect, missing, read(missing)))
        return known

    async def acheck(
        self,
        effect: CheckVectors,
        read: Callable[[Sequence[str]], Awaitable[Mapping[str, Any]]],
        off_loop: Callable[[Callable[[], str]], Awaitable[str]],
    ) -> Verdicts:
        """``check`` from an event loop: ``read`` awaited, fingerprinting run by ``off_loop``."""
        known, missing = self.cached(effect)
        if missing:
            mappings = await read(missing)
            await off_loop(lambda: self.fingerprint(effect.model))
            known.update(self.store(effect, missing, mappings))
        return known


@dataclass(frozen=True)
class _Model:
    files: ModelFiles
    fingerprint: str


def _key(index: str, effect: CheckVectors) -> tuple[str, str, str, int | None]:
    return (index, effect.field, effect.model, effect.max_length)


__all__ = ["VectorChecks", "Verdicts", "mappings_of", "verdict"]
