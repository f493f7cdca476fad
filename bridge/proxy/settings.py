"""Proxy settings: a YAML or TOML file -> frozen dataclasses, each value checked by field name.

```yaml
upstream: {url: "https://es:9200", ca_file: /certs/ca.pem, verify: true, timeout_s: 60}  # optional
model_api: {token: "...", max_documents: 1000, max_text_chars: 100000}   # /v1/rerank, /rerank, ...
# or several nodes of one cluster: upstream: {urls: ["https://es1:9200", "https://es2:9200"]}
limits: {max_body_bytes: 104857600, max_window: 200}
auth: {api_key: "..."}            # or env RERANK_BRIDGE_API_KEY; header X-Bridge-Api-Key
batching: {enabled: true, max_wait_ms: 2, max_batch_pairs: 256, max_batch_tokens: 65536,
           model_nice: 0}   # model_nice 0-19: model threads yield the cores to the event loop
scorer: {cache_size: 1000000, cache_bytes: 67108864, token_cache_bytes: 33554432,
         embedding_cache_bytes: 33554432, threads: null, cache_dir: null}   # 0 turns a cache off
rerank: {model: ms-marco-TinyBERT-L-2-v2, window_size: 20}     # defaults of the `rerank` section
indices:                                                         # per index (fnmatch patterns)
  "products*": {fields: [title, brand], model: ms-marco-MiniLM-L-12-v2}
  "shop-*": {rerank: always, ab: {share: 0.2, key: "header:X-User-Id"}}  # bridge.proxy.policy
reload: {watch_interval_s: 2}     # re-read this file when it changes (0: off); also on SIGHUP
```
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from bridge.config import MODEL_API_TOKEN_ENV
from bridge.errors import ConfigError
from bridge.proxy.policy import PolicyTable, split_entry

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

API_KEY_ENV = "RERANK_BRIDGE_API_KEY"
CONFIG_ENV = "RERANK_BRIDGE_PROXY_CONFIG"
UPSTREAM_ENV = "RERANK_BRIDGE_UPSTREAM"
MODELS_ENV = "RERANK_BRIDGE_SERVE_MODELS"
ENGINES = ("auto", "elasticsearch", "opensearch")


@dataclass(frozen=True)
class UpstreamSettings:
    url: str  # the first node; `urls` lists them all (one cluster, several nodes)
    urls: tuple[str, ...] = ()
    ca_file: str | None = None
    verify: bool = True
    timeout_s: float = 60.0
    connect_timeout_s: float = 5.0
    max_connections: int = 256
    # whose _source filtering rules restored answers follow; auto: told by X-Elastic-Product
    engine: str = "auto"
    # reads (and requests that never reached a node) go to another node this many more times
    max_retries: int = 3
    retry_backoff_s: float = 0.05  # equal-jitter backoff base between retries, doubling...
    max_retry_backoff_s: float = 1.0  # ...up to this
    dead_node_backoff_s: float = 1.0  # a failed node rests this long, doubling per failure...
    max_dead_node_backoff_s: float = 30.0  # ...up to this, then gets requests again

    def __post_init__(self) -> None:
        if not self.urls:
            object.__setattr__(self, "urls", (self.url,))


@dataclass(frozen=True)
class LimitSettings:
    max_body_bytes: int = 100 * 1024 * 1024
    max_window: int = 200
    # idle client connections stay open this long; clients such as elasticsearch-py keep pools
    # for minutes, and a short timeout races their reuse of a connection (reset mid-request)
    keep_alive_s: float = 75.0
    # on SIGTERM: serve this long with `Connection: close` and health 503 (clients and load
    # balancers move off), then stop accepting and give in-flight requests drain_s to finish
    drain_linger_s: float = 1.0
    drain_s: float = 30.0


@dataclass(frozen=True)
class AuthSettings:
    api_key: str | None = None
    header: str = "X-Bridge-Api-Key"

    def __repr__(self) -> str:  # never print the key
        return f"AuthSettings(api_key={'***' if self.api_key else None}, header={self.header!r})"


@dataclass(frozen=True)
class BatchingSettings:
    enabled: bool = True
    max_wait_ms: float = 2.0
    max_batch_pairs: int = 256
    max_batch_tokens: int = 65536
    max_concurrent_runs: int = 2
    # niceness added to the model threads (0-19): the event loop, which answers cached and
    # pass-through requests, then goes first when the cores are busy with model runs
    model_nice: int = 0


@dataclass(frozen=True)
class ScorerSettings:
    # at most this many cached scores; the bytes bound (64 MiB: about 150,000 product-title pairs)
    # binds first. 10,000 entries (the old default, 4.5 MiB) evicted a Zipf stream's scores long
    # before the bytes were used: 2,000 searches of 20 hits already need 17,000 entries.
    cache_size: int = 1_000_000
    # bytes each cache of a model may hold (scores, passage token ids, bi-encoder embeddings)
    cache_bytes: int = 64 * 1024 * 1024
    token_cache_bytes: int = 32 * 1024 * 1024
    embedding_cache_bytes: int = 32 * 1024 * 1024
    threads: int | None = None
    cache_dir: str | None = None
    # models clients may name in `rerank.model`; None: the configured ones plus FlashRank's names
    # (never an arbitrary local path from a request)
    allowed_models: tuple[str, ...] | None = None
    # models loaded at start-up (`serve --model`, repeatable); the first is the default
    # `rerank.model` when the settings name none
    models: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModelApiSettings:
    """The standard model routes (Cohere, Jina, TEI, OpenAI shapes): see bridge.proxy.model_api."""

    # `Authorization: Bearer <token>` required on the model routes; None: auth.api_key if set
    token: str | None = None
    max_documents: int = 1000  # documents (or inputs) per call; Cohere's own limit
    max_text_chars: int = 100_000  # per query/document; the model reads max_length tokens anyway
    model: str | None = None  # default rerank model; None: rerank.model, else the package default
    embedding_model: str | None = None  # default for /embed and /v1/embeddings

    def __repr__(self) -> str:  # never print the token
        token = "***" if self.token else None
        return (
            f"ModelApiSettings(token={token}, max_documents={self.max_documents}, "
            f"max_text_chars={self.max_text_chars}, model={self.model!r}, "
            f"embedding_model={self.embedding_model!r})"
        )


@dataclass(frozen=True)
class ReloadSettings:
    # how often the settings file is checked for changes (seconds; 0 = never, SIGHUP still works)
    watch_interval_s: float = 2.0


def _frozen(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class ProxySettings:
    # None: no engine behind the server; it serves the model routes only
    upstream: UpstreamSettings | None
    limits: LimitSettings = field(default_factory=LimitSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    batching: BatchingSettings = field(default_factory=BatchingSettings)
    scorer: ScorerSettings = field(default_factory=ScorerSettings)
    model_api: ModelApiSettings = field(default_factory=ModelApiSettings)
    # raw `rerank` section defaults and per-index overrides; validated by bridge.config on use
    rerank: Mapping[str, Any] = field(default_factory=lambda: _frozen({}))
    indices: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: _frozen({}))
    # per-index `rerank: always|on_request|never` and `ab` (taken out of `indices`)
    policies: PolicyTable = field(default_factory=PolicyTable)
    reload: ReloadSettings = field(default_factory=ReloadSettings)

    def rerank_defaults_for(self, index: str | None) -> dict[str, Any]:
        """Server defaults merged with the first per-index entry matching every named index."""
        merged = dict(self.rerank)
        if index:
            names = [name for name in index.split(",") if name]
            for pattern, overrides in self.indices.items():
                if names and all(fnmatch.fnmatchcase(name, pattern) for name in names):
                    merged.update(overrides)
                    break
        return merged

    def models(self) -> list[str]:
        """Every reranking model the configuration names."""
        names = [*self.scorer.models, self.rerank.get("model")]
        names += [o.get("model") for o in self.indices.values()]
        for section in [self.rerank, *self.indices.values()]:  # each phase's model too
            phases = section.get("phases")
            if isinstance(phases, list):
                names += [p.get("model") for p in phases if isinstance(p, Mapping)]
        return sorted({n for n in names if isinstance(n, str) and n})

    def startup_models(self) -> list[str]:
        """The models loaded at start-up: the configured ones, else the default model (which a
        search without `rerank.model` would use), so health says at once if it cannot load."""
        from bridge.config import DEFAULT_MODEL

        return self.models() or [DEFAULT_MODEL]

    def allowed_models(self) -> frozenset[str]:
        """Model names a request may ask for (`scorer.allowed_models`, else configured + known)."""
        if self.scorer.allowed_models is not None:
            return frozenset(self.scorer.allowed_models)
        from bridge.config import DEFAULT_EMBEDDING_MODEL, DEFAULT_MODEL
        from bridge.models import known_model_names

        sections = [self.rerank, *self.indices.values()]
        embedding = [s.get("embedding_model") for s in sections]
        configured = {n for n in [*self.models(), *embedding] if isinstance(n, str)}
        return frozenset(
            {*configured, *known_model_names(), DEFAULT_MODEL, DEFAULT_EMBEDDING_MODEL}
        )


def _section(raw: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = raw.get(name, {})
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError("must be a mapping", field=name)
    return dict(value)


def _build(cls: type[Any], values: Mapping[str, Any], prefix: str) -> Any:
    known = {f.name: f for f in dataclasses.fields(cls)}
    for key in values:
        if key not in known:
            raise ConfigError(
                f"unknown setting (known: {', '.join(sorted(known))})", field=f"{prefix}.{key}"
            )
    kwargs: dict[str, Any] = {}
    for name, value in values.items():
        kwargs[name] = _coerce(value, known[name].type, f"{prefix}.{name}")
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(str(exc), field=prefix) from exc


def _coerce(value: Any, annotation: Any, name: str) -> Any:
    text = str(annotation)
    optional = "None" in text
    if value is None:
        if optional:
            return None
        raise ConfigError("must not be null", field=name)
    if text.startswith("bool"):
        if not isinstance(value, bool):
            raise ConfigError("must be true or false", field=name)
        return value
    if text.startswith("int"):
        # a cache of 0 entries (or bytes) turns it off; 0 retries means none
        low = 0 if name.endswith(("cache_size", "cache_bytes", "max_retries", "nice")) else 1
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"must be an integer >= {low}", field=name)
        if name.endswith("nice") and value > 19:
            raise ConfigError("must be an integer from 0 to 19", field=name)
        return value
    if text.startswith("float"):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ConfigError("must be a non-negative number", field=name)
        return float(value)
    if text.startswith("tuple"):
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ConfigError("must be a list of strings", field=name)
        return tuple(value)
    if text.startswith("str"):
        if not isinstance(value, str):
            raise ConfigError("must be a string", field=name)
        return value
    return value


def _check_url(url: object, where: str = "upstream.url") -> str:
    if not isinstance(url, str):
        raise ConfigError("must be a string", field=where)
    parts = urlsplit(url)
    if parts.username is not None or parts.password is not None:
        # the proxy holds no engine credentials: clients send their own `Authorization`
        raise ConfigError(
            "must not carry credentials (clients send their own Authorization header)",
            field=where,
        )
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"must be an http(s) URL, got {url!r}", field=where)
    if parts.query or parts.fragment:
        raise ConfigError("must not carry a query or fragment", field=where)
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError as exc:
        raise ConfigError(f"bad port: {exc}", field=where) from None
    return url.rstrip("/")


def settings_from_mapping(
    raw: Mapping[str, Any],
    *,
    upstream: str | Sequence[str] | None = None,
    models: Sequence[str] = (),
) -> ProxySettings:
    """Validate a parsed config file (``upstream``, one URL or several, overrides its nodes;
    ``models`` join ``scorer.models``)."""
    known = {f.name for f in dataclasses.fields(ProxySettings)} - {"policies"}
    for key in raw:
        if key not in known:
            raise ConfigError(f"unknown section (known: {', '.join(sorted(known))})", field=key)
    upstream_settings = _upstream(raw, upstream)

    auth_values = _section(raw, "auth")
    if not auth_values.get("api_key") and os.environ.get(API_KEY_ENV):
        auth_values["api_key"] = os.environ[API_KEY_ENV]
    model_api_values = _section(raw, "model_api")
    if not model_api_values.get("token") and os.environ.get(MODEL_API_TOKEN_ENV):
        model_api_values["token"] = os.environ[MODEL_API_TOKEN_ENV]
    indices = _section(raw, "indices")
    policies = []
    for pattern, overrides in list(indices.items()):
        if not isinstance(overrides, Mapping):
            raise ConfigError("must be a mapping", field=f"indices.{pattern}")
        policy, indices[pattern] = split_entry(str(pattern), overrides)
        policies.append(policy)
    scorer_settings: ScorerSettings = _build(ScorerSettings, _section(raw, "scorer"), "scorer")
    if models:
        scorer_settings = dataclasses.replace(
            scorer_settings, models=tuple(dict.fromkeys([*scorer_settings.models, *models]))
        )
    rerank = _section(raw, "rerank")
    if scorer_settings.models and not rerank.get("model"):
        rerank["model"] = scorer_settings.models[0]
    settings = ProxySettings(
        upstream=upstream_settings,
        limits=_build(LimitSettings, _section(raw, "limits"), "limits"),
        auth=_build(AuthSettings, auth_values, "auth"),
        batching=_build(BatchingSettings, _section(raw, "batching"), "batching"),
        scorer=scorer_settings,
        model_api=_build(ModelApiSettings, model_api_values, "model_api"),
        rerank=_frozen(rerank),
        indices=_frozen({str(k): _frozen(v) for k, v in indices.items()}),
        policies=PolicyTable(tuple(policies)),
        reload=_build(ReloadSettings, _section(raw, "reload"), "reload"),
    )
    _check_rerank_defaults(settings)
    return settings


def _upstream(
    raw: Mapping[str, Any], override: str | Sequence[str] | None
) -> UpstreamSettings | None:
    """The engine behind the server, or None when neither the file nor ``override`` names one.

    One node (`url`) or several of one cluster (`urls`); ``override`` (``--upstream``, one URL
    or a list) replaces the file's nodes.
    """
    up = raw.get("upstream")
    values: dict[str, Any] = {"url": up} if isinstance(up, str) else _section(raw, "upstream")
    if override:
        values.pop("url", None)
        values["urls"] = [override] if isinstance(override, str) else list(override)
    urls = values.pop("urls", None)
    if urls is not None:
        if isinstance(urls, str) or not isinstance(urls, (list, tuple)) or not urls:
            raise ConfigError("must be a non-empty list of URLs", field="upstream.urls")
        if values.get("url"):
            raise ConfigError("give either upstream.url or upstream.urls", field="upstream.url")
        checked = [_check_url(u, f"upstream.urls[{i}]") for i, u in enumerate(urls)]
        if len(set(checked)) != len(checked):
            raise ConfigError("lists a node twice", field="upstream.urls")
        values["urls"] = tuple(checked)
        values["url"] = checked[0]
    elif values.get("url"):
        values["url"] = _check_url(values["url"])
    elif values:
        raise ConfigError("is required when upstream is configured", field="upstream.url")
    else:
        return None
    settings: UpstreamSettings = _build(UpstreamSettings, values, "upstream")
    if settings.engine not in ENGINES:
        raise ConfigError(f"must be one of {list(ENGINES)}", field="upstream.engine")
    if settings.ca_file and not Path(settings.ca_file).is_file():
        raise ConfigError("file not found", field="upstream.ca_file")
    return settings


def _check_rerank_defaults(settings: ProxySettings) -> None:
    """A bad `rerank`/`indices` value fails at start-up, not as a 400 on every request."""
    from bridge.config import RerankConfig

    base = {"max_window": settings.limits.max_window, **settings.rerank}
    sections = {"rerank": {}, **{f"indices.{p}": o for p, o in settings.indices.items()}}
    for where, overrides in sections.items():
        merged = {**base, **overrides}
        try:
            RerankConfig.from_value(True, merged)
        except ConfigError as exc:
            reason = exc.reason.replace("defaults.", "")
            if where != "rerank" and "unknown field" in reason:
                reason += "; or a policy key: rerank (always/on_request/never), ab"
            raise ConfigError(reason, field=where) from None


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Parse a YAML (.yaml/.yml) or TOML (.toml) file into a mapping."""
    location = Path(path)
    try:
        text = location.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {location}: {exc.strerror}") from exc
    suffix = location.suffix.lower()
    try:
        if suffix == ".toml":
            data: Any = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            raise ConfigError(f"config file must end in .yaml, .yml or .toml: {location}")
    except ConfigError:
        raise
    except Exception as exc:  # yaml.YAMLError / tomllib.TOMLDecodeError
        raise ConfigError(f"cannot parse config file {location}: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {location} must hold a mapping at the top level")
    return data


def load_settings(
    path: str | Path | None = None,
    *,
    upstream: str | Sequence[str] | None = None,
    models: Sequence[str] = (),
) -> ProxySettings:
    """Settings from an optional config file; ``upstream`` (``--upstream``, repeatable) wins and
    ``models`` (``--model``, repeatable) join ``scorer.models``."""
    raw = read_config_file(path) if path else {}
    return settings_from_mapping(raw, upstream=upstream, models=models)


def load_settings_from_env() -> ProxySettings:
    """Settings for uvicorn workers: file in RERANK_BRIDGE_PROXY_CONFIG, URLs in *_UPSTREAM,
    `--model` values in RERANK_BRIDGE_SERVE_MODELS (a JSON list)."""
    urls = [u for u in os.environ.get(UPSTREAM_ENV, "").split(",") if u]
    models = json.loads(os.environ.get(MODELS_ENV) or "[]")
    return load_settings(os.environ.get(CONFIG_ENV) or None, upstream=urls or None, models=models)
