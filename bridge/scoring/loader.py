"""The one scorer loader: resolve the model's files, open an ONNX session, wrap it in a scorer.

``load_scorer`` opens a fresh session; ``shared_scorers`` (``bridge.scoring.shared``) goes through
the same ``load`` with a session opener that shares sessions process-wide. Both take the same
options (``ScorerOptions``), with their defaults here only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import onnxruntime as ort

from bridge.config import DEFAULT_MAX_LENGTH
from bridge.scoring.bi_encoder import BiEncoderScorer
from bridge.scoring.cross_encoder import CrossEncoderScorer
from bridge.scoring.embedding_cache import DEFAULT_EMBEDDING_CACHE_BYTES
from bridge.scoring.onnx_model import (
    DEFAULT_PARALLEL_BATCHES,
    DEFAULT_TOKEN_BUDGET,
    intra_op_threads,
)
from bridge.scoring.score_cache import DEFAULT_SCORE_CACHE_BYTES, ScoreCache
from bridge.scoring.session import create_session
from bridge.scoring.token_cache import DEFAULT_TOKEN_CACHE_BYTES
from bridge.scoring.tokenize import PairTokenizer, TextTokenizer

if TYPE_CHECKING:
    from bridge.models import ModelFiles

AnyScorer = CrossEncoderScorer | BiEncoderScorer


@dataclass(frozen=True)
class ScorerOptions:
    """How to open a scorer.

    ``spin=True`` lets ORT worker threads spin between operators: lower latency on an otherwise
    idle machine, much higher under CPU contention (benchmarks/README.md), so it is off by default.
    ``parallel_batches`` is how many batches of one call run at once; with 1 and a huge
    ``token_budget`` a call is one padded batch, exactly FlashRank's computation. ``threads`` is
    the intra-op thread count (default: the cores shared among the parallel batches).

    Caches, each bounded in bytes and 0 to turn it off: the score cache (``cache_size`` entries,
    ``cache_bytes``; off by default), passage token ids of a cross-encoder (``token_cache_bytes``)
    and text embeddings of a bi-encoder (``embedding_cache_bytes``).
    """

    cache_dir: Path | None = None
    max_length: int | None = None
    providers: tuple[str, ...] | None = None
    threads: int | None = None
    cache_size: int = 0
    query_max_tokens: int | None = None
    token_budget: int = DEFAULT_TOKEN_BUDGET
    download: bool = True
    spin: bool = False
    parallel_batches: int = DEFAULT_PARALLEL_BATCHES
    cache_bytes: int = DEFAULT_SCORE_CACHE_BYTES
    token_cache_bytes: int = DEFAULT_TOKEN_CACHE_BYTES
    embedding_cache_bytes: int = DEFAULT_EMBEDDING_CACHE_BYTES

    @classmethod
    def of(
        cls,
        *,
        cache_dir: str | Path | None = None,
        providers: Sequence[str] | None = None,
        **rest: Any,
    ) -> ScorerOptions:
        """Options from keyword arguments as users write them (``str`` paths, provider lists)."""
        path = Path(cache_dir).expanduser() if cache_dir is not None else None
        return cls(cache_dir=path, providers=tuple(providers) if providers else None, **rest)

    @property
    def intra_op_threads(self) -> int:
        return intra_op_threads(self.threads, self.parallel_batches)


SessionOpener = Callable[["ModelFiles", ScorerOptions], ort.InferenceSession]


def open_session(files: ModelFiles, options: ScorerOptions) -> ort.InferenceSession:
    """A new ONNX session for the model's files."""
    return create_session(
        files.onnx_path,
        providers=options.providers,
        threads=options.intra_op_threads,
        cache_dir=options.cache_dir,
        model_config=files.config,
        spin=options.spin,
    )


def load(
    model: str | Path, options: ScorerOptions, opener: SessionOpener = open_session
) -> AnyScorer:
    """Resolve ``model`` (a known name or a local directory) and open a scorer for it."""
    from bridge.models import resolve_model

    files = resolve_model(str(model), cache_dir=options.cache_dir, download=options.download)
    return scorer_over(files, opener(files, options), options)


def load_scorer(model: str | Path, **options: Any) -> AnyScorer:
    """Resolve ``model`` (a known name or a local directory) and open a scorer for it.

    Keyword options are the fields of ``ScorerOptions``: ``cache_dir``, ``max_length``,
    ``providers``, ``threads``, ``cache_size``, ``query_max_tokens``, ``token_budget``,
    ``download``, ``spin``, ``parallel_batches``, ``cache_bytes``, ``token_cache_bytes`` and
    ``embedding_cache_bytes``.
    """
    return load(model, ScorerOptions.of(**options))


def scorer_over(
    files: ModelFiles, session: ort.InferenceSession, options: ScorerOptions
) -> AnyScorer:
    """A scorer (tokenizer, truncation, caches) over an already open session."""
    length = requested_max_length(files, options.max_length)
    size = options.cache_size
    cache = ScoreCache(size, max_bytes=options.cache_bytes) if size > 0 else None
    scorer: AnyScorer
    if files.kind == "bi":
        scorer = BiEncoderScorer(
            session,
            TextTokenizer(files.tokenizer_path, max_length=length),
            model_name=files.name,
            output_name=files.output_name,
            cache=cache,
            token_budget=options.token_budget,
            pooling=files.pooling,
            parallel_batches=options.parallel_batches,
            embedding_cache_bytes=options.embedding_cache_bytes,
        )
    else:
        tokenizer = PairTokenizer(
            files.tokenizer_path,
            max_length=length,
            query_max_tokens=options.query_max_tokens,
            token_cache_bytes=options.token_cache_bytes,
        )
        scorer = CrossEncoderScorer(
            session,
            tokenizer,
            model_name=files.name,
            output_name=files.output_name,
            cache=cache,
            token_budget=options.token_budget,
            parallel_batches=options.parallel_batches,
        )
    query_cap = getattr(scorer._tokenizer, "query_max_tokens", None)
    scorer.identity = model_identity(files, scorer.max_length, query_cap)
    return scorer


def model_identity(files: ModelFiles, *options: object) -> str:
    """The model file and its tokenizer file (path, size, modification time, inode each) and
    the text options a score depends on: the part of a score cache key that keeps entries of
    another model file, a replaced file (model or tokenizer) or another ``max_length`` apart."""
    return "|".join(
        [files.name, _file_identity(files.onnx_path), _file_identity(files.tokenizer_path)]
        + [str(option) for option in options]
    )


def _file_identity(path: Path) -> str:
    try:
        stat = path.stat()
        return f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ino}"
    except OSError:
        return str(path)


def requested_max_length(files: ModelFiles, requested: int | None) -> int:
    """The limit a scorer of ``files`` opened with ``max_length=requested`` asks its tokenizer
    for (``None``: the model's default); the tokenizer may cap it further."""
    return requested or files.max_length or _default_max_length(files.config)


def _default_max_length(config: dict[str, Any]) -> int:
    positions = config.get("max_position_embeddings")
    if isinstance(positions, int) and positions > 0:
        return min(positions, DEFAULT_MAX_LENGTH)
    return DEFAULT_MAX_LENGTH


__all__ = [
    "AnyScorer",
    "ScorerOptions",
    "load",
    "load_scorer",
    "model_identity",
    "open_session",
    "requested_max_length",
    "scorer_over",
]
