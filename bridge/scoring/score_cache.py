"""A bounded, thread-safe LRU cache of model scores keyed by (model, query, passage text)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

CacheKey = tuple[str, str, str]


class ScoreCache:
    """Least-recently-used score cache; ``maxsize`` entries at most, safe across threads."""

    def __init__(self, maxsize: int) -> None:
        if maxsize < 0:
            raise ValueError("maxsize must be >= 0")
        self.maxsize = maxsize
        self._entries: OrderedDict[CacheKey, float] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get_many(self, keys: Sequence[CacheKey]) -> list[float | None]:
        found: list[float | None] = []
        with self._lock:
            for key in keys:
                value = self._entries.get(key)
                if value is None:
                    self.misses += 1
                else:
                    self._entries.move_to_end(key)
                    self.hits += 1
                found.append(value)
        return found

    def put_many(self, keys: Sequence[CacheKey], values: Sequence[float]) -> None:
        if self.maxsize == 0:
            return
        with self._lock:
            for key, value in zip(keys, values, strict=True):
                self._entries[key] = value
                self._entries.move_to_end(key)
            while len(self._entries) > self.maxsize:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.hits = self.misses = 0
