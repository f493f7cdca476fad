"""``shared_scorers``: the process-wide registry of loaded scorers, each loaded once."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import onnxruntime as ort

from bridge.scoring.availability import ModelBreaker
from bridge.scoring.loader import AnyScorer, ScorerOptions, load, open_session

if TYPE_CHECKING:
    from bridge.models import ModelFiles


class SharedScorers:
    """Process-wide registry of loaded scorers keyed by (model, options); each loads once.

    The wrapper, the proxy and the integrations share sessions through ``shared_scorers`` rather
    than each opening their own copy of the same model. Scorers that differ only in text options
    (``max_length``, score cache size) share one ONNX session: the session is the costly part,
    the tokenizer and cache around it are cheap. ``get`` takes ``load_scorer``'s options and loads
    through the same ``load``.
    """

    def __init__(self) -> None:
        self._scorers: dict[tuple[str, ScorerOptions], AnyScorer] = {}
        self._sessions: dict[tuple[Any, ...], ort.InferenceSession] = {}
        self._locks: dict[tuple[Any, ...], threading.Lock] = {}
        self._guard = threading.Lock()
        self.breaker = ModelBreaker()

    def get(self, model: str | Path, **options: Any) -> AnyScorer:
        """The scorer for ``model`` with these options (``load_scorer``'s), loading it once."""
        opts = ScorerOptions.of(**options)
        key = (str(model), opts)
        with self._guard:
            scorer = self._scorers.get(key)
            if scorer is not None:
                return scorer
            lock = self._locks.setdefault(key, threading.Lock())

        def load_once() -> AnyScorer:
            with lock:  # loading can take seconds; other keys stay available meanwhile
                found = self._scorers.get(key)
                if found is not None:
                    return found
                made = load(model, opts, self._session)
                with self._guard:
                    self._scorers[key] = made
                return made

        # a model that failed to load fails at once until the breaker's retry thread loads it;
        # keyed by where the name resolves: one name in two cache folders is two models
        return self.breaker.load(str(model), load_once, where=self.where(model, opts.cache_dir))

    @staticmethod
    def where(model: str | Path, cache_dir: str | Path | None = None) -> str:
        """Where ``model`` resolves with ``cache_dir``: the breaker's key beside the name."""
        from bridge.models.resolver import model_location

        try:
            return model_location(model, cache_dir=cache_dir)
        except (OSError, ValueError):  # an unreadable path: the load reports it
            return str(model)

    def _session(self, files: ModelFiles, options: ScorerOptions) -> ort.InferenceSession:
        key = (str(files.onnx_path), options.providers, options.intra_op_threads, options.spin)
        with self._guard:
            lock = self._locks.setdefault(("session", *key), threading.Lock())
        with lock:
            session = self._sessions.get(key)
            if session is None:
                session = open_session(files, options)
                with self._guard:
                    self._sessions[key] = session
            return session

    def __len__(self) -> int:
        with self._guard:
            return len(self._scorers)

    def clear(self) -> None:
        with self._guard:
            self._scorers.clear()
            self._sessions.clear()
            self._locks.clear()
        self.breaker.reset()


shared_scorers = SharedScorers()

__all__ = ["SharedScorers", "shared_scorers"]
