"""Scorers: cross-encoders (pair -> logit -> probability) and bi-encoders (cosine)."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from bridge.config import DEFAULT_MAX_LENGTH
from bridge.errors import InputError, ModelError
from bridge.scoring.availability import ModelBreaker
from bridge.scoring.chunking import ChunkingConfig, WindowScores, aggregate
from bridge.scoring.embedding_cache import DEFAULT_EMBEDDING_CACHE_BYTES, EmbeddingCache
from bridge.scoring.lru import CacheStats
from bridge.scoring.score_cache import DEFAULT_SCORE_CACHE_BYTES, ScoreCache
from bridge.scoring.session import create_session, default_threads
from bridge.scoring.token_batches import Batch, make_batches
from bridge.scoring.token_cache import DEFAULT_TOKEN_CACHE_BYTES
from bridge.scoring.tokenize import PairTokenizer, TextTokenizer, Tokens

if TYPE_CHECKING:
    from bridge.models import ModelFiles

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float32]
ScorerKind = Literal["cross", "bi"]

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


@runtime_checkable
class Scorer(Protocol):
    """What the wrapper, the proxy and the integrations need from a model."""

    @property
    def kind(self) -> ScorerKind: ...

    @property
    def model_name(self) -> str: ...

    @property
    def max_length(self) -> int: ...

    def score(self, query: str, passages: Sequence[str]) -> list[float]: ...

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[float]: ...

    def embed(self, texts: Sequence[str]) -> FloatArray: ...

    async def ascore(self, query: str, passages: Sequence[str]) -> list[float]: ...

    async def ascore_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[float]: ...


def _check_text(value: object, index: int, what: str = "text") -> str:
    if not isinstance(value, str):
        raise InputError(f"{what} must be a string, got {type(value).__name__}", index=index)
    return value


def _check_pairs(pairs: Sequence[tuple[str, str]]) -> None:
    for i, pair in enumerate(pairs):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise InputError("must be a (query, passage) pair", index=i)
        _check_text(pair[0], i, "query")
        _check_text(pair[1], i, "passage")


class _OnnxModel:
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


def _probabilities(logits: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    values = np.asarray(logits, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    if values.shape[1] == 1:
        result: npt.NDArray[np.float64] = 1.0 / (1.0 + np.exp(-values[:, 0]))
        return result
    if values.shape[1] == 2:
        shifted = values - values.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        result = exp[:, 1] / exp.sum(axis=1)
        return result
    raise ModelError(f"cross-encoder output has {values.shape[1]} logits; expected 1 or 2")


class _CachedScoring:
    """What both kinds share: the ONNX model, the score cache (look up, compute the misses,
    store) and the text checks."""

    _tokenizer: PairTokenizer | TextTokenizer

    def __init__(
        self,
        session: ort.InferenceSession,
        *,
        model_name: str,
        output_name: str | None,
        cache: ScoreCache | None,
        token_budget: int,
        max_batch: int,
        parallel_batches: int,
    ) -> None:
        self._model = _OnnxModel(
            session,
            output_name=output_name,
            token_budget=token_budget,
            max_batch=max_batch,
            parallel_batches=parallel_batches,
        )
        self.model_name = model_name
        self.cache = cache
        # What a cached score is keyed by besides its texts; set from the model file by the loader
        # (``model_identity``) so a replaced file or another max_length never reads a stale entry.
        self.identity = model_name

    @property
    def max_length(self) -> int:
        return self._tokenizer.max_length

    def cache_stats(self) -> dict[str, CacheStats]:
        """Hits, misses, evictions and bytes of each cache this scorer has, by cache name."""
        found: dict[str, CacheStats] = {}
        if self.cache is not None:
            found["score"] = self.cache.stats()
        return found

    def tokenize_seconds(self) -> float:
        """Wall time this scorer spent tokenizing pairs or texts since it was created."""
        return self._tokenizer.timer.seconds

    def _compute(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        raise NotImplementedError

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        found = self.lookup_scores(pairs)
        missing = [i for i, value in enumerate(found) if value is None]
        if missing:
            fresh = self.compute_scores([pairs[i] for i in missing])
            for i, value in zip(missing, fresh, strict=True):
                found[i] = value
        return [float(v) for v in found if v is not None]

    def lookup_scores(self, pairs: Sequence[tuple[str, str]]) -> list[float | None]:
        """Cached scores of ``pairs`` (None where not cached, or everywhere without a cache);
        cheap enough for an event loop: the proxy answers cached pairs before queueing."""
        _check_pairs(pairs)
        if self.cache is None:
            return [None] * len(pairs)
        return self.cache.get_many([(self.identity, q, p) for q, p in pairs])

    def compute_scores(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """Scores of ``pairs`` from the model (no cache look-up), stored in the cache."""
        _check_pairs(pairs)
        if not pairs:
            return []
        fresh = self._compute(pairs)
        if self.cache is not None:
            self.cache.put_many([(self.identity, q, p) for q, p in pairs], fresh)
        return fresh

    def score(self, query: str, passages: Sequence[str]) -> list[float]:
        _check_text(query, 0, "query")
        for i, passage in enumerate(passages):
            _check_text(passage, i)
        return self.score_pairs([(query, p) for p in passages])

    async def ascore(self, query: str, passages: Sequence[str]) -> list[float]:
        return await asyncio.to_thread(self.score, query, passages)

    async def ascore_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        return await asyncio.to_thread(self.score_pairs, pairs)


class CrossEncoderScorer(_CachedScoring):
    """Scores (query, passage) pairs jointly; 1 logit -> sigmoid, 2 logits -> softmax column 1."""

    def __init__(
        self,
        session: ort.InferenceSession,
        tokenizer: PairTokenizer,
        *,
        model_name: str,
        output_name: str | None = None,
        cache: ScoreCache | None = None,
        token_budget: int = DEFAULT_TOKEN_BUDGET,
        max_batch: int = DEFAULT_MAX_BATCH,
        parallel_batches: int = DEFAULT_PARALLEL_BATCHES,
    ) -> None:
        super().__init__(
            session,
            model_name=model_name,
            output_name=output_name,
            cache=cache,
            token_budget=token_budget,
            max_batch=max_batch,
            parallel_batches=parallel_batches,
        )
        self._tokenizer: PairTokenizer = tokenizer

    @property
    def kind(self) -> ScorerKind:
        return "cross"

    def cache_stats(self) -> dict[str, CacheStats]:
        found = super().cache_stats()
        tokens = self._tokenizer.cache_stats()
        if tokens is not None:
            found["token"] = tokens
        return found

    def _compute(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        tokens = self._tokenizer.encode_pairs(pairs)
        scores = np.empty(len(pairs), dtype=np.float64)
        for batch, logits in self._model.run(tokens, self._tokenizer.pad_id):
            scores[batch.index] = _probabilities(logits)
        result: list[float] = scores.tolist()
        return result

    def score_chunked(
        self, query: str, passages: Sequence[str], chunking: ChunkingConfig
    ) -> WindowScores:
        """Each passage's token windows scored in the same batches, then aggregated
        (``bridge.scoring.chunking``); not cached (the score cache holds whole passages)."""
        _check_text(query, 0, "query")
        for i, passage in enumerate(passages):
            _check_text(passage, i)
        if not passages:
            return WindowScores([], [], [], [])
        windows = self._tokenizer.encode_windows(
            query, passages, tokens=chunking.tokens, stride=chunking.stride
        )
        scores = np.empty(len(windows.owners), dtype=np.float64)
        for batch, logits in self._model.run(windows.pairs, self._tokenizer.pad_id):
            scores[batch.index] = _probabilities(logits)
        return aggregate(scores, windows.owners, windows.spans, len(passages), chunking.aggregate)

    def embed(self, texts: Sequence[str]) -> FloatArray:
        raise ModelError(f"{self.model_name} is a cross-encoder; embed() needs a bi-encoder")

    async def aembed(self, texts: Sequence[str]) -> FloatArray:
        return self.embed(texts)


_POOLINGS = frozenset({None, "mean", "cls"})


def _normalise(vectors: npt.NDArray[Any]) -> FloatArray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    result: FloatArray = vectors / np.maximum(norms, np.float32(1e-12))
    return result


class BiEncoderScorer(_CachedScoring):
    """Embeds texts (mean-pooled, L2-normalised); a pair's score is the cosine of its embeddings."""

    def __init__(
        self,
        session: ort.InferenceSession,
        tokenizer: TextTokenizer,
        *,
        model_name: str,
        output_name: str | None = None,
        cache: ScoreCache | None = None,
        token_budget: int = DEFAULT_TOKEN_BUDGET,
        max_batch: int = DEFAULT_MAX_BATCH,
        pooling: str | None = None,
        parallel_batches: int = DEFAULT_PARALLEL_BATCHES,
        embedding_cache_bytes: int = DEFAULT_EMBEDDING_CACHE_BYTES,
    ) -> None:
        if pooling not in _POOLINGS:
            raise ModelError(f"unsupported pooling {pooling!r}; expected 'mean' or 'cls'")
        super().__init__(
            session,
            model_name=model_name,
            output_name=output_name,
            cache=cache,
            token_budget=token_budget,
            max_batch=max_batch,
            parallel_batches=parallel_batches,
        )
        self._tokenizer: TextTokenizer = tokenizer
        self.pooling = pooling or "mean"
        self.embedding_cache = (
            EmbeddingCache(embedding_cache_bytes) if embedding_cache_bytes > 0 else None
        )

    @property
    def kind(self) -> ScorerKind:
        return "bi"

    def cache_stats(self) -> dict[str, CacheStats]:
        found = super().cache_stats()
        if self.embedding_cache is not None:
            found["embedding"] = self.embedding_cache.stats()
        return found

    def embed(self, texts: Sequence[str]) -> FloatArray:
        for i, text in enumerate(texts):
            _check_text(text, i)
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        if self.embedding_cache is not None:
            return self.embedding_cache.embed(texts, self._embed_uncached)
        return self._embed_uncached(texts)

    def _embed_uncached(self, texts: Sequence[str]) -> FloatArray:
        tokens = self._tokenizer.encode_texts(texts)
        rows: list[FloatArray] = []
        index: list[npt.NDArray[np.int64]] = []
        for batch, output in self._model.run(tokens, self._tokenizer.pad_id):
            if output.ndim == 3:  # per-token outputs: pool over the real tokens
                output = self._pool(output, batch.attention_mask)
            rows.append(_normalise(output))
            index.append(batch.index)
        stacked = np.concatenate(rows)
        result: FloatArray = np.empty_like(stacked)
        result[np.concatenate(index)] = stacked
        return result

    def _pool(self, tokens: npt.NDArray[Any], attention_mask: npt.NDArray[np.int64]) -> FloatArray:
        if self.pooling == "cls":
            first: FloatArray = tokens[:, 0, :].astype(np.float32)
            return first
        mask = attention_mask[:, :, None].astype(np.float32)
        mean: FloatArray = (tokens * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1.0)
        return mean

    async def aembed(self, texts: Sequence[str]) -> FloatArray:
        return await asyncio.to_thread(self.embed, texts)

    def _compute(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        unique = list(dict.fromkeys(t for pair in pairs for t in pair))
        vectors = self.embed(unique)
        where = {text: i for i, text in enumerate(unique)}
        left = vectors[[where[q] for q, _ in pairs]]
        right = vectors[[where[p] for _, p in pairs]]
        scores: npt.NDArray[np.float64] = np.einsum("ij,ij->i", left, right).astype(np.float64)
        result: list[float] = scores.tolist()
        return result


def _default_max_length(config: dict[str, Any]) -> int:
    positions = config.get("max_position_embeddings")
    if isinstance(positions, int) and positions > 0:
        return min(positions, DEFAULT_MAX_LENGTH)
    return DEFAULT_MAX_LENGTH


def load_scorer(
    model: str | Path,
    *,
    cache_dir: str | Path | None = None,
    max_length: int | None = None,
    providers: Sequence[str] | None = None,
    threads: int | None = None,
    cache_size: int = 0,
    query_max_tokens: int | None = None,
    token_budget: int = DEFAULT_TOKEN_BUDGET,
    download: bool = True,
    spin: bool = False,
    parallel_batches: int = DEFAULT_PARALLEL_BATCHES,
    cache_bytes: int = DEFAULT_SCORE_CACHE_BYTES,
    token_cache_bytes: int = DEFAULT_TOKEN_CACHE_BYTES,
    embedding_cache_bytes: int = DEFAULT_EMBEDDING_CACHE_BYTES,
) -> CrossEncoderScorer | BiEncoderScorer:
    """Resolve ``model`` (a known name or a local directory) and open a scorer for it.

    Caches, each bounded in bytes and 0 to turn it off: the score cache (``cache_size`` entries,
    ``cache_bytes``; off by default), passage token ids of a cross-encoder (``token_cache_bytes``)
    and text embeddings of a bi-encoder (``embedding_cache_bytes``).

    ``spin=True`` lets ORT worker threads spin between operators: lower latency on an otherwise
    idle machine, much higher under CPU contention (benchmarks/README.md), so it is off by default.
    ``parallel_batches`` is how many batches of one call run at once; with 1 and a huge
    ``token_budget`` a call is one padded batch, exactly FlashRank's computation.
    """
    cache_path = Path(cache_dir).expanduser() if cache_dir is not None else None
    files = _resolve(model, cache_path, download)
    session = create_session(
        files.onnx_path,
        providers=providers,
        threads=intra_op_threads(threads, parallel_batches),
        cache_dir=cache_path,
        model_config=files.config,
        spin=spin,
    )
    return _scorer_over(
        files,
        session,
        max_length=max_length,
        cache_size=cache_size,
        query_max_tokens=query_max_tokens,
        token_budget=token_budget,
        parallel_batches=parallel_batches,
        caches=CacheBounds(cache_bytes, token_cache_bytes, embedding_cache_bytes),
    )


def _resolve(model: str | Path, cache_dir: Path | None, download: bool) -> ModelFiles:
    from bridge.models import resolve_model

    return resolve_model(str(model), cache_dir=cache_dir, download=download)


class CacheBounds(NamedTuple):
    """Bytes each cache of a scorer may hold; 0 turns that cache off."""

    score: int = DEFAULT_SCORE_CACHE_BYTES
    token: int = DEFAULT_TOKEN_CACHE_BYTES
    embedding: int = DEFAULT_EMBEDDING_CACHE_BYTES


DEFAULT_CACHE_BOUNDS = CacheBounds()


def model_identity(files: ModelFiles, *options: object) -> str:
    """The model file (path, size, modification time, inode) and the text options a score
    depends on: the part of a score cache key that keeps entries of another model file, a
    replaced file or another ``max_length`` apart."""
    try:
        stat = files.onnx_path.stat()
        file_part = f"{files.onnx_path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ino}"
    except OSError:
        file_part = str(files.onnx_path)
    return "|".join([files.name, file_part, *map(str, options)])


def _scorer_over(
    files: ModelFiles,
    session: ort.InferenceSession,
    *,
    max_length: int | None,
    cache_size: int,
    query_max_tokens: int | None = None,
    token_budget: int = DEFAULT_TOKEN_BUDGET,
    parallel_batches: int = DEFAULT_PARALLEL_BATCHES,
    caches: CacheBounds = DEFAULT_CACHE_BOUNDS,
) -> CrossEncoderScorer | BiEncoderScorer:
    """A scorer (tokenizer, truncation, caches) over an already open session."""
    length = max_length or files.max_length or _default_max_length(files.config)
    cache = ScoreCache(cache_size, max_bytes=caches.score) if cache_size > 0 else None
    scorer: CrossEncoderScorer | BiEncoderScorer
    if files.kind == "bi":
        scorer = BiEncoderScorer(
            session,
            TextTokenizer(files.tokenizer_path, max_length=length),
            model_name=files.name,
            output_name=files.output_name,
            cache=cache,
            token_budget=token_budget,
            pooling=files.pooling,
            parallel_batches=parallel_batches,
            embedding_cache_bytes=caches.embedding,
        )
    else:
        pair_tokenizer = PairTokenizer(
            files.tokenizer_path,
            max_length=length,
            query_max_tokens=query_max_tokens,
            token_cache_bytes=caches.token,
        )
        scorer = CrossEncoderScorer(
            session,
            pair_tokenizer,
            model_name=files.name,
            output_name=files.output_name,
            cache=cache,
            token_budget=token_budget,
            parallel_batches=parallel_batches,
        )
    query_cap = getattr(scorer._tokenizer, "query_max_tokens", None)
    scorer.identity = model_identity(files, scorer.max_length, query_cap)
    return scorer


class SharedScorers:
    """Process-wide registry of loaded scorers keyed by (model, options); each loads once.

    The wrapper, the proxy and the integrations share sessions through ``shared_scorers`` rather
    than each opening their own copy of the same model. Scorers that differ only in text options
    (``max_length``, score cache size) share one ONNX session: the session is the costly part,
    the tokenizer and cache around it are cheap.
    """

    def __init__(self) -> None:
        self._scorers: dict[tuple[Any, ...], CrossEncoderScorer | BiEncoderScorer] = {}
        self._sessions: dict[tuple[Any, ...], ort.InferenceSession] = {}
        self._locks: dict[tuple[Any, ...], threading.Lock] = {}
        self._guard = threading.Lock()
        self.breaker = ModelBreaker()

    def get(
        self,
        model: str | Path,
        *,
        cache_dir: str | Path | None = None,
        max_length: int | None = None,
        providers: Sequence[str] | None = None,
        threads: int | None = None,
        cache_size: int = 0,
        spin: bool = False,
        caches: CacheBounds = DEFAULT_CACHE_BOUNDS,
    ) -> CrossEncoderScorer | BiEncoderScorer:
        cache_path = Path(cache_dir).expanduser() if cache_dir is not None else None
        runtime = (tuple(providers) if providers else None, threads, spin)
        key = (str(model), str(cache_path), max_length, cache_size, tuple(caches), *runtime)
        with self._guard:
            scorer = self._scorers.get(key)
            if scorer is not None:
                return scorer
            lock = self._locks.setdefault(key, threading.Lock())

        def load() -> CrossEncoderScorer | BiEncoderScorer:
            with lock:  # loading can take seconds; other keys stay available meanwhile
                found = self._scorers.get(key)
                if found is not None:
                    return found
                files = _resolve(model, cache_path, download=True)
                session = self._session(files, cache_path, providers, threads, spin)
                made = _scorer_over(
                    files, session, max_length=max_length, cache_size=cache_size, caches=caches
                )
                with self._guard:
                    self._scorers[key] = made
                return made

        # a model that failed to load fails at once until the breaker's retry thread loads it
        return self.breaker.load(str(model), load)

    def _session(
        self,
        files: ModelFiles,
        cache_dir: Path | None,
        providers: Sequence[str] | None,
        threads: int | None,
        spin: bool,
    ) -> ort.InferenceSession:
        key = (str(files.onnx_path), tuple(providers) if providers else None, threads, spin)
        with self._guard:
            lock = self._locks.setdefault(("session", *key), threading.Lock())
        with lock:
            session = self._sessions.get(key)
            if session is None:
                session = create_session(
                    files.onnx_path,
                    providers=providers,
                    threads=intra_op_threads(threads, DEFAULT_PARALLEL_BATCHES),
                    cache_dir=cache_dir,
                    model_config=files.config,
                    spin=spin,
                )
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
