"""The micro-batcher: shared runs, order, isolation of failures, limits, timeouts."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Sequence

import pytest

from bridge.proxy.microbatch import MicroBatcher

Pair = tuple[str, str]


class Recorder:
    """A scorer stand-in: score = len(passage); records the size of every run."""

    def __init__(self, delay_s: float = 0.0, poison: str | None = None) -> None:
        self.runs: list[int] = []
        self.delay_s = delay_s
        self.poison = poison
        self.lock = threading.Lock()

    def __call__(self, pairs: Sequence[Pair]) -> list[float]:
        with self.lock:
            self.runs.append(len(pairs))
        if self.poison is not None and any(p == self.poison for _, p in pairs):
            raise ValueError("poisoned passage")
        time.sleep(self.delay_s)
        return [float(len(p)) for _, p in pairs]


def pairs_for(query: str, *lengths: int) -> list[Pair]:
    return [(query, "x" * n) for n in lengths]


async def test_concurrent_requests_share_one_run() -> None:
    scorer = Recorder()
    batcher = MicroBatcher(scorer, name="m", max_wait_s=0.05)
    await asyncio.gather(*(batcher.score(pairs_for(f"q{i}", 1, 2)) for i in range(8)))
    await batcher.aclose()
    assert scorer.runs == [16]


async def test_each_caller_gets_its_own_scores_in_order() -> None:
    batcher = MicroBatcher(Recorder(), name="m", max_wait_s=0.05)
    results = await asyncio.gather(
        batcher.score(pairs_for("a", 3, 1, 2)), batcher.score(pairs_for("b", 5, 4))
    )
    await batcher.aclose()
    assert results == [[3.0, 1.0, 2.0], [5.0, 4.0]]


async def test_a_failing_request_does_not_fail_its_batch_neighbours() -> None:
    batcher = MicroBatcher(Recorder(poison="bad"), name="m", max_wait_s=0.05)
    good, bad = await asyncio.gather(
        batcher.score(pairs_for("a", 2)),
        batcher.score([("b", "bad")]),
        return_exceptions=True,
    )
    await batcher.aclose()
    assert (good, type(bad)) == ([2.0], ValueError)


async def test_max_pairs_splits_batches() -> None:
    scorer = Recorder()
    batcher = MicroBatcher(scorer, name="m", max_wait_s=0.05, max_pairs=4)
    await asyncio.gather(*(batcher.score(pairs_for(f"q{i}", 1, 1)) for i in range(4)))
    await batcher.aclose()
    assert scorer.runs == [4, 4]


async def test_max_tokens_splits_batches() -> None:
    scorer = Recorder()
    # each pair estimates to (1 + 400) // 4 + 3 = 103 tokens
    batcher = MicroBatcher(scorer, name="m", max_wait_s=0.05, max_tokens=250)
    await asyncio.gather(*(batcher.score(pairs_for(f"q{i}", 400)) for i in range(4)))
    await batcher.aclose()
    assert scorer.runs == [2, 2]


async def test_disabled_batching_runs_each_request_alone() -> None:
    scorer = Recorder()
    batcher = MicroBatcher(scorer, name="m", enabled=False)
    await asyncio.gather(*(batcher.score(pairs_for(f"q{i}", 1, 2)) for i in range(3)))
    await batcher.aclose()
    assert sorted(scorer.runs) == [2, 2, 2]


async def test_a_caller_that_times_out_leaves_the_others_served() -> None:
    batcher = MicroBatcher(Recorder(delay_s=0.2), name="m", max_wait_s=0.01)
    impatient = asyncio.wait_for(batcher.score(pairs_for("a", 1)), timeout=0.05)
    patient = batcher.score(pairs_for("b", 2))
    outcomes = await asyncio.gather(impatient, patient, return_exceptions=True)
    await batcher.aclose()
    assert (type(outcomes[0]), outcomes[1]) == (asyncio.TimeoutError, [2.0])


async def test_scoring_runs_off_the_event_loop() -> None:
    batcher = MicroBatcher(Recorder(delay_s=0.3), name="m", max_wait_s=0.001)
    task = asyncio.ensure_future(batcher.score(pairs_for("a", 1)))
    ticks = 0
    while not task.done():
        await asyncio.sleep(0.01)
        ticks += 1
    await batcher.aclose()
    assert ticks >= 10


@pytest.mark.parametrize("enabled", [True, False])
async def test_empty_request_needs_no_model_run(enabled: bool) -> None:
    scorer = Recorder()
    batcher = MicroBatcher(scorer, name="m", enabled=enabled)
    assert (await batcher.score([]), scorer.runs) == ([], [])
    await batcher.aclose()


async def test_two_batches_can_run_at_once() -> None:
    scorer = Recorder(delay_s=0.3)
    batcher = MicroBatcher(scorer, name="m", max_wait_s=0.001, max_pairs=1, max_runs=2)
    started = time.perf_counter()
    await asyncio.gather(batcher.score(pairs_for("a", 1)), batcher.score(pairs_for("b", 1)))
    elapsed = time.perf_counter() - started
    await batcher.aclose()
    assert (scorer.runs, elapsed < 0.55) == ([1, 1], True)


async def test_one_run_slot_runs_batches_one_after_another() -> None:
    scorer = Recorder(delay_s=0.3)
    batcher = MicroBatcher(scorer, name="m", max_wait_s=0.001, max_pairs=1, max_runs=1)
    started = time.perf_counter()
    await asyncio.gather(batcher.score(pairs_for("a", 1)), batcher.score(pairs_for("b", 1)))
    elapsed = time.perf_counter() - started
    await batcher.aclose()
    assert elapsed >= 0.6


def test_cached_pairs_are_answered_without_waiting_for_a_model_run() -> None:
    cache = {("q", "a"): 0.9}
    scored: list[list[tuple[str, str]]] = []

    def compute(pairs: Sequence[tuple[str, str]]) -> list[float]:
        scored.append(list(pairs))
        return [0.1] * len(pairs)

    def lookup(pairs: Sequence[tuple[str, str]]) -> list[float | None]:
        return [cache.get(pair) for pair in pairs]

    async def run() -> tuple[list[float], list[float]]:
        batcher = MicroBatcher(compute, name="m", max_wait_s=0.01, lookup=lookup)
        try:
            return await batcher.score([("q", "a")]), await batcher.score([("q", "a"), ("q", "b")])
        finally:
            await batcher.aclose()

    assert (asyncio.run(run()), scored) == (([0.9], [0.9, 0.1]), [[("q", "b")]])


class CachingRecorder(Recorder):
    """A scorer stand-in with a score cache: ``compute`` stores, ``lookup`` reads."""

    def __init__(self, delay_s: float = 0.0, poison: str | None = None) -> None:
        super().__init__(0.0, poison)
        self.wait_s = delay_s  # before the poison check too: a failing run takes time
        self.cache: dict[Pair, float] = {}
        self.scored: list[Pair] = []

    def __call__(self, pairs: Sequence[Pair]) -> list[float]:
        time.sleep(self.wait_s)
        scores = super().__call__(pairs)
        with self.lock:
            self.scored += pairs
            self.cache.update(zip(pairs, scores, strict=True))
        return scores

    def lookup(self, pairs: Sequence[Pair]) -> list[float | None]:
        return [self.cache.get(pair) for pair in pairs]


async def test_a_pair_another_search_is_having_scored_is_not_scored_again() -> None:
    scorer = CachingRecorder(delay_s=0.1)
    batcher = MicroBatcher(scorer, name="m", max_wait_s=0.0, max_runs=2, lookup=scorer.lookup)
    first = asyncio.create_task(batcher.score(pairs_for("q", 1, 2, 3)))
    await asyncio.sleep(0.02)  # the first search's run is under way
    second = await batcher.score(pairs_for("q", 3, 4, 2))
    assert (await first, second) == ([1.0, 2.0, 3.0], [3.0, 4.0, 2.0])
    assert sorted(len(p) for _, p in scorer.scored) == [1, 2, 3, 4]
    await batcher.aclose()


async def test_a_pair_asked_twice_in_one_search_is_scored_once() -> None:
    scorer = CachingRecorder()
    batcher = MicroBatcher(scorer, name="m", max_wait_s=0.0, lookup=scorer.lookup)
    assert await batcher.score(pairs_for("q", 5, 6, 5)) == [5.0, 6.0, 5.0]
    assert scorer.scored == pairs_for("q", 5, 6)
    await batcher.aclose()


@pytest.mark.parametrize("enabled", [True, False])
async def test_without_a_cache_every_pair_of_every_search_is_scored(enabled: bool) -> None:
    scorer = Recorder(delay_s=0.05)
    batcher = MicroBatcher(scorer, name="m", enabled=enabled, max_wait_s=0.01)
    same = pairs_for("q", 1, 2)
    got = await asyncio.gather(batcher.score(same), batcher.score(same))
    assert (got, sum(scorer.runs)) == ([[1.0, 2.0], [1.0, 2.0]], 4)
    await batcher.aclose()


async def test_a_failed_shared_run_fails_its_waiters_and_is_retried_next_time() -> None:
    scorer = CachingRecorder(delay_s=0.05, poison="xx")
    batcher = MicroBatcher(scorer, name="m", max_wait_s=0.0, lookup=scorer.lookup)
    first = asyncio.create_task(batcher.score(pairs_for("q", 2)))
    await asyncio.sleep(0.01)
    with pytest.raises(ValueError, match="poisoned"):
        await batcher.score(pairs_for("q", 2, 1))
    with pytest.raises(ValueError, match="poisoned"):
        await first
    scorer.poison = None
    assert await batcher.score(pairs_for("q", 2, 1)) == [2.0, 1.0]
    assert scorer.runs == [1, 1, 1]  # "xx" failed, "x" alone, then "xx" again
    await batcher.aclose()


@pytest.mark.parametrize("nice", [0, 5])
async def test_model_threads_run_at_the_niceness_asked_for(nice: int) -> None:
    seen: list[int] = []

    def niceness(pairs: Sequence[Pair]) -> list[float]:
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        return [0.0] * len(pairs)

    here = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    batcher = MicroBatcher(niceness, name="m", max_wait_s=0.0, nice=nice)
    await batcher.score(pairs_for("q", 1))
    await batcher.aclose()
    assert seen == [min(19, here + nice)]
