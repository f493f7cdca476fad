"""Rerank routes: `_search` and `_msearch`, doors of the sans-I/O rerank flow (bridge.pipeline).

A search is reranked when its body has a `rerank` section or the URL has `?rerank=true`; both are
stripped before the engine sees the request. A search with neither goes through byte for byte, as
on every other path, unless its index's policy says otherwise (bridge.proxy.policy: `always`,
`never`, A/B buckets; `always` reranks only searches the bridge can rerank honestly, the others
go through byte for byte). The flow does the work (plan, texts, fail-open scoring, fuse, answer);
this module reads HTTP, performs the flow's effects (embedding and the micro-batcher on the model
pool, the engine request on the upstream pool) and writes HTTP: `send`, `rerank`, `encode`.
`_msearch` drives one flow per search and sends their engine searches as one request.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from starlette.requests import Request
from starlette.responses import Response

from bridge.chunking import ChunkedScores, ChunkingConfig, aggregate
from bridge.config import RerankConfig
from bridge.errors import ConfigError, UpstreamError
from bridge.pipeline.answer import Outcome
from bridge.pipeline.flow import (
    CheckVectors,
    Embed,
    Flow,
    Score,
    Search,
    SearchRequest,
    arun_flow,
    rerank_flow,
)
from bridge.pipeline.plan import plan_search
from bridge.proxy.http_io import (
    BodyTooLargeError,
    RelayResponse,
    decode_body,
    may_name_rerank,
    rerank_headers,
)
from bridge.proxy.microbatch import MicroBatcher
from bridge.proxy.policy import Bucket, Intent, Resolution, decide
from bridge.proxy.state import Proxy
from bridge.proxy.upstream import UpstreamResponse, end_to_end
from bridge.vectors.checks import VectorChecks, Verdicts, mappings_of

RERANK_PARAM = "rerank"
_TRUE = ("", "true")
_FALSE = ("false",)
# headers that describe the client's body or encoding, which the proxy rewrites on rerank routes
_BODY_HEADERS = ("content-length", "content-encoding", "accept-encoding")
_ANSWER_DROP = ("content-length", "content-encoding")
# what the proxy's own GET of an index mapping (CheckVectors) does not forward
_DROP = (*_BODY_HEADERS, "content-type")
_GZIP_MIN_BYTES = 1024


def split_query(query: bytes) -> tuple[bytes, str | None]:
    """The query string without `rerank`, and the `rerank` value (None when absent)."""
    if b"rerank" not in query:
        return query, None
    value: str | None = None
    kept = []
    for name, item in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if name == RERANK_PARAM:
            value = item.lower()
        else:
            kept.append((name, item))
    if value is not None and value not in _TRUE + _FALSE:
        raise ConfigError(f"expected true or false, got {value!r}", field="rerank")
    return urlencode(kept).encode("latin-1"), value


class JsonBodyError(ConfigError):
    """The body is not the JSON the route needs (ES's own type for unparseable bodies)."""

    error_type = "parse_exception"


def parse_object(text: bytes, where: str) -> dict[str, Any]:
    try:
        value = json.loads(text) if text.strip() else {}
    except (ValueError, RecursionError) as exc:
        raise JsonBodyError(f"request body is not valid JSON: {exc}", field=where) from None
    if not isinstance(value, dict):
        raise JsonBodyError(f"expected a JSON object, got {type(value).__name__}", field=where)
    return value


def dump(value: Any) -> bytes:
    """Compact UTF-8 JSON; a lone surrogate (legal as a JSON escape, kept by both engines) stays
    the escape it came as, so the engine and the client get what they sent or stored."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    try:
        return text.encode()
    except UnicodeEncodeError:
        return json.dumps(value, separators=(",", ":")).encode()


@dataclass
class SubSearch:
    """One search to rerank: its flow (waiting for the engine's answer) and its config."""

    flow: Flow
    config: RerankConfig

    def search(self) -> Search:
        effect = self.flow.effect
        if not isinstance(effect, Search):
            raise RuntimeError(f"flow waits for {effect!r}, not for the engine search")
        return effect

    def outcome(self) -> Outcome:
        return self.flow.result.outcome if self.flow.result else Outcome(status="skipped")


class ModelDoor:
    """Performs the flows' model effects: embeddings and the per-model micro-batcher."""

    def __init__(self, proxy: Proxy) -> None:
        self.models = proxy.models
        self.proxy = proxy
        self._vector_checks: VectorChecks | None = None

    @property
    def vector_checks(self) -> VectorChecks:
        """Which model wrote an index's stored vectors: verdicts shared by every request."""
        if self._vector_checks is None:
            self._vector_checks = VectorChecks(cache_dir=self.proxy.settings.scorer.cache_dir)
        return self._vector_checks

    async def embed(self, effect: Embed) -> Any:
        scorer = await self.models.scorer(effect.model, effect.max_length)
        return await asyncio.to_thread(scorer.embed, list(effect.texts))

    async def score(self, effect: Score) -> list[float] | ChunkedScores:
        batcher = await self.models.batcher(effect.model, effect.max_length)
        if effect.chunking is not None:
            chunked = self.score_windows(batcher, effect, effect.chunking)
            return await asyncio.wait_for(chunked, effect.timeout_s)
        pairs = [(effect.query, passage) for passage in effect.passages]
        found = batcher.lookup(pairs)
        if all(value is not None for value in found):  # all cached: no task, no timer, no hop
            return [float(value) for value in found if value is not None]
        return await asyncio.wait_for(batcher.score_missing(pairs, found), effect.timeout_s)

    async def score_windows(
        self, batcher: MicroBatcher, effect: Score, chunking: ChunkingConfig
    ) -> ChunkedScores:
        """Windows cut by the model's tokenizer (off the loop), scored as pairs through the
        micro-batcher (its score cache keys each window's own text), aggregated per passage."""
        scorer = await self.models.scorer(effect.model, effect.max_length)
        found = await asyncio.to_thread(scorer.windows, effect.query, effect.passages, chunking)
        scores = await batcher.score([(effect.query, w.text) for w in found.windows])
        return aggregate(found.windows, scores, found.totals, chunking.aggregate)


class RequestDoor:
    """One request's door: the shared ``ModelDoor`` for model effects, plus ``CheckVectors``,
    which reads index mappings upstream with the caller's own credentials (verdicts cached on
    the shared door)."""

    def __init__(self, models: ModelDoor, proxy: Proxy, headers: Any) -> None:
        self.models = models
        self.proxy = proxy
        self.headers = headers

    async def embed(self, effect: Embed) -> Any:
        return await self.models.embed(effect)

    async def score(self, effect: Score) -> list[float] | ChunkedScores:
        return await self.models.score(effect)

    async def check_vectors(self, effect: CheckVectors) -> Verdicts:
        return await self.models.vector_checks.acheck(effect, self.read_mappings, asyncio.to_thread)

    async def read_mappings(self, indices: Sequence[str]) -> Mapping[str, Any]:
        path = "/" + ",".join(quote(i, safe="") for i in indices) + "/_mapping"
        answer = await self.proxy.upstream.send(
            "GET", path.encode(), b"", self.headers, None, stream=False
        )
        if answer.status_code != 200:
            raise UpstreamError(f"GET {path} answered {answer.status_code}")
        return mappings_of(json.loads(answer.content))


class SearchRoutes:
    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.door = ModelDoor(proxy)

    @property
    def allowed_models(self) -> frozenset[str]:
        return self.proxy.allowed_models  # follows settings reloads

    # -- configuration -------------------------------------------------------------------------

    def config_for(self, section: Any, index: str | None) -> RerankConfig:
        limits = self.proxy.settings.limits
        defaults = {
            "max_window": limits.max_window,
            **self.proxy.settings.rerank_defaults_for(index),
        }
        config = RerankConfig.from_value(True if section is None else section, defaults)
        # each max_length is its own model session: requests must not multiply them
        lengths = [("max_length", config.max_length)] + [
            (f"phases[{i}].max_length", phase.max_length)
            for i, phase in enumerate(config.phases)
            if phase.max_length is not None
        ]
        for name, length in lengths:
            if length != defaults.get("max_length"):
                raise ConfigError(
                    "is fixed by the proxy configuration (rerank.max_length in its settings)",
                    field=f"rerank.{name}",
                )
        if config.max_window > limits.max_window:  # a client may lower the limit, never raise it
            config = replace(config, max_window=limits.max_window)
        allowed = self.allowed_models
        named = [(f"phases[{i}].model", phase.model) for i, phase in enumerate(config.phases)]
        if not config.phases:  # with phases, `model` is not used
            named.append(("model", config.model))
        named.append(("embedding_model", config.embedding_model))
        for name, model in named:
            if model not in allowed:
                raise ConfigError(
                    f"model {model!r} is not served by this proxy (see scorer.allowed_models)",
                    field=f"rerank.{name}",
                )
        return config

    def open_flow(
        self,
        payload: dict[str, Any],
        section: Any,
        config: RerankConfig,
        params: dict[str, Any],
    ) -> SubSearch:
        """A flow for one search, planned (planning errors raise here)."""
        request = SearchRequest(payload, config, params, engine=self.proxy.engine, section=section)
        return SubSearch(Flow(rerank_flow(request)), config)

    async def until_search(self, sub: SubSearch) -> Search:
        """Run a flow up to its engine search (kNN query texts embedded on the way)."""
        await arun_flow(sub.flow, self.door, until=Search)
        return sub.search()

    def record(self, sub: SubSearch) -> str:
        outcome = sub.outcome()
        model = ",".join(sub.config.models)
        # no hits is not a failure: the (empty) answer is exactly what a rerank would give
        status = "reranked" if outcome.reranked or outcome.status == "empty" else "skipped"
        metrics = self.proxy.metrics
        metrics.reranks.labels(status, model).inc()
        if status == "skipped":
            metrics.skipped.labels(outcome.status).inc()
        if "total" in outcome.timings_ms:
            metrics.rerank_seconds.labels(model).observe(outcome.timings_ms["total"] / 1000)
        return status

    # -- HTTP ----------------------------------------------------------------------------------

    async def search(self, request: Request) -> Response:
        started = time.perf_counter()
        index = request.path_params.get("index")
        resolution = self.proxy.settings.policies.resolve(index)
        bucket = self.bucket(request, resolution, {})
        response = await self.search_one(request, index, resolution, bucket, started)
        return self.tag(response, [(resolution, bucket)], started)

    async def search_one(
        self,
        request: Request,
        index: str | None,
        resolution: Resolution,
        bucket: Bucket | None,
        started: float,
    ) -> Response:
        raw, body, query, flag = await self.read(request)
        implicit = resolution.mode == "always" and bucket != "control"
        if flag is None and not may_name_rerank(body) and not implicit:
            return await self.forward_raw(request, raw)
        try:
            payload = parse_object(body, "body")
        except JsonBodyError:
            if flag is None:  # not ours to judge: the engine answers with its own error
                return await self.forward_raw(request, raw)
            raise
        section = payload.pop(RERANK_PARAM, None)
        intent = _intent(flag, section)
        action = decide(resolution.mode, bucket, intent)
        if action == "untouched":
            return await self.forward_raw(request, raw)
        if action == "strip":
            engine = await self.send(request, query, dump(payload) if payload else b"")
            return self.encode(request, engine, engine.content, "passthrough", "none", started)
        params = dict(parse_qsl(query.decode("latin-1"), keep_blank_values=True))
        if intent == "silent":  # `always`: only what can be reranked honestly
            silent_config = self.implicit_config(payload, index, params)
            if silent_config is None:
                return await self.forward_raw(request, raw)
            config = silent_config
        else:
            config = self.config_for(section, index)
        sub = self.open_flow(payload, section, config, params)
        search = await self.until_search(sub)
        engine_query = urlencode(search.params).encode("latin-1")
        engine = await self.send(request, engine_query, dump(search.body))
        return await self.rerank(request, engine, [sub], started)

    def implicit_config(
        self, payload: dict[str, Any], index: str | None, params: Mapping[str, Any]
    ) -> RerankConfig | None:
        """The config for a search nobody asked to rerank, or None when it cannot be reranked
        honestly (sort, scroll, search_after, PIT, size 0, no query text)."""
        try:
            config = self.config_for(None, index)
            plan = plan_search(payload, config, params, engine=self.proxy.engine)
        except ConfigError:
            return None
        return config if plan.status == "rerank" else None

    def bucket(
        self, request: Request, resolution: Resolution, drawn: dict[int, Bucket]
    ) -> Bucket | None:
        """The request's A/B bucket under ``resolution`` (one draw per split and request)."""
        entry = resolution.entry
        if entry is None or entry.ab is None:
            return None
        if id(entry.ab) not in drawn:
            key = entry.ab.key_of(request.headers)
            drawn[id(entry.ab)] = entry.ab.bucket(key)
        return drawn[id(entry.ab)]

    def tag(
        self,
        response: Response,
        buckets: Sequence[tuple[Resolution, Bucket | None]],
        started: float,
    ) -> Response:
        """`X-Rerank-Bucket` on the answer and the per-bucket metrics."""
        seen = [(r, b) for r, b in buckets if b is not None and r.entry is not None]
        if not seen:
            return response
        names = list(dict.fromkeys(b for _, b in seen))
        response.raw_headers.append((b"x-rerank-bucket", ",".join(names).encode()))
        status = next(
            (v.decode() for n, v in response.raw_headers if n.lower() == b"x-rerank-status"),
            "skipped",
        )
        metrics, took = self.proxy.metrics, time.perf_counter() - started
        for resolution, bucket in seen:
            metrics.ab_searches.labels(resolution.label, bucket, status).inc()
        for pattern, bucket in dict.fromkeys((r.label, b) for r, b in seen):
            metrics.ab_request_seconds.labels(pattern, bucket).observe(took)
        return response

    async def msearch(self, request: Request) -> Response:
        started = time.perf_counter()
        raw, body, query, flag = await self.read(request)
        implicit = self.proxy.settings.policies.any_implicit
        if flag is None and not may_name_rerank(body) and not implicit:
            return await self.forward_raw(request, raw)
        buckets: list[tuple[Resolution, Bucket | None]] = []
        try:
            response = await self.msearch_parsed(request, body, query, flag, started, buckets)
        except JsonBodyError:
            if flag is None:  # not ours to judge: the engine answers with its own error
                return await self.forward_raw(request, raw)
            raise
        return self.tag(response, buckets, started)

    async def msearch_parsed(
        self,
        request: Request,
        body: bytes,
        query: bytes,
        flag: str | None,
        started: float,
        buckets: list[tuple[Resolution, Bucket | None]],
    ) -> Response:
        lines = [line for line in body.split(b"\n") if line.strip()]
        if len(lines) % 2:
            raise ConfigError("expected header and body lines in pairs", field="body")
        url_index = request.path_params.get("index")
        policies = self.proxy.settings.policies
        drawn: dict[int, Bucket] = {}
        out: list[bytes] = []
        subs: list[SubSearch | None] = []
        for i in range(0, len(lines), 2):
            where = f"searches[{i // 2}]"
            header = parse_object(lines[i], f"{where}.header")
            payload = parse_object(lines[i + 1], f"{where}.body")
            section = payload.pop(RERANK_PARAM, None)
            index = header.get("index", url_index)
            if isinstance(index, list):
                index = ",".join(str(name) for name in index)
            index = index if isinstance(index, str) else url_index
            resolution = policies.resolve(index)
            bucket = self.bucket(request, resolution, drawn)
            buckets.append((resolution, bucket))
            intent = _intent(flag, section)
            action = decide(resolution.mode, bucket, intent)
            if action != "rerank":
                kept = lines[i + 1] if action == "untouched" or section is None else dump(payload)
                out += [lines[i], kept]
                subs.append(None)
                continue
            try:
                if intent == "silent":
                    implicit = self.implicit_config(payload, index, {})
                    if implicit is None:
                        out += [lines[i], lines[i + 1]]
                        subs.append(None)
                        continue
                    config = implicit
                else:
                    config = self.config_for(section, index)
                sub = self.open_flow(payload, section, config, {})
            except ConfigError as exc:
                raise type(exc)(exc.reason, field=where) from None
            out += [lines[i], dump((await self.until_search(sub)).body)]
            subs.append(sub)
        engine = await self.send(request, query, b"\n".join(out) + b"\n", multi=True)
        return await self.rerank(request, engine, subs, started, multi=True)

    async def read(self, request: Request) -> tuple[bytes, bytes, bytes, str | None]:
        """Raw body, decoded body, query string without `rerank`, and the `rerank` flag."""
        limit = self.proxy.settings.limits.max_body_bytes
        length = self.proxy.declared_length(request)
        if length is not None and length > limit:
            raise BodyTooLargeError
        raw = await self.proxy.read_body(request)
        body = decode_body(raw, request.headers.get("content-encoding"), limit)
        query, flag = split_query(request.scope.get("query_string", b""))
        return raw, body, query, flag

    async def forward_raw(self, request: Request, raw: bytes) -> Response:
        """No rerank asked: the client's exact bytes and headers, the engine's exact answer."""
        answer = await self.proxy.upstream.send(
            request.method,
            request.scope.get("raw_path") or request.scope["path"].encode(),
            request.scope.get("query_string", b""),
            self.proxy.forward_headers(request),
            raw or None,
            stream=True,
        )
        response = RelayResponse(answer)
        response.raw_headers += rerank_headers("passthrough", "none", 0.0)
        return response

    async def send(
        self, request: Request, query: bytes, content: bytes, *, multi: bool = False
    ) -> UpstreamResponse:
        """The body the proxy wrote, to the engine; the engine's whole answer back."""
        headers = self.proxy.forward_headers(request, drop=_BODY_HEADERS)
        return await self.proxy.upstream.send(
            request.method,
            request.scope.get("raw_path") or request.scope["path"].encode(),
            query,
            _with_content_type(headers, multi=multi),
            content or None,
            stream=False,
        )

    async def rerank(
        self,
        request: Request,
        engine: UpstreamResponse,
        subs: Sequence[SubSearch | None],
        started: float,
        *,
        multi: bool = False,
    ) -> Response:
        """Hand each search its engine answer, finish the flows together, encode the result."""
        active = [sub for sub in subs if sub is not None]
        if not active:
            return self.encode(request, engine, engine.content, "passthrough", "none", started)
        models = ",".join(sorted({model for sub in active for model in sub.config.models}))
        if engine.status_code == 200:
            self.proxy.note_engine(engine.headers)
        engine_json = _json_or_none(engine)
        answers = _answers_of(engine_json, len(subs), multi=multi)
        if engine.status_code != 200 or engine_json is None:
            for sub in active:
                self.record(sub)
        if engine.status_code != 200 or answers is None:
            return self.encode(request, engine, engine.content, "skipped", models, started)
        ready = [(i, sub) for i, sub in enumerate(subs) if sub is not None and _is_ok(answers[i])]
        for i, sub in ready:
            sub.flow.send(answers[i])
        door = RequestDoor(self.door, self.proxy, self.proxy.forward_headers(request, drop=_DROP))
        await asyncio.gather(*(arun_flow(sub.flow, door) for _, sub in ready))
        for i, sub in ready:
            answers[i] = sub.flow.done().answer
        statuses = {self.record(sub) for sub in active}
        status = "reranked" if statuses == {"reranked"} else "skipped"
        content = dump(engine_json if multi else answers[0])
        return self.encode(request, engine, content, status, models, started)

    def encode(
        self,
        request: Request,
        engine: UpstreamResponse,
        content: bytes,
        status: str,
        models: str,
        started: float,
    ) -> Response:
        """The HTTP answer: the engine's status and headers, gzip when asked, X-Rerank-*."""
        headers = end_to_end(engine.headers, drop=_ANSWER_DROP)
        gzip_ok = accepts_gzip(request.headers.get("accept-encoding", ""))
        if gzip_ok and len(content) >= _GZIP_MIN_BYTES:
            # the engine answered the proxy uncompressed; the client asked for gzip, so it gets it
            content = gzip.compress(content, compresslevel=1)
            headers += [(b"content-encoding", b"gzip"), (b"vary", b"Accept-Encoding")]
        response = Response(content, status_code=engine.status_code)
        took = (time.perf_counter() - started) * 1000
        response.raw_headers = [
            *headers,
            (b"content-length", str(len(content)).encode()),
            *rerank_headers(status, models, took),
        ]
        return response


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an `Accept-Encoding` value allows gzip (``gzip;q=0`` forbids it)."""
    for item in accept_encoding.lower().split(","):
        name, _, params = item.strip().partition(";")
        if name.strip() in ("gzip", "*"):
            quality = params.strip().removeprefix("q=").strip() if params else "1"
            try:
                return float(quality) > 0
            except ValueError:
                return False
    return False


def _with_content_type(
    headers: list[tuple[bytes, bytes]], *, multi: bool
) -> list[tuple[bytes, bytes]]:
    """A body the proxy wrote needs a Content-Type the engine accepts, matching `Accept`."""
    if any(name.lower() == b"content-type" for name, _ in headers):
        return headers
    accept = next((v for n, v in headers if n.lower() == b"accept"), b"")
    if b"vnd.elasticsearch+json" in accept:
        kind = accept.replace(b"+json", b"+x-ndjson") if multi else accept
    else:
        kind = b"application/x-ndjson" if multi else b"application/json"
    return [*headers, (b"content-type", kind)]


def _json_or_none(response: UpstreamResponse) -> dict[str, Any] | None:
    try:
        value = json.loads(response.content)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _intent(flag: str | None, section: Any) -> Intent:
    """Whether the client asked for a rerank (section or ?rerank=true), declined it, or neither."""
    if flag in _FALSE or section is False:
        return "declined"
    if section is not None or flag in _TRUE:
        return "asked"
    return "silent"


def _answers_of(engine_json: dict[str, Any] | None, count: int, *, multi: bool) -> list[Any] | None:
    """Each search's engine answer (None when the engine's answer is not the expected shape)."""
    if engine_json is None:
        return None
    if not multi:
        return [engine_json]
    responses = engine_json.get("responses")
    return responses if isinstance(responses, list) and len(responses) == count else None


def _is_ok(response: Any) -> bool:
    return (
        isinstance(response, dict)
        and response.get("status", 200) == 200
        and "error" not in response
    )


__all__ = ["SearchRoutes", "split_query"]
