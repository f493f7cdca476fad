"""One bounded, thread-safe LRU for every cache of the scorer (scores, token ids, embeddings).

Bounded by bytes (an estimate of what each entry holds: its key and its value) and, optionally, by
entries; counts hits, misses and evictions so the proxy can export them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

# What CPython spends on one OrderedDict slot, its key tuple and a small value beyond the payload
# itself (measured with tracemalloc on 10,000 score entries: ~230 bytes each without the strings).
ENTRY_OVERHEAD = 160


@dataclass(frozen=True)
class CacheStats:
    """A snapshot of one cache's counters and size."""

    hits: int
    misses: int
    evictions: int
    entries: int
    bytes: int
    max_bytes: int

    @property
    def hit_rate(self) -> float:
        looked = self.hits + self.misses
        return self.hits / looked if looked else 0.0


class BytesLRU(Generic[K, V]):
    """Least-recently-used entries, at most ``max_bytes`` (estimated by ``size_of``) and, when set,
    ``max_entries``; a bound of 0 stores nothing."""

    def __init__(
        self,
        *,
        max_bytes: int,
        size_of: Callable[[K, V], int],
        max_entries: int | None = None,
    ) -> None:
        if max_bytes < 0:
            raise ValueError("max_bytes must be >= 0")
        if max_entries is not None and max_entries < 0:
            raise ValueError("max_entries must be >= 0")
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self._size_of = size_of
        self._entries: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._lock = threading.Lock()
        self._bytes = 0
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0 and self.max_entries != 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def bytes(self) -> int:
        return self._bytes

    def get_many(self, keys: Sequence[K]) -> list[V | None]:
        found: list[V | None] = []
        with self._lock:
            for key in keys:
                entry = self._entries.get(key)
                if entry is None:
                    self.misses += 1
                    found.append(None)
                else:
                    self._entries.move_to_end(key)
                    self.hits += 1
                    found.append(entry[0])
        return found

    def put_many(self, keys: Sequence[K], values: Sequence[V]) -> None:
        if len(keys) != len(values):
            raise ValueError(f"{len(keys)} keys for {len(values)} values")
        if not self.enabled:
            return
        sizes = [self._size_of(k, v) for k, v in zip(keys, values, strict=True)]
        with self._lock:
            for key, value, size in zip(keys, values, sizes, strict=True):
                if size > self.max_bytes:
                    continue  # larger than the whole cache: never stored
                old = self._entries.pop(key, None)
                if old is not None:
                    self._bytes -= old[1]
                self._entries[key] = (value, size)
                self._bytes += size
            self._shrink()

    def _shrink(self) -> None:
        limit = self.max_entries
        while self._bytes > self.max_bytes or (limit is not None and len(self._entries) > limit):
            _, (_, size) = self._entries.popitem(last=False)
            self._bytes -= size
            self.evictions += 1

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(
                hits=self.hits,
                misses=self.misses,
                evictions=self.evictions,
                entries=len(self._entries),
                bytes=self._bytes,
                max_bytes=self.max_bytes,
            )

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0
            self.hits = self.misses = self.evictions = 0
