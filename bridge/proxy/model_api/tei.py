"""Hugging Face text-embeddings-inference: `POST /rerank` and `POST /embed`.

`/rerank`: `{query, texts, raw_scores?, return_text?, truncate?, truncation_direction?}` ->
`[{"index", "score", "text"?}]`, best first. Elasticsearch's `hugging_face` rerank service posts
`documents` / `return_documents` / `top_n` to the same URL (its `HuggingFaceRerankRequestEntity`)
and reads only `index`, `score` and `text` (any other key fails its parser), so those names are
accepted too. `/embed`: `{inputs: str | [str], normalize?}` -> `[[float]]` (bi-encoders).
The model reads at most its max_length tokens: inputs are always truncated (`truncate` is
accepted either way), on the right. Errors: `{"error", "error_type"}`, TEI's shape and statuses.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response
from starlette.routing import Route

from bridge.proxy.model_api.service import ModelApiError, ModelService, json_response

# TEI's statuses: 413 for too many inputs, 422 for validation, 400 for an empty batch
_STATUS = {
    "invalid": (422, "Validation"),
    "empty": (400, "Empty"),
    "unauthorized": (401, "Unauthorized"),
    "forbidden_model": (422, "Validation"),
    "too_large": (413, "Validation"),
    "unavailable": (503, "Unhealthy"),
    "internal": (500, "Backend"),
}


def render_error(error: ModelApiError) -> Response:
    status, kind = _STATUS[error.problem]
    return json_response({"error": error.message, "error_type": kind}, status)


def _either(body: dict[str, Any], *names: str) -> tuple[str, Any]:
    """The first of ``names`` present in ``body`` (TEI's name first, then Elasticsearch's)."""
    for name in names:
        if name in body:
            return name, body[name]
    return names[0], None


class TeiRoutes:
    def __init__(self, service: ModelService) -> None:
        self.service = service

    async def rerank(self, body: dict[str, Any]) -> Response:
        service = self.service
        model = service.model(body)
        query = service.query(body)
        param, value = _either(body, "texts", "documents")
        if value is None:
            raise ModelApiError("invalid", "texts is required", param="texts")
        texts = service.texts(value, param)
        raw = service.flag(body, "raw_scores", False)
        return_text = service.flag(
            body, "return_text", service.flag(body, "return_documents", False)
        )
        service.flag(body, "truncate", True)
        direction = body.get("truncation_direction", "Right")
        if direction not in ("Right", "right"):
            raise ModelApiError(
                "invalid",
                "only truncation_direction Right is supported",
                param="truncation_direction",
            )
        top_n = service.top_n(body)
        ranked = await service.rerank(model, query, texts, raw=raw)
        results: list[dict[str, Any]] = []
        for item in ranked[:top_n]:
            result: dict[str, Any] = {"index": item.index, "score": item.score}
            if return_text:
                result["text"] = texts[item.index]
            results.append(result)
        return json_response(results)

    async def embed(self, body: dict[str, Any]) -> Response:
        service = self.service
        model = service.model(body, embedding=True)
        texts = service.inputs(body, "inputs")
        if not service.flag(body, "normalize", True):
            raise ModelApiError(
                "invalid", "normalize=false is not supported: embeddings are L2-normalised"
            )
        service.flag(body, "truncate", True)
        return json_response(await service.embed(model, texts))


def routes(service: ModelService) -> list[Route]:
    api = TeiRoutes(service)
    return [
        Route("/rerank", service.endpoint(api.rerank, render_error), methods=["POST"]),
        Route("/embed", service.endpoint(api.embed, render_error), methods=["POST"]),
    ]
