"""OpenAI-style embeddings: `POST /v1/embeddings`.

`{input: str | [str], model?, encoding_format?: "float" | "base64", dimensions?}` ->
`{"object": "list", "data": [{"object": "embedding", "index", "embedding"}], "model", "usage"}`.
The official `openai` client asks for base64 by default (little-endian float32, as OpenAI sends).
Token-id inputs and `dimensions` other than the model's own are refused. Errors:
`{"error": {"message", "type", "param", "code"}}`.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
from starlette.responses import Response
from starlette.routing import Route

from bridge.proxy.model_api.service import ModelApiError, ModelService, json_response

_STATUS = {
    "invalid": (400, "invalid_request_error", None),
    "empty": (400, "invalid_request_error", None),
    "unauthorized": (401, "invalid_request_error", "invalid_api_key"),
    "forbidden_model": (404, "invalid_request_error", "model_not_found"),
    "too_large": (413, "invalid_request_error", None),
    "unavailable": (503, "server_error", None),
    "internal": (500, "server_error", None),
}


def render_error(error: ModelApiError) -> Response:
    status, kind, code = _STATUS[error.problem]
    payload = {"message": error.message, "type": kind, "param": error.param, "code": code}
    return json_response({"error": payload}, status)


class OpenAiEmbeddings:
    def __init__(self, service: ModelService) -> None:
        self.service = service

    async def embeddings(self, body: dict[str, Any]) -> Response:
        service = self.service
        model = service.model(body, embedding=True)
        texts = service.inputs(body, "input")
        encoding = body.get("encoding_format", "float") or "float"
        if encoding not in ("float", "base64"):
            raise ModelApiError(
                "invalid", "encoding_format must be float or base64", param="encoding_format"
            )
        vectors = await service.embed(model, texts)
        dimensions = body.get("dimensions")
        if dimensions is not None and (not vectors or dimensions != len(vectors[0])):
            raise ModelApiError(
                "invalid",
                f"dimensions must be the model's own ({len(vectors[0]) if vectors else 0})",
                param="dimensions",
            )
        data = [
            {"object": "embedding", "index": i, "embedding": _encode(vector, encoding)}
            for i, vector in enumerate(vectors)
        ]
        usage = {"prompt_tokens": 0, "total_tokens": 0}
        return json_response({"object": "list", "data": data, "model": model, "usage": usage})


def _encode(vector: list[float], encoding: str) -> Any:
    if encoding == "float":
        return vector
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")


def routes(service: ModelService) -> list[Route]:
    api = OpenAiEmbeddings(service)
    return [
        Route("/v1/embeddings", service.endpoint(api.embeddings, render_error), methods=["POST"]),
    ]
