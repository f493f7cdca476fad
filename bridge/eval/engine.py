"""Open the right Python client for an engine URL (Elasticsearch or OpenSearch)."""

from __future__ import annotations

from typing import Any

from bridge.connect.engine_http import EngineHttp, EngineKind, engine_kind
from bridge.errors import EvalError


def connect(url: str, kind: EngineKind | None = None) -> tuple[Any, EngineKind]:
    """A client for `url`, and the engine kind (detected unless given)."""
    kind = kind or engine_kind(EngineHttp(url, timeout_s=10.0))
    try:
        if kind == "opensearch":
            from opensearchpy import OpenSearch

            return OpenSearch(hosts=[url], timeout=60), kind
        from elasticsearch import Elasticsearch

        return Elasticsearch(url, request_timeout=60), kind
    except ImportError as exc:
        raise EvalError(
            f"the {kind} client is not installed: pip install 'rerank-bridge[{kind}]'"
        ) from exc
