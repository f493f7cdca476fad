"""The bounded LRU score cache."""

from __future__ import annotations

import threading

from bridge.scoring.score_cache import ScoreCache


def test_cache_returns_stored_scores_and_none_for_misses() -> None:
    cache = ScoreCache(4)
    cache.put_many([("m", "q", "a")], [0.5])
    assert cache.get_many([("m", "q", "a"), ("m", "q", "b")]) == [0.5, None]


def test_cache_evicts_the_least_recently_used_entry() -> None:
    cache = ScoreCache(2)
    cache.put_many([("m", "q", "a"), ("m", "q", "b")], [0.1, 0.2])
    cache.get_many([("m", "q", "a")])  # "a" is now the most recent
    cache.put_many([("m", "q", "c")], [0.3])
    assert cache.get_many([("m", "q", "a"), ("m", "q", "b"), ("m", "q", "c")]) == [0.1, None, 0.3]


def test_cache_keys_include_the_model() -> None:
    cache = ScoreCache(4)
    cache.put_many([("m1", "q", "a")], [0.9])
    assert cache.get_many([("m2", "q", "a")]) == [None]


def test_cache_of_size_zero_stores_nothing() -> None:
    cache = ScoreCache(0)
    cache.put_many([("m", "q", "a")], [0.5])
    assert len(cache) == 0


def test_cache_counts_hits_and_misses() -> None:
    cache = ScoreCache(4)
    cache.put_many([("m", "q", "a")], [0.5])
    cache.get_many([("m", "q", "a"), ("m", "q", "b")])
    assert (cache.hits, cache.misses) == (1, 1)


def test_cache_stays_bounded_under_concurrent_writers() -> None:
    cache = ScoreCache(50)

    def write(worker: int) -> None:
        for i in range(500):
            key = ("m", str(worker), str(i))
            cache.put_many([key], [float(i)])
            cache.get_many([key])

    threads = [threading.Thread(target=write, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(cache) == 50
