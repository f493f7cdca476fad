"""Micro-batching: concurrent searches for the same model share one model run.

The first request to arrive opens a batch; others join it for at most ``max_wait_s`` (default 2 ms)
or until the batch holds ``max_pairs`` pairs / ``max_tokens`` estimated tokens. One worker task per
model forms the batches and runs at most ``max_runs`` of them at a time on dedicated threads, so
the event loop stays free and the model sees a few large runs instead of many small ones. If a
batch fails, its requests are retried one by one so a bad request cannot fail its neighbours.
With batching off, every request runs on its own (same thread pool), the peer figure for the
benchmark.

With a score cache (``lookup``), a pair is scored once however many searches ask for it at the
same time: cached pairs are answered on the event loop, a pair already queued or running for
another search waits for that run, a pair asked twice in one search is scored once, and only
the rest is queued. Without a cache every pair of every request is scored (the cache-off peer).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from bridge.proxy.prometheus import ProxyMetrics

logger = logging.getLogger(__name__)

Pair = tuple[str, str]
ScorePairs = Callable[[Sequence[Pair]], list[float]]
LookupScores = Callable[[Sequence[Pair]], list["float | None"]]


def estimate_tokens(pair: Pair, max_length: int) -> int:
    # about four characters per word piece for English text, plus [CLS] and two [SEP]
    return min(max_length, (len(pair[0]) + len(pair[1])) // 4 + 3)


@dataclass
class _Item:
    pairs: Sequence[Pair]
    tokens: int
    future: asyncio.Future[list[float]]
    arrived: float = field(default_factory=time.monotonic)


class MicroBatcher:
    """Scores pairs for one model, merging concurrent calls into shared runs."""

    def __init__(
        self,
        score_pairs: ScorePairs,
        *,
        name: str,
        max_length: int = 512,
        enabled: bool = True,
        max_wait_s: float = 0.002,
        max_pairs: int = 256,
        max_tokens: int = 65536,
        max_runs: int = 2,
        metrics: ProxyMetrics | None = None,
        lookup: LookupScores | None = None,
        nice: int = 0,
    ) -> None:
        """``lookup`` answers cached pairs on the event loop before anything is queued, so a
        search whose pairs are all cached never waits behind model runs; ``score_pairs`` then
        scores (and caches) only the rest. ``nice`` is added to the niceness of the threads that
        run the model (and of the threads they start), so the event loop goes first on busy
        cores."""
        self._score_pairs = score_pairs
        self._lookup = lookup
        self.name = name
        self.max_length = max_length
        self.enabled = enabled
        self.max_wait_s = max_wait_s
        self.max_pairs = max_pairs
        self.max_tokens = max_tokens
        self._metrics = metrics
        # `max_runs` batches in flight at once, so that one batch's tokenization overlaps
        # another's ONNX run on the other core; a few threads when not batching, so that the
        # unbatched peer overlaps runs the way a naive server would
        self._executor = ThreadPoolExecutor(
            max_workers=max_runs if enabled else 4,
            thread_name_prefix=f"rerank-{name}",
            initializer=lower_thread_priority,
            initargs=(nice,),
        )
        self._slots = asyncio.Semaphore(max_runs)
        self._running: set[asyncio.Task[None]] = set()
        self._queue: asyncio.Queue[_Item] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._carry: _Item | None = None
        # pairs queued or running, with the run's future and their place in it (cache on only)
        self._in_flight: dict[Pair, tuple[asyncio.Future[list[float]], int]] = {}

    def lookup(self, pairs: Sequence[Pair]) -> list[float | None]:
        """The cached scores of ``pairs`` (None where missing; all None without a cache),
        counted in the hit/miss metrics; on the event loop, no thread hop."""
        if self._lookup is None:
            return [None] * len(pairs)
        found = self._lookup(pairs)
        if self._metrics is not None:
            missing = sum(1 for value in found if value is None)
            self._metrics.cache_hits.labels(self.name).inc(len(pairs) - missing)
            self._metrics.cache_misses.labels(self.name).inc(missing)
        return found

    async def score(self, pairs: Sequence[Pair]) -> list[float]:
        """Scores in input order; raises whatever the model raised for these pairs."""
        if not pairs:
            return []
        return await self.score_missing(pairs, self.lookup(pairs))

    async def score_missing(self, pairs: Sequence[Pair], found: list[float | None]) -> list[float]:
        """``found`` (from ``lookup``) completed by the model: pairs another search is already
        having scored wait for that run, the rest are queued once each."""
        missing = [i for i, value in enumerate(found) if value is None]
        if not missing:
            return [float(v) for v in found if v is not None]
        if self._lookup is None:  # no cache: every pair is scored, shared with no one
            return await self._score_all(pairs)
        waits: list[tuple[int, asyncio.Future[list[float]], int]] = []
        own: dict[Pair, int] = {}
        for i in missing:
            pair = pairs[i]
            shared = self._in_flight.get(pair)
            if shared is None:
                own.setdefault(pair, len(own))
            else:
                waits.append((i, *shared))
        if waits and self._metrics is not None:
            self._metrics.shared_in_flight.labels(self.name).inc(len(waits))
        if own:
            future = self._submit(list(own))
            for pair, place in own.items():
                self._in_flight[pair] = (future, place)
            future.add_done_callback(lambda done: self._landed(done, list(own)))
            waits += [(i, future, own[pairs[i]]) for i in missing if pairs[i] in own]
        # a caller that gives up (timeout, disconnect) only drops its own wait, not the run
        runs = {id(future): future for _, future, _ in waits}
        results = await asyncio.gather(*(asyncio.shield(f) for f in runs.values()))
        by_run = dict(zip(runs, results, strict=True))
        for i, future, place in waits:
            found[i] = by_run[id(future)][place]
        return [float(v) for v in found if v is not None]

    def _landed(self, done: asyncio.Future[list[float]], pairs: list[Pair]) -> None:
        # the scores are in the cache now (stored before the run returned), or the run failed
        for pair in pairs:
            if self._in_flight.get(pair, (None, 0))[0] is done:
                del self._in_flight[pair]

    def _submit(self, pairs: Sequence[Pair]) -> asyncio.Future[list[float]]:
        """Queues ``pairs`` for a batch (or a run of their own with batching off)."""
        loop = asyncio.get_running_loop()
        if not self.enabled:
            task = loop.create_task(self._run([pairs], requests=1))
            task.add_done_callback(_consume)
            return task
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._worker = loop.create_task(self._work(), name=f"micro-batcher-{self.name}")
        tokens = sum(estimate_tokens(pair, self.max_length) for pair in pairs)
        item = _Item(pairs, tokens, loop.create_future())
        item.future.add_done_callback(_consume)
        self._queue.put_nowait(item)
        return item.future

    async def _score_all(self, pairs: Sequence[Pair]) -> list[float]:
        if not self.enabled:
            return await self._run([pairs], requests=1)
        # a caller that gives up (timeout, disconnect) only drops its own wait, not the batch
        return await asyncio.shield(self._submit(pairs))

    async def _work(self) -> None:
        assert self._queue is not None
        while True:
            first = self._carry or await self._queue.get()
            self._carry = None
            # wait for a free run slot first: whatever queues meanwhile joins this batch
            await self._slots.acquire()
            batch = [first]
            pairs, tokens = len(first.pairs), first.tokens
            deadline = first.arrived + self.max_wait_s
            while pairs < self.max_pairs and tokens < self.max_tokens:
                try:
                    if self._queue.empty():
                        remaining = deadline - time.monotonic()
                        if remaining <= 0:
                            break
                        item = await asyncio.wait_for(self._queue.get(), remaining)
                    else:
                        item = self._queue.get_nowait()
                except (asyncio.TimeoutError, asyncio.QueueEmpty):
                    break
                if (
                    pairs + len(item.pairs) > self.max_pairs
                    or tokens + item.tokens > self.max_tokens
                ):
                    self._carry = item
                    break
                batch.append(item)
                pairs += len(item.pairs)
                tokens += item.tokens
            task = asyncio.get_running_loop().create_task(
                self._settle([item for item in batch if not item.future.done()])
            )
            self._running.add(task)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._slots.release()

    async def _settle(self, batch: list[_Item]) -> None:
        if not batch:
            return
        try:
            scores = await self._run([item.pairs for item in batch], requests=len(batch))
        except Exception as exc:
            if len(batch) == 1:
                _resolve(batch[0].future, exc)
                return
            logger.warning("batch of %d searches failed (%s); retrying one by one", len(batch), exc)
            for item in batch:
                try:
                    _resolve(item.future, await self._run([item.pairs], requests=1))
                except Exception as single:
                    _resolve(item.future, single)
            return
        start = 0
        for item in batch:
            _resolve(item.future, scores[start : start + len(item.pairs)])
            start += len(item.pairs)

    async def _run(self, groups: list[Sequence[Pair]], *, requests: int) -> list[float]:
        flat = [pair for group in groups for pair in group]
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        scores = await loop.run_in_executor(self._executor, self._score_pairs, flat)
        if self._metrics is not None:
            self._metrics.model_seconds.labels(self.name).observe(time.perf_counter() - started)
            self._metrics.batch_pairs.labels(self.name).observe(len(flat))
            self._metrics.batch_requests.labels(self.name).observe(requests)
        if len(scores) != len(flat):
            raise RuntimeError(f"model returned {len(scores)} scores for {len(flat)} pairs")
        return scores

    async def aclose(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)
        if self._queue is not None:
            while not self._queue.empty():
                _resolve(self._queue.get_nowait().future, RuntimeError("proxy shutting down"))
        if self._carry is not None:
            _resolve(self._carry.future, RuntimeError("proxy shutting down"))
        self._executor.shutdown(wait=False, cancel_futures=True)


def lower_thread_priority(nice: int) -> None:
    """Adds ``nice`` to the calling thread's niceness (Linux: per thread; threads it starts
    inherit it). Where that is not possible the thread keeps its priority."""
    if nice <= 0 or not hasattr(os, "setpriority"):
        return
    thread = threading.get_native_id()
    try:
        current = os.getpriority(os.PRIO_PROCESS, thread)
        os.setpriority(os.PRIO_PROCESS, thread, min(19, current + nice))
    except OSError as exc:
        logger.warning("could not lower the model threads' priority: %s", exc)


def _consume(future: asyncio.Future[list[float]]) -> None:
    # the caller may have stopped waiting (timeout); mark the outcome as seen so asyncio stays quiet
    if not future.cancelled():
        future.exception()


def _resolve(future: asyncio.Future[list[float]], outcome: list[float] | BaseException) -> None:
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
