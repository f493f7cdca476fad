"""Point an engine's own rerank feature at rerank-bridge's model routes.

- `connect_opensearch`: ML Commons connector + remote model + search pipeline (`rerank` processor).
- `connect_elasticsearch`: a `custom` rerank inference endpoint for `text_similarity_reranker`.
Both are idempotent and can print what they would send instead (dry run).
"""

from __future__ import annotations

from bridge.connect.elasticsearch import ElasticsearchPlan, connect_elasticsearch
from bridge.connect.engine_http import EngineHttp
from bridge.connect.opensearch import OpenSearchPlan, OpenSearchSetup, connect_opensearch

__all__ = [
    "ElasticsearchPlan",
    "EngineHttp",
    "OpenSearchPlan",
    "OpenSearchSetup",
    "connect_elasticsearch",
    "connect_opensearch",
]
