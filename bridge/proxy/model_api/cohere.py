"""Cohere's rerank API, v1 and v2 (Jina's `/v1/rerank` is the v1 shape).

Request: `query`, `documents` (strings; v1 also objects, ranked by `text` or by `rank_fields`),
`top_n`, `return_documents`, `model` (required in v2). Answer: `{"id", "results": [{"index",
"relevance_score", "document"?}], "meta"}`, best first; scores are JSON floats, which OpenSearch's
`connector.post_process.cohere.rerank` needs. Errors: `{"message": ...}` with a 4xx status.
"""

from __future__ import annotations

import uuid
from typing import Any

from starlette.responses import Response
from starlette.routing import Route

from bridge.proxy.model_api.service import ModelApiError, ModelService, json_response

_STATUS = {
    "invalid": 400,
    "empty": 400,
    "unauthorized": 401,
    "forbidden_model": 404,
    "too_large": 413,
    "unavailable": 503,
    "internal": 500,
}


def render_error(error: ModelApiError) -> Response:
    return json_response({"message": error.message}, _STATUS[error.problem])


def _document_text(service: ModelService, item: Any, index: int, rank_fields: list[str]) -> str:
    param = f"documents[{index}]"
    if isinstance(item, str):
        return service.text(item, param)
    if not isinstance(item, dict):
        raise ModelApiError("invalid", f"{param} must be a string or an object", param=param)
    if not rank_fields:
        if "text" not in item:
            raise ModelApiError("invalid", f"{param} has no `text` field", param=param)
        return service.text(item["text"], f"{param}.text")
    # Cohere joins the chosen fields as `name: value` lines
    lines = []
    for name in rank_fields:
        if name in item:
            lines.append(f"{name}: {service.text(item[name], f'{param}.{name}')}")
    text = "\n".join(lines)
    return service.text(text, param)


def _rank_fields(body: dict[str, Any]) -> list[str]:
    value = body.get("rank_fields") or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ModelApiError("invalid", "rank_fields must be a list of strings", param="rank_fields")
    return list(value)


class CohereRerank:
    def __init__(self, service: ModelService) -> None:
        self.service = service

    async def v1(self, body: dict[str, Any]) -> Response:
        return await self._rerank(body, version="1")

    async def v2(self, body: dict[str, Any]) -> Response:
        return await self._rerank(body, version="2")

    async def _rerank(self, body: dict[str, Any], *, version: str) -> Response:
        service = self.service
        model = service.model(body, required=version == "2")
        query = service.query(body)
        documents = body.get("documents")
        if not isinstance(documents, list):
            raise ModelApiError("invalid", "documents must be a list", param="documents")
        service.check_count(len(documents), "documents")
        fields = _rank_fields(body) if version == "1" else []
        if version == "2" and not all(isinstance(item, str) for item in documents):
            raise ModelApiError("invalid", "v2 documents must be strings", param="documents")
        texts = [_document_text(service, item, i, fields) for i, item in enumerate(documents)]
        top_n = service.top_n(body)
        return_documents = service.flag(body, "return_documents", False)
        ranked = await service.rerank(model, query, texts)
        results: list[dict[str, Any]] = []
        for item in ranked[:top_n]:
            result: dict[str, Any] = {"index": item.index, "relevance_score": item.score}
            if return_documents:
                original = documents[item.index]
                result["document"] = original if isinstance(original, dict) else {"text": original}
            results.append(result)
        meta = {"api_version": {"version": version}, "billed_units": {"search_units": 1}}
        return json_response({"id": str(uuid.uuid4()), "results": results, "meta": meta})


def routes(service: ModelService) -> list[Route]:
    api = CohereRerank(service)
    return [
        Route("/v1/rerank", service.endpoint(api.v1, render_error), methods=["POST"]),
        Route("/v2/rerank", service.endpoint(api.v2, render_error), methods=["POST"]),
    ]
