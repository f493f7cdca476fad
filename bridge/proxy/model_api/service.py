"""What every model route shares: reading the JSON body, checking fields, the bearer token, and
scoring through the proxy's own model pool (its micro-batcher for pairs, the scorer for embeddings).

Each API module (cohere, tei, openai) only maps its request fields onto `rerank` / `embed` and
renders results and `ModelApiError`s in its own shape; limits and validation live here once.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from starlette.requests import Request
from starlette.responses import Response

from bridge.config import DEFAULT_EMBEDDING_MODEL, DEFAULT_MODEL
from bridge.errors import BridgeError, ConfigError
from bridge.proxy.http_io import BodyTooLargeError
from bridge.proxy.state import Proxy

logger = logging.getLogger(__name__)

# what went wrong, independent of any API's vocabulary; each API maps it to its status and shape
Problem = Literal[
    "invalid", "empty", "unauthorized", "forbidden_model", "too_large", "unavailable", "internal"
]


class ModelApiError(Exception):
    """A request the model routes refuse (or, for `unavailable`, cannot serve right now)."""

    def __init__(self, problem: Problem, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.problem = problem
        self.message = message
        self.param = param


Render = Callable[[ModelApiError], Response]
Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class RankedText:
    index: int
    score: float


def json_response(value: Any, status: int = 200) -> Response:
    # allow_nan=False: a NaN score must fail loudly, never reach an engine as invalid JSON
    body = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return Response(body.encode(), status_code=status, media_type="application/json")


class ModelService:
    """The model routes' shared core over one proxy (its settings, model pool and body limit)."""

    def __init__(self, proxy: Proxy) -> None:
        settings = proxy.settings
        self.proxy = proxy
        self.limits = settings.model_api
        self.allowed_models = settings.allowed_models()
        self.token = (settings.model_api.token or settings.auth.api_key or "").encode()
        # the proxy's own max_length, so both doors use the same session and micro-batcher
        max_length = settings.rerank.get("max_length")
        self.max_length = max_length if isinstance(max_length, int) else None
        rerank_model = settings.rerank.get("model")
        self.default_model = str(settings.model_api.model or rerank_model or DEFAULT_MODEL)
        embedding = settings.rerank.get("embedding_model")
        self.default_embedding_model = str(
            settings.model_api.embedding_model or embedding or DEFAULT_EMBEDDING_MODEL
        )
        self.allowed_models = self.allowed_models | {
            self.default_model,
            self.default_embedding_model,
        }

    # -- HTTP ----------------------------------------------------------------------------------

    def endpoint(
        self, handle: Callable[[dict[str, Any]], Awaitable[Response]], render: Render
    ) -> Handler:
        """A route: token, bounded JSON body, then ``handle``; every refusal via ``render``."""

        async def route(request: Request) -> Response:
            try:
                self.check_token(request)
                return await handle(await self.read_object(request))
            except ModelApiError as exc:
                return render(exc)
            except Exception:  # a bug of ours: logged, answered in the API's shape all the same
                logger.exception("model route %s failed", request.url.path)
                return render(ModelApiError("internal", "internal error in rerank-bridge"))

        return route

    def check_token(self, request: Request) -> None:
        if not self.token:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        valid = hmac.compare_digest(given.strip().encode(), self.token)
        if scheme.lower() != "bearer" or not valid:
            raise ModelApiError("unauthorized", "missing or invalid bearer token")

    async def read_object(self, request: Request) -> dict[str, Any]:
        limit = self.proxy.settings.limits.max_body_bytes
        declared = self.proxy.declared_length(request)
        if declared is not None and declared > limit:
            raise ModelApiError("too_large", f"request body is larger than {limit} bytes")
        try:
            body = await self.proxy.read_body(request)
        except BodyTooLargeError:
            raise ModelApiError("too_large", f"request body is larger than {limit} bytes") from None
        try:
            value = json.loads(body)
        except (ValueError, RecursionError) as exc:
            raise ModelApiError("invalid", f"request body is not valid JSON: {exc}") from None
        if not isinstance(value, dict):
            raise ModelApiError("invalid", "request body must be a JSON object")
        return value

    # -- fields --------------------------------------------------------------------------------

    def text(self, value: Any, param: str) -> str:
        if not isinstance(value, str):
            raise ModelApiError("invalid", f"{param} must be a string", param=param)
        if len(value) > self.limits.max_text_chars:
            raise ModelApiError(
                "too_large",
                f"{param} is longer than {self.limits.max_text_chars} characters",
                param=param,
            )
        return value

    def query(self, body: dict[str, Any], param: str = "query") -> str:
        if param not in body:
            raise ModelApiError("invalid", f"{param} is required", param=param)
        query = self.text(body[param], param)
        if not query.strip():
            raise ModelApiError("invalid", f"{param} must not be empty", param=param)
        return query

    def texts(self, value: Any, param: str) -> list[str]:
        """A non-empty list of strings within the per-call and per-text limits."""
        if not isinstance(value, list):
            raise ModelApiError("invalid", f"{param} must be a list of strings", param=param)
        self.check_count(len(value), param)
        return [self.text(item, f"{param}[{i}]") for i, item in enumerate(value)]

    def inputs(self, body: dict[str, Any], param: str) -> list[str]:
        """Texts to embed: one string or a list of them (token-id lists are refused)."""
        value = body.get(param)
        if value is None:
            raise ModelApiError("invalid", f"{param} is required", param=param)
        if isinstance(value, str):
            return [self.text(value, param)]
        return self.texts(value, param)

    def check_count(self, count: int, param: str) -> None:
        if count == 0:
            raise ModelApiError("empty", f"{param} must not be empty", param=param)
        if count > self.limits.max_documents:
            raise ModelApiError(
                "too_large",
                f"{param} holds {count} items; at most {self.limits.max_documents} per call "
                "(model_api.max_documents)",
                param=param,
            )

    @staticmethod
    def flag(body: dict[str, Any], param: str, default: bool) -> bool:
        value = body.get(param, default)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise ModelApiError("invalid", f"{param} must be true or false", param=param)
        return value

    @staticmethod
    def top_n(body: dict[str, Any], param: str = "top_n") -> int | None:
        value = body.get(param)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ModelApiError("invalid", f"{param} must be an integer >= 1", param=param)
        return value

    def model(
        self, body: dict[str, Any], *, embedding: bool = False, required: bool = False
    ) -> str:
        value = body.get("model")
        if value is None:
            if required:
                raise ModelApiError("invalid", "model is required", param="model")
            return self.default_embedding_model if embedding else self.default_model
        if not isinstance(value, str):
            raise ModelApiError("invalid", "model must be a string", param="model")
        if value not in self.allowed_models:
            raise ModelApiError(
                "forbidden_model",
                f"model {value!r} is not served here (see scorer.allowed_models)",
                param="model",
            )
        return value

    # -- scoring -------------------------------------------------------------------------------

    async def rerank(
        self, model: str, query: str, documents: Sequence[str], *, raw: bool = False
    ) -> list[RankedText]:
        """Scores of every document, best first (ties keep input order): the proxy's batcher.

        ``raw``: a cross-encoder's logit instead of its probability (a bi-encoder's cosine is
        already its raw score).
        """
        try:
            batcher = await self.proxy.models.batcher(model, self.max_length)
            scores = await batcher.score([(query, document) for document in documents])
            scorer = await self.proxy.models.scorer(model, self.max_length)
            if raw and getattr(scorer, "kind", None) == "cross":
                scores = [logit(score) for score in scores]
        except ConfigError as exc:  # the scorer refused these inputs
            raise ModelApiError("invalid", exc.reason) from None
        except BridgeError as exc:
            raise ModelApiError("unavailable", f"model {model!r}: {exc.reason}") from None
        except Exception as exc:
            raise ModelApiError("unavailable", f"model {model!r} failed: {exc}") from None
        ranked = [RankedText(i, wire_float(score)) for i, score in enumerate(scores)]
        if any(not math.isfinite(item.score) for item in ranked):
            raise ModelApiError("unavailable", f"model {model!r} returned a non-finite score")
        ranked.sort(key=lambda item: -item.score)
        return ranked

    async def embed(self, model: str, texts: Sequence[str]) -> list[list[float]]:
        """Embeddings as the proxy computes kNN query vectors (the scorer, off the event loop)."""
        try:
            scorer = await self.proxy.models.scorer(model)
        except BridgeError as exc:
            raise ModelApiError("unavailable", f"model {model!r}: {exc.reason}") from None
        if getattr(scorer, "kind", None) != "bi":
            raise ModelApiError(
                "invalid", f"model {model!r} is a cross-encoder; embeddings need a bi-encoder"
            )
        try:
            vectors = await asyncio.to_thread(scorer.embed, list(texts))
        except BridgeError as exc:
            raise ModelApiError("unavailable", f"model {model!r}: {exc.reason}") from None
        return [[wire_float(value) for value in row] for row in vectors.tolist()]


def wire_float(value: float) -> float:
    """``value`` at 9 significant digits: every float32 round-trips, and the JSON number stays
    short. OpenSearch's connectors read answers with JsonPath over json-smart, which turns a
    number of more than 18 characters (`0.023071830044048162`) into a BigDecimal, and ML Commons
    then fails with a class-cast error (BigDecimal cannot be cast to Double)."""
    return float(f"{value:.9g}")


def logit(probability: float) -> float:
    """The raw score behind a sigmoid probability (TEI's `raw_scores`), finite at the ends."""
    p = min(max(probability, 1e-15), 1 - 1e-15)
    return math.log(p / (1 - p))
