"""A door's answer to ``CheckVectors``: which indices hold vectors another model wrote.

Each index's mapping ``_meta`` (written by ``rerank-bridge embed``) names the fingerprint of the
model that made its vectors; a phase's model must match it. Verdicts are cached per (index,
field, model) for ``ttl_s`` (one mapping request per index, not per search; a re-embedded index
is seen again after the TTL). An index without a record is used as it is (vectors written by
other tools carry no fingerprint; the phase still checks their dimension).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bridge.pipeline.effects import CheckVectors
from bridge.vectors.fingerprint import VectorsMeta, model_fingerprint

Verdicts = dict[str, str | None]
DEFAULT_TTL_S = 60.0


def verdict(mapping: Mapping[str, Any] | None, field: str, fingerprint: str) -> str | None:
    """Why an index's vectors in ``field`` are not this model's (``None``: usable)."""
    meta = VectorsMeta.from_mapping(mapping or {}, field)
    if meta is None or meta.fingerprint == fingerprint:
        return None
    return (
        f"the vectors in {field!r} were written by {meta.model} ({meta.fingerprint[:19]}...), "
        f"not by this phase's model ({fingerprint[:19]}...)"
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
        self._verdicts: dict[tuple[str, str, str], tuple[float, str | None]] = {}
        self._fingerprints: dict[str, str] = {}

    def fingerprint(self, model: str) -> str:
        """The fingerprint of ``model`` as the scorers resolve it (computed once)."""
        with self._lock:
            if model in self._fingerprints:
                return self._fingerprints[model]
        from bridge.models.resolver import resolve_model

        found = model_fingerprint(resolve_model(model, cache_dir=self.cache_dir, download=False))
        with self._lock:
            self._fingerprints[model] = found
        return found

    def cached(self, effect: CheckVectors) -> tuple[Verdicts, list[str]]:
        """The verdicts still fresh, and the indices to read the mapping of."""
        now = self._clock()
        known: Verdicts = {}
        missing: list[str] = []
        with self._lock:
            for index in effect.indices:
                entry = self._verdicts.get((index, effect.field, effect.model))
                if entry is not None and now - entry[0] < self.ttl_s:
                    known[index] = entry[1]
                else:
                    missing.append(index)
        return known, missing

    def store(
        self, effect: CheckVectors, indices: Sequence[str], mappings: Mapping[str, Any]
    ) -> Verdicts:
        fingerprint = self.fingerprint(effect.model)
        now = self._clock()
        found = {i: verdict(mappings.get(i), effect.field, fingerprint) for i in indices}
        with self._lock:
            for index, reason in found.items():
                self._verdicts[(index, effect.field, effect.model)] = (now, reason)
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


__all__ = ["VectorChecks", "Verdicts", "mappings_of", "verdict"]
