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
from pathlib import Path
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
    where: str | None = None


# A model as the breaker knows it: its name and where that name resolves (None: not said).
Key = tuple[str, str | None]


class ModelBreaker:
    """Per-model breaker over load attempts; thread-safe; one retry thread per failing model.

    A model is its name AND where the name resolves (``where``: e.g.
    ``bridge.models.resolver.model_location``): the same name in two cache folders is two
    models, and a broken copy in one never refuses the other. Asking without ``where``
    (``guard``, ``is_open``, ``failure``) means any location of that name.
    """

    def __init__(
        self, *, first_retry_s: float = FIRST_RETRY_S, max_retry_s: float = MAX_RETRY_S
    ) -> None:
        self.first_retry_s = first_retry_s
        self.max_retry_s = max_retry_s
        self._failed: dict[Key, _Failure] = {}
        self._retrying: set[Key] = set()
        self._warned: set[Key] = set()
        self._locks: dict[Key, threading.Lock] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.attempts: dict[str, int] = {}  # load attempts per model name (failed or not)

    def _failure(self, model: str, where: str | None) -> _Failure | None:
        with self._lock:
            if where is not None:
                return self._failed.get((model, where))
            return next((f for (m, _), f in self._failed.items() if m == model), None)

    def guard(self, model: str, *, where: str | None = None) -> None:
        """Raise ModelUnavailableError at once while ``model`` is known to be unloadable."""
        _refuse(model, self._failure(model, where))

    def load(self, model: str, load: Callable[[], T], *, where: str | None = None) -> T:
        """``load()`` through the breaker: at once unavailable while open, else one attempt.

        Concurrent callers of one model wait for the attempt in progress rather than each making
        their own; when it fails, they fail with it (unavailable) instead of trying again.
        """
        key: Key = (model, where)
        self._guard_key(key)
        with self._model_lock(key):
            self._guard_key(key)  # the attempt we waited for failed
            return self._attempt(key, load, retrying=False)

    def _guard_key(self, key: Key) -> None:
        with self._lock:
            failure = self._failed.get(key)
        _refuse(key[0], failure)

    def _model_lock(self, key: Key) -> threading.Lock:
        with self._lock:
            return self._locks.setdefault(key, threading.Lock())

    def _attempt(self, key: Key, load: Callable[[], T], *, retrying: bool) -> T:
        with self._lock:
            self.attempts[key[0]] = self.attempts.get(key[0], 0) + 1
        try:
            result = load()
        except Exception as exc:
            self._opened(key, exc, load)
            raise
        self._closed(key, retrying=retrying)
        return result

    def _opened(self, key: Key, exc: Exception, load: Callable[[], Any]) -> None:
        model, where = key
        # download errors carry their own "Fix: ..." already: keep the reason and the fix apart
        reason, _, given_fix = f"{type(exc).__name__}: {exc}".partition(" Fix: ")
        reason = reason.rstrip(". ")
        with contextlib.suppress(AttributeError):  # the search that met it need not warn again
            exc.announced = True  # type: ignore[attr-defined]
        with self._lock:
            previous = self._failed.get(key)
            delay = (
                self.first_retry_s
                if previous is None
                else min(previous.delay_s * 2, self.max_retry_s)
            )
            target = Path(where) if where is not None else None  # a known name's folder there
            fix = given_fix or (previous.fix if previous is not None else model_fix(model, target))
            failures = previous.failures + 1 if previous is not None else 1
            self._failed[key] = _Failure(
                reason, fix, failures, time.monotonic() + delay, delay, where
            )
            first_warning = key not in self._warned
            self._warned.add(key)
            start_thread = key not in self._retrying and not self._stop.is_set()
            if start_thread:
                self._retrying.add(key)
        if first_warning:  # once per model and process: searches fail open quietly after this
            logger.warning(
                "model %s cannot be loaded (%s): searches go on in the engine's order, "
                "without reranking, until it loads (retried in the background). Fix: %s",
                model if where is None or where == model else f"{model} ({where})",
                reason,
                fix,
            )
        if start_thread:
            thread = threading.Thread(
                target=self._retry_loop,
                args=(key, load),
                name=f"model-retry-{model[-40:]}",
                daemon=True,
            )
            thread.start()

    def _closed(self, key: Key, *, retrying: bool) -> None:
        with self._lock:
            failure = self._failed.pop(key, None)
        if failure is not None and retrying:
            logger.warning("model %s loaded after %d failed attempt(s)", key[0], failure.failures)

    def _retry_loop(self, key: Key, load: Callable[[], Any]) -> None:
        try:
            while True:
                with self._lock:
                    failure = self._failed.get(key)
                if failure is None:
                    return
                if self._stop.wait(max(0.0, failure.retry_at - time.monotonic())):
                    return
                with self._model_lock(key):
                    with self._lock:
                        still_open = key in self._failed
                    if not still_open:  # loaded by a caller, or reset, meanwhile
                        return
                    try:
                        self._attempt(key, load, retrying=True)
                    except Exception:
                        continue  # _opened pushed retry_at further out
                return
        finally:
            with self._lock:
                self._retrying.discard(key)

    def failure(self, model: str, *, where: str | None = None) -> dict[str, Any] | None:
        """Why ``model`` (at ``where``; any location when None) is unavailable, or None."""
        failure = self._failure(model, where)
        return None if failure is None else _described(failure, time.monotonic())

    def status(self) -> dict[str, dict[str, Any]]:
        """Unavailable models: reason, fix, failed attempts, seconds to the next retry and where
        the name resolved; keyed by name (``name (where)`` when one name fails in two places)."""
        now = time.monotonic()
        with self._lock:
            failed = list(self._failed.items())
        names = [model for (model, _), _ in failed]
        return {
            (model if names.count(model) == 1 else f"{model} ({where})"): _described(failure, now)
            for (model, where), failure in failed
        }

    def is_open(self, model: str, *, where: str | None = None) -> bool:
        return self._failure(model, where) is not None

    def stop(self) -> None:
        """Stop the retry threads (they are daemons; this is for an orderly shutdown)."""
        self._stop.set()

    def reset(self) -> None:
        """Forget every failure and warning (tests); retry threads end at their next wake-up."""
        with self._lock:
            self._failed.clear()
            self._warned.clear()
            self.attempts.clear()


def _refuse(model: str, failure: _Failure | None) -> None:
    if failure is not None:
        raise ModelUnavailableError(
            f"model {model} is unavailable ({failure.reason}); retrying in the background "
            f"in {max(0.0, failure.retry_at - time.monotonic()):.0f}s; fix: {failure.fix}",
            model=model,
        )


def _described(failure: _Failure, now: float) -> dict[str, Any]:
    return {
        "state": "unavailable",
        "reason": failure.reason,
        "fix": failure.fix,
        "failures": failure.failures,
        "retry_in_s": round(max(0.0, failure.retry_at - now), 1),
        **({"where": failure.where} if failure.where is not None else {}),
    }


__all__ = ["ModelBreaker"]
