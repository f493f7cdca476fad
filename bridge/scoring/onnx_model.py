"""One ONNX session and how a call runs on it: length-sorted batches, some of them in parallel."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy.typing as npt
import onnxruntime as ort

from bridge.errors import ModelError
from bridge.scoring.session import default_threads
from bridge.scoring.token_batches import Batch, make_batches
from bridge.scoring.tokenize import Tokens

# Padded tokens per ONNX run. Measured on 2 cores (benchmarks/README.md): small batches of
# similar length beat one big padded batch; very small ones pay per-run overhead.
DEFAULT_TOKEN_BUDGET = 512
DEFAULT_MAX_BATCH = 64
# Batches of one call that run at the same time. Small transformer GEMMs use two intra-op threads
# poorly; two batches in flight kept both cores busy: nano 49 -> 42 ms, small 1,067 -> 919 ms for
# 20 product passages on the quiet 2-core machine (benchmarks/README.md).
DEFAULT_PARALLEL_BATCHES = 2
# A call this small runs as one batch: splitting it saves less than a run's fixed cost.
MIN_SPLIT_TOKENS = 256


def intra_op_threads(threads: int | None, parallel_batches: int) -> int:
    """``threads``, or each of the runs in flight gets its share of the cores, so together they
    fill them without oversubscribing: on 2 cores, one thread per run served 20-title searches
    15 % faster through the proxy and 16 x 20 titles 1.2x faster in one process
    (benchmarks/README.md)."""
    return threads or max(1, default_threads() // max(1, parallel_batches))


class OnnxModel:
    """A session plus the feed/output plumbing shared by both scorer kinds."""

    def __init__(
        self,
        session: ort.InferenceSession,
        *,
        output_name: str | None,
        token_budget: int,
        max_batch: int,
        parallel_batches: int = DEFAULT_PARALLEL_BATCHES,
    ) -> None:
        self.session = session
        self.input_names = {i.name for i in session.get_inputs()}
        outputs = [o.name for o in session.get_outputs()]
        if output_name is not None and output_name not in outputs:
            raise ModelError(f"model has no output {output_name!r} (outputs: {outputs})")
        self.output_name = output_name or outputs[0]
        for required in ("input_ids", "attention_mask"):
            if required not in self.input_names:
                raise ModelError(
                    f"model lacks the {required!r} input (has {sorted(self.input_names)})"
                )
        self.token_budget = token_budget
        self.max_batch = max_batch
        self.parallel_batches = parallel_batches
        self._executor: ThreadPoolExecutor | None = None
        self._pool_guard = threading.Lock()

    def run(self, tokens: Tokens, pad_id: int) -> list[tuple[Batch, npt.NDArray[Any]]]:
        batches = list(
            make_batches(
                tokens, token_budget=self._budget(tokens), max_batch=self.max_batch, pad_id=pad_id
            )
        )
        if len(batches) == 1 or self.parallel_batches <= 1:
            return [(batch, self._run_batch(batch)) for batch in batches]
        # The session is thread-safe and releases the GIL while it runs.
        outputs = self._pool().map(self._run_batch, batches)
        return list(zip(batches, outputs, strict=True))

    def _budget(self, tokens: Tokens) -> int:
        """The token budget, lowered so a short call still splits into one batch per worker.

        20 product titles (about 500 tokens) made one 480-token batch and a tiny one, leaving a
        core idle: nano 9.2 -> 7.1 ms with the work split evenly (benchmarks/README.md).
        """
        total = int(tokens.lengths.sum())
        if self.parallel_batches <= 1 or total <= MIN_SPLIT_TOKENS:
            return self.token_budget
        return min(self.token_budget, -(-total // self.parallel_batches))

    def _run_batch(self, batch: Batch) -> npt.NDArray[Any]:
        feed = {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask}
        if "token_type_ids" in self.input_names:
            feed["token_type_ids"] = batch.token_type_ids
        try:
            (output,) = self.session.run([self.output_name], feed)
        except Exception as exc:
            raise ModelError(f"ONNX inference failed: {exc}") from exc
        result: npt.NDArray[Any] = output
        return result

    def _pool(self) -> ThreadPoolExecutor:
        with self._pool_guard:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    self.parallel_batches, thread_name_prefix="rerank-batch"
                )
            return self._executor
