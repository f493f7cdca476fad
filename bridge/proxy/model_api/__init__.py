"""The standard model APIs on `rerank-bridge serve`, beside (or, without an upstream, instead of)
the proxy routes: what the engines' own rerank features and the usual client libraries call.

- Cohere rerank v1/v2 (`/v1/rerank`, `/v2/rerank`; Jina's `/v1/rerank` is the v1 shape):
  OpenSearch's ML Commons connector (`connector.pre_process.cohere.rerank`) and Elasticsearch's
  `custom` inference service post here.
- Hugging Face TEI (`/rerank`, `/embed`): Elasticsearch's `hugging_face` rerank service.
- OpenAI (`/v1/embeddings`).

One module per API shape, all over one `ModelService` that scores with the proxy's model pool
(its micro-batcher), checks limits and the optional bearer token.
"""

from __future__ import annotations

from starlette.routing import Route

from bridge.proxy.model_api import cohere, openai, tei
from bridge.proxy.model_api.service import ModelApiError, ModelService
from bridge.proxy.state import Proxy

MODEL_API_PATHS = frozenset({"/v1/rerank", "/v2/rerank", "/rerank", "/embed", "/v1/embeddings"})


def model_api_routes(proxy: Proxy) -> list[Route]:
    service = ModelService(proxy)
    return [*cohere.routes(service), *tei.routes(service), *openai.routes(service)]


__all__ = ["MODEL_API_PATHS", "ModelApiError", "ModelService", "model_api_routes"]
