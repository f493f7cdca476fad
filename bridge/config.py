"""The ``rerank`` section: frozen, validated configuration with every default in one place.

``RerankConfig.from_value`` accepts what users write (``True``, a dict such as a proxy request's
``rerank`` body section, or a ``RerankConfig``) and raises ``ConfigError`` naming the field path
(``rerank.fusion.method``) for anything invalid.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

from bridge.chunking import ChunkingConfig
from bridge.errors import ConfigError

FusionMethod = Literal["replace", "linear", "rrf", "rescore"]
Normalize = Literal["minmax", "zscore", "none"]
ScoreMode = Literal["total", "multiply", "avg", "max", "min"]
OnFailure = Literal["original", "error"]

FUSION_METHODS: tuple[str, ...] = ("replace", "linear", "rrf", "rescore")
NORMALIZERS: tuple[str, ...] = ("minmax", "zscore", "none")
SCORE_MODES: tuple[str, ...] = ("total", "multiply", "avg", "max", "min")
ON_FAILURE: tuple[str, ...] = ("original", "error")

DEFAULT_MODEL = "ms-marco-TinyBERT-L-2-v2"
DEFAULT_EMBEDDING_MODEL = "all-MiniLM-L6-v2"
# bearer token of the model routes (`serve`), also what `connect` hands the engine
MODEL_API_TOKEN_ENV = "RERANK_BRIDGE_MODEL_API_TOKEN"
# Tokens per sequence when neither the request nor the model's files say otherwise.
DEFAULT_MAX_LENGTH = 512


@dataclass(frozen=True)
class FusionConfig:
    """How the engine score and the model score combine into the returned ``_score``.

    - ``replace``: the model score alone.
    - ``linear``: ``query_weight * norm(engine) + rerank_weight * norm(model)``.
    - ``rrf``: ``1 / (rank_constant + engine_rank) + 1 / (rank_constant + model_rank)``.
    - ``rescore``: Elasticsearch's rescore ``score_mode`` over ``query_weight * engine`` and
      ``rescore_query_weight * model``; hits past the window get ``query_weight * engine`` and
      the whole answer is sorted by score, as Elasticsearch's rescore does. The other methods
      answer the window first, then the rest in engine order.
    """

    method: FusionMethod = "replace"
    normalize: Normalize = "minmax"
    # None resolves per method: 0.2 for linear, 1.0 for rescore (ES's rescore default).
    query_weight: float | None = None
    rerank_weight: float = 0.8
    rank_constant: int = 60
    score_mode: ScoreMode = "total"
    rescore_query_weight: float = 1.0

    @classmethod
    def from_value(cls, value: Any, *, path: str = "rerank.fusion") -> FusionConfig:
        """Build from ``None``, a method name, a dict or a ``FusionConfig``."""
        if value is None:
            return cls()
        if isinstance(value, FusionConfig):
            return value
        if isinstance(value, str):
            value = {"method": value}
        if not isinstance(value, Mapping):
            raise ConfigError(
                f"expected an object or a method name, got {type(value).__name__}", field=path
            )
        _reject_unknown(value, cls, path)
        method = value.get("method", "replace")
        _check_choice(method, FUSION_METHODS, f"{path}.method")
        kwargs: dict[str, Any] = {"method": method}
        for name in ("normalize",):
            if name in value:
                _check_choice(value[name], NORMALIZERS, f"{path}.{name}")
                kwargs[name] = value[name]
        if "score_mode" in value:
            _check_choice(value["score_mode"], SCORE_MODES, f"{path}.score_mode")
            kwargs["score_mode"] = value["score_mode"]
        for name in ("query_weight", "rerank_weight", "rescore_query_weight"):
            if name in value:
                kwargs[name] = _finite_float(value[name], f"{path}.{name}")
        if "rank_constant" in value:
            kwargs["rank_constant"] = _int_at_least(
                value["rank_constant"], 1, f"{path}.rank_constant"
            )
        return cls(**kwargs)

    def __post_init__(self) -> None:
        _check_choice(self.method, FUSION_METHODS, "fusion.method")
        _check_choice(self.normalize, NORMALIZERS, "fusion.normalize")
        _check_choice(self.score_mode, SCORE_MODES, "fusion.score_mode")
        if self.query_weight is None:
            object.__setattr__(self, "query_weight", 1.0 if self.method == "rescore" else 0.2)

    @property
    def engine_weight(self) -> float:
        """``query_weight`` resolved for the method (never None after construction)."""
        return 0.2 if self.query_weight is None else self.query_weight

    def to_dict(self) -> dict[str, Any]:
        """The parameters that matter for this method, as JSON-ready values."""
        if self.method == "linear":
            return {
                "method": "linear",
                "normalize": self.normalize,
                "query_weight": self.engine_weight,
                "rerank_weight": self.rerank_weight,
            }
        if self.method == "rrf":
            return {"method": "rrf", "rank_constant": self.rank_constant}
        if self.method == "rescore":
            return {
                "method": "rescore",
                "score_mode": self.score_mode,
                "query_weight": self.engine_weight,
                "rescore_query_weight": self.rescore_query_weight,
            }
        return {"method": "replace"}


MAX_PHASES = 4


@dataclass(frozen=True)
class PhaseConfig:
    """One phase of phased reranking: which model rescores how many of the previous phase's
    top hits (the engine's, for the first phase), fused how.

    ``fusion`` None: the section's ``fusion``; ``max_length`` None: the section's. Per-phase
    settings live here so a phase can grow its own options.

    ``vector_field`` (a bi-encoder phase): the index field holding each document's vector made
    by this model at index time (``rerank-bridge embed``); the engine returns it with the hits,
    so the phase embeds only the query and the hits that lack a usable stored vector.
    """

    model: str
    window_size: int
    fusion: FusionConfig | None = None
    max_length: int | None = None
    vector_field: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"model": self.model, "window_size": self.window_size}
        if self.fusion is not None:
            out["fusion"] = self.fusion.to_dict()
        if self.max_length is not None:
            out["max_length"] = self.max_length
        if self.vector_field is not None:
            out["vector_field"] = self.vector_field
        return out


def parse_phases(value: Any, *, path: str = "rerank.phases") -> tuple[PhaseConfig, ...]:
    """A validated list of phases; each window must fit inside the previous one."""
    if not isinstance(value, (list, tuple)) or not value:
        raise ConfigError("expected a non-empty list of phases", field=path)
    if all(isinstance(v, PhaseConfig) for v in value):
        phases: list[PhaseConfig] = list(value)
        _check_phases(phases, path)
        return tuple(phases)
    phases = []
    for i, raw in enumerate(value):
        where = f"{path}[{i}]"
        if not isinstance(raw, Mapping):
            raise ConfigError(f"expected an object, got {type(raw).__name__}", field=where)
        _reject_unknown(raw, PhaseConfig, where)
        for key in ("model", "window_size"):
            if key not in raw:
                raise ConfigError("is required", field=f"{where}.{key}")
        model = _optional_str(raw["model"], f"{where}.model")
        if not model:
            raise ConfigError("must be a non-empty string", field=f"{where}.model")
        window = _int_at_least(raw["window_size"], 1, f"{where}.window_size")
        length = raw.get("max_length")
        if length is not None:
            length = _int_at_least(length, 1, f"{where}.max_length")
        fusion = raw.get("fusion")
        vector_field = _optional_str(raw.get("vector_field"), f"{where}.vector_field")
        if vector_field is not None and not vector_field.strip():
            raise ConfigError("must be a non-empty field name", field=f"{where}.vector_field")
        phases.append(
            PhaseConfig(
                model,
                window,
                None if fusion is None else FusionConfig.from_value(fusion, path=f"{where}.fusion"),
                length,
                vector_field,
            )
        )
    _check_phases(phases, path)
    return tuple(phases)


def _check_phases(phases: list[PhaseConfig], path: str) -> None:
    if len(phases) > MAX_PHASES:
        raise ConfigError(f"at most {MAX_PHASES} phases, got {len(phases)}", field=path)
    for i, phase in enumerate(phases):
        where = f"{path}[{i}].window_size"
        _int_at_least(phase.window_size, 1, where)
        if i and phase.window_size > phases[i - 1].window_size:
            raise ConfigError(
                f"{phase.window_size} exceeds the previous phase's window_size "
                f"{phases[i - 1].window_size}",
                field=where,
            )


@dataclass(frozen=True)
class RerankConfig:
    """One reranking request: which hits, which model, which text, how to fuse, how to fail.

    ``window_size`` hits from the top of the engine's order are reranked. The engine is asked for
    ``max(window_size, from + size)`` hits; a request needing more than ``max_window`` is refused.
    ``min_score`` applies to the model score (its scale is the model's, independent of the
    fusion method and of the other hits); with it, only reranked hits reaching it are returned.
    ``timeout_ms`` bounds passage building plus scoring; ``None`` means no limit.

    ``phases`` (phased reranking): each phase rescores the top ``window_size`` of the previous
    phase's order with its own model and fusion; the first phase's ``window_size`` is the
    window (``window_size`` follows it), one ``timeout_ms`` covers every phase, and a phase that
    fails or misses the budget leaves the previous phase's order. Empty: one model, ``model``.
    """

    window_size: int = 20
    max_window: int = 500
    model: str = DEFAULT_MODEL
    fields: tuple[str, ...] | None = None
    template: str | None = None
    query: str | None = None
    fusion: FusionConfig = field(default_factory=FusionConfig)
    max_length: int | None = None
    min_score: float | None = None
    timeout_ms: int | None = 1000
    on_failure: OnFailure = "original"
    explain: bool = False
    embedding_model: str = DEFAULT_EMBEDDING_MODEL
    chunking: ChunkingConfig | None = None
    phases: tuple[PhaseConfig, ...] = ()

    def __post_init__(self) -> None:
        if self.phases:
            phases = parse_phases(self.phases, path="phases")
            object.__setattr__(self, "phases", phases)
            object.__setattr__(self, "window_size", phases[0].window_size)
        _validate(self)

    def phase_list(self) -> tuple[PhaseConfig, ...]:
        """The phases to run: ``phases``, or the one phase ``model`` at ``window_size``."""
        if self.phases:
            return self.phases
        return (PhaseConfig(self.model, self.window_size),)

    @property
    def models(self) -> tuple[str, ...]:
        """Every rerank model this config may run, in phase order."""
        return tuple(dict.fromkeys(p.model for p in self.phase_list()))

    @property
    def vector_fields(self) -> tuple[str, ...]:
        """The stored vector fields the phases read (``vector_field``), each once."""
        return tuple(dict.fromkeys(p.vector_field for p in self.phases if p.vector_field))

    @classmethod
    def from_value(
        cls,
        value: bool | Mapping[str, Any] | RerankConfig | None,
        defaults: RerankConfig | Mapping[str, Any] | None = None,
    ) -> RerankConfig:
        """Resolve a user's ``rerank`` argument against ``defaults``.

        ``True`` or ``None`` gives the defaults; a dict overrides them field by field (``fusion``
        is replaced as a whole when given); a ``RerankConfig`` is used as it is.
        """
        base = _resolve_defaults(defaults)
        if value is None or value is True:
            return base
        if isinstance(value, RerankConfig):
            return value
        if value is False:
            raise ConfigError("rerank is disabled (false); nothing to configure", field="rerank")
        if not isinstance(value, Mapping):
            raise ConfigError(
                f"expected true, an object or a RerankConfig, got {type(value).__name__}",
                field="rerank",
            )
        return _merge(base, value, "rerank")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view (used in explain output and for logging)."""
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        out["fields"] = list(self.fields) if self.fields is not None else None
        out["fusion"] = self.fusion.to_dict()
        out["chunking"] = self.chunking.to_dict() if self.chunking is not None else None
        # None, not []: a section reads an empty list as a mistake, and to_dict must read back.
        out["phases"] = [p.to_dict() for p in self.phases] if self.phases else None
        return out


def _resolve_defaults(defaults: RerankConfig | Mapping[str, Any] | None) -> RerankConfig:
    if defaults is None:
        return RerankConfig()
    if isinstance(defaults, RerankConfig):
        return defaults
    if isinstance(defaults, Mapping):
        return _merge(RerankConfig(), defaults, "defaults")
    raise ConfigError(
        f"expected an object or a RerankConfig, got {type(defaults).__name__}", field="defaults"
    )


def _merge(base: RerankConfig, value: Mapping[str, Any], path: str) -> RerankConfig:
    _reject_unknown(value, RerankConfig, path)
    kwargs: dict[str, Any] = {}
    for name, raw in value.items():
        where = f"{path}.{name}"
        if name == "fusion":
            kwargs[name] = FusionConfig.from_value(raw, path=where)
        elif name == "fields":
            kwargs[name] = _fields(raw, where)
            # Fields given here win over a template inherited from the defaults, and vice versa.
            if "template" not in value:
                kwargs["template"] = None
        elif name == "template":
            kwargs[name] = _optional_str(raw, where)
            if "fields" not in value and raw is not None:
                kwargs["fields"] = None
        elif name in ("window_size", "max_window"):
            kwargs[name] = _int_at_least(raw, 1, where)
        elif name in ("max_length", "timeout_ms"):
            kwargs[name] = None if raw is None else _int_at_least(raw, 1, where)
        elif name == "min_score":
            kwargs[name] = None if raw is None else _finite_float(raw, where)
        elif name == "on_failure":
            _check_choice(raw, ON_FAILURE, where)
            kwargs[name] = raw
        elif name == "explain":
            kwargs[name] = _bool(raw, where)
        elif name in ("model", "embedding_model"):
            text = _optional_str(raw, where)
            if not text:
                raise ConfigError("must be a non-empty string", field=where)
            kwargs[name] = text
        elif name == "query":
            kwargs[name] = _optional_str(raw, where)
        elif name == "chunking":
            kwargs[name] = ChunkingConfig.from_value(raw, path=where)
        elif name == "phases":
            kwargs[name] = () if raw is None else parse_phases(raw, path=where)
    if "phases" in kwargs and kwargs["phases"] and "window_size" in kwargs:
        first = kwargs["phases"][0].window_size
        if kwargs["window_size"] != first:
            raise ConfigError(
                f"is the first phase's window_size ({first}) with phases; leave it out",
                field=f"{path}.window_size",
            )
    elif "phases" not in kwargs and base.phases and ("model" in kwargs or "window_size" in kwargs):
        kwargs["phases"] = ()  # a section naming one model replaces the defaults' phases
    try:
        return replace(base, **kwargs)
    except ConfigError as exc:
        if exc.field and not exc.field.startswith(path):
            raise ConfigError(exc.reason.split("] ", 1)[-1], field=f"{path}.{exc.field}") from None
        raise


def _validate(config: RerankConfig) -> None:
    # Direct construction gets the same checks as from_value; paths are relative field names.
    _int_at_least(config.window_size, 1, "window_size")
    _int_at_least(config.max_window, 1, "max_window")
    if config.window_size > config.max_window:
        raise ConfigError(
            f"window_size {config.window_size} exceeds max_window {config.max_window}",
            field="window_size",
        )
    if config.fields is not None and config.template is not None:
        raise ConfigError("give either fields or template, not both", field="template")
    if config.fields is not None and not config.fields:
        raise ConfigError("must list at least one field", field="fields")
    if config.template is not None and "{" not in config.template:
        raise ConfigError("a template must name at least one {field}", field="template")
    if not isinstance(config.fusion, FusionConfig):
        raise ConfigError("expected a FusionConfig", field="fusion")
    if config.chunking is not None and not isinstance(config.chunking, ChunkingConfig):
        raise ConfigError("expected a ChunkingConfig or None", field="chunking")
    _check_choice(config.on_failure, ON_FAILURE, "on_failure")
    if config.timeout_ms is not None:
        _int_at_least(config.timeout_ms, 1, "timeout_ms")
    if config.max_length is not None:
        _int_at_least(config.max_length, 1, "max_length")
    if config.phases and config.min_score is not None:
        raise ConfigError("is not supported with phases", field="min_score")
    if config.chunking is not None and config.vector_fields:
        raise ConfigError(
            "is not supported with a vector_field phase (a stored vector is one per document)",
            field="chunking",
        )


def _reject_unknown(value: Mapping[str, Any], cls: type, path: str) -> None:
    known = {f.name for f in fields(cls)}
    for key in value:
        if key not in known:
            raise ConfigError(
                f"unknown field; expected one of {sorted(known)}", field=f"{path}.{key}"
            )


def _check_choice(value: Any, choices: tuple[str, ...], where: str) -> None:
    if value not in choices:
        raise ConfigError(f"got {value!r}; expected one of {list(choices)}", field=where)


def _finite_float(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"expected a finite number, got {value!r}", field=where)
    return float(value)


def _int_at_least(value: Any, low: int, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"expected an integer >= {low}, got {value!r}", field=where)
    return value


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"expected true or false, got {value!r}", field=where)
    return value


def _optional_str(value: Any, where: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"expected a string, got {type(value).__name__}", field=where)
    return value


def _fields(value: Any, where: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError("expected a list of field names (dot paths)", field=where)
    if not value:
        raise ConfigError("must list at least one field", field=where)
    return tuple(value)


__all__ = [
    "MAX_PHASES",
    "ChunkingConfig",
    "FusionConfig",
    "PhaseConfig",
    "RerankConfig",
    "parse_phases",
]
