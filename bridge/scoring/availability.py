"""Model availability: a breaker in front of model loading, so an unloadable model costs nothing.

When a model cannot be loaded (not cached and the download fails, offline, a broken folder), the
first caller gets the real error and the breaker opens: later callers get
:class:`~bridge.errors.ModelUnavailableError` at once (they fail open without paying a load or a
download attempt), while one background thread retries the load with exponential backoff and
closes the breaker when it succeeds. The first failure of each model logs ONE warning per process,
with the fix; ``status()`` says why for health checks and metrics.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from bridge.errors import ModelUnavailableError
from bridge.models.advice import model_fix

logger = logging.getLogger(__name__)

T = TypeVar("T")

FIRST_RETRY_S = 2.0
MAX_RETRY_S = 120.0


@dataclass
class _Failure:
    reason: str
    fix: str
    failures: int
    retry_at: float
    delay_s: float


class ModelBreaker:
    """Per-model breaker over load attempts; thread-safe; one retry thread per failing model."""

    def __init__(
        self, *, first_retry_s: float = FIRST_RETRY_S, max_retry_s: float = MAX_RETRY_S
    ) -> None:
        self.first_retry_s = first_retry_s
        self.max_retry_s = max_retry_s
        self._failed: dict[str, _Failure] = {}
        self._retrying: set[str] = set()
        self._warned: set[str] = set()
        self._locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.attempts: dict[str, int] = {}  # load attempts per model (failed or not)

    def guard(self, model: str) -> None:
        """Raise ModelUnavailableError at once while ``model`` is known to be unloadable."""
        with self._lock:
            failure = self._failed.get(model)
        if failure is not None:
            raise ModelUnavailableError(
                f"model {model} is unavailable ({failure.reason}); retrying in the background "
                f"in {max(0.0, failure.retry_at - time.monotonic()):.0f}s; fix: {failure.fix}",
                model=model,
            )

    def load(self, model: str, load: Callable[[], T]) -> T:
        """``load()`` through the breaker: at once unavailable while open, else one attempt.

        Concurrent callers of one model wait for the attempt in progress rather than each making
        their own; when it fails, they fail with it (unavailable) instead of trying again.
        """
        self.guard(model)
        with self._model_lock(model):
            self.guard(model)  # the attempt we waited for failed
            return self._attempt(model, load, retrying=False)

    def _model_lock(self, model: str) -> threading.Lock:
        with self._lock:
            return self._locks.setdefault(model, threading.Lock())

    def _attempt(self, model: str, load: Callable[[], T], *, retrying: bool) -> T:
        with self._lock:
            self.attempts[model] = self.attempts.get(model, 0) + 1
        try:
            result = load()
        except Exception as exc:
            self._opened(model, exc, load)
            raise
        self._closed(model, retrying=retrying)
        return result

    def _opened(self, model: str, exc: Exception, load: Callable[[], Any]) -> None:
        # download errors carry their own "Fix: ..." already: keep the reason and the fix apart
        reason, _, given_fix = f"{type(exc).__name__}: {exc}".partition(" Fix: ")
        reason = reason.rstrip(". ")
        with contextlib.suppress(AttributeError):  # the search that met it need not warn again
            exc.announced = True  # type: ignore[attr-defined]
        with self._lock:
            previous = self._failed.get(model)
            delay = (
                self.first_retry_s
                if previous is None
                else min(previous.delay_s * 2, self.max_retry_s)
            )
            fix = given_fix or (previous.fix if previous is not None else model_fix(model))
            failures = previous.failures + 1 if previous is not None else 1
            self._failed[model] = _Failure(reason, fix, failures, time.monotonic() + delay, delay)
            first_warning = model not in self._warned
            self._warned.add(model)
            start_thread = model not in self._retrying and not self._stop.is_set()
            if start_thread:
                self._retrying.add(model)
        if first_warning:  # once per model and process: searches fail open quietly after this
            logger.warning(
                "model %s cannot be loaded (%s): searches go on in the engine's order, "
                "without reranking, until it loads (retried in the background). Fix: %s",
                model,
                reason,
                fix,
            )
        if start_thread:
            thread = threading.Thread(
                target=self._retry_loop,
                args=(model, load),
                name=f"model-retry-{model[-40:]}",
                daemon=True,
            )
            thread.start()

    def _closed(self, model: str, *, retrying: bool) -> None:
        with self._lock:
            failure = self._failed.pop(model, None)
        if failure is not None and retrying:
            logger.warning("model %s loaded after %d failed attempt(s)", model, failure.failures)

    def _retry_loop(self, model: str, load: Callable[[], Any]) -> None:
        try:
            while True:
                with self._lock:
                    failure = self._failed.get(model)
                if failure is None:
                    return
                if self._stop.wait(max(0.0, failure.retry_at - time.monotonic())):
                    return
                with self._model_lock(model):
                    if not self.is_open(model):  # loaded by a caller, or reset, meanwhile
                        return
                    try:
                        self._attempt(model, load, retrying=True)
                    except Exception:
                        continue  # _opened pushed retry_at further out
                return
        finally:
            with self._lock:
                self._retrying.discard(model)

    def status(self) -> dict[str, dict[str, Any]]:
        """Unavailable models: reason, fix, failed attempts and seconds to the next retry."""
        now = time.monotonic()
        with self._lock:
            return {
                model: {
                    "state": "unavailable",
                    "reason": failure.reason,
                    "fix": failure.fix,
                    "failures": failure.failures,
                    "retry_in_s": round(max(0.0, failure.retry_at - now), 1),
                }
                for model, failure in self._failed.items()
            }

    def is_open(self, model: str) -> bool:
        with self._lock:
            return model in self._failed

    def stop(self) -> None:
        """Stop the retry threads (they are daemons; this is for an orderly shutdown)."""
        self._stop.set()

    def reset(self) -> None:
        """Forget every failure and warning (tests); retry threads end at their next wake-up."""
        with self._lock:
            self._failed.clear()
            self._warned.clear()
            self.attempts.clear()


__all__ = ["ModelBreaker"]
