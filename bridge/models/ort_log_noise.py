"""Two onnxruntime log lines that say nothing to a rerank-bridge user, dropped where we call it.

- `quantize_dynamic` logs "Please consider to run pre-processing before quantization" through the
  root module function `logging.warning`, which also calls `logging.basicConfig()` when the root
  logger has no handler: a library call would configure the application's logging. The advice is
  for static (calibrated) quantization; ours is dynamic and checked against fp32 after the fact.
- the transformer optimizer logs "Model producer not matched: Expected "pytorch", Got
  "rerank-bridge"": our converter names itself the producer and we pass `model_type="bert"`
  explicitly, which is what the message asks for.

Only records starting with the given prefixes are dropped, only while the call runs; every other
record is handled as it would have been (without a root handler: Python's last-resort stderr
handler, WARNING and up), and the root logger is never configured.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

PRE_PROCESSING = "Please consider to run pre-processing before quantization"
PRODUCER_MISMATCH = "Model producer not matched"
OPTIMIZER_LOGGER = "onnxruntime.transformers.optimizer"


class _DropPrefixes(logging.Filter):
    def __init__(self, prefixes: tuple[str, ...]) -> None:
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.prefixes)


class _LastResort(logging.Handler):
    """Stands in for 'no handler' so `logging.warning()` does not call basicConfig()."""

    def emit(self, record: logging.LogRecord) -> None:
        last = logging.lastResort
        if last is not None and record.levelno >= last.level:
            last.handle(record)


@contextlib.contextmanager
def dropped_ort_messages(*prefixes: str, loggers: tuple[str, ...] = ("",)) -> Iterator[None]:
    """Drop records starting with `prefixes` logged on `loggers` ("" = root) inside the block."""
    drop = _DropPrefixes(prefixes)
    root = logging.getLogger()
    guard = _LastResort() if not root.handlers else None
    if guard is not None:
        root.addHandler(guard)
    targets = [logging.getLogger(name) if name else root for name in loggers]
    for target in targets:
        target.addFilter(drop)
    try:
        yield
    finally:
        for target in targets:
            target.removeFilter(drop)
        if guard is not None:
            root.removeHandler(guard)
