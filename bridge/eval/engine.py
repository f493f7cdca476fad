"""Open the right Python client for an engine URL (Elasticsearch or OpenSearch)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any, Literal

from bridge.errors import EvalError, UpstreamError

EngineKind = Literal["elasticsearch", "opensearch"]


def detect_engine(url: str, timeout: float = 10.0) -> EngineKind:
    """Elasticsearch marks every response with `X-Elastic-Product`; OpenSearch says so in `GET /`.

    `GET /` is absent from Elasticsearch's integ-test zip, so the health endpoint is asked first.
    """
    base = url.rstrip("/")
    try:
        with urllib.request.urlopen(f"{base}/_cluster/health", timeout=timeout) as response:
            if response.headers.get("X-Elastic-Product") == "Elasticsearch":
                return "elasticsearch"
        with urllib.request.urlopen(f"{base}/", timeout=timeout) as response:
            info: dict[str, Any] = json.load(response)
    except urllib.error.HTTPError as exc:
        if exc.headers.get("X-Elastic-Product") == "Elasticsearch":
            return "elasticsearch"
        raise UpstreamError(f"engine at {base} answered HTTP {exc.code}") from None
    except (OSError, ValueError) as exc:
        raise UpstreamError(f"cannot reach an engine at {base}: {exc}") from None
    if info.get("version", {}).get("distribution") == "opensearch":
        return "opensearch"
    return "elasticsearch"


def connect(url: str, kind: EngineKind | None = None) -> tuple[Any, EngineKind]:
    """A client for `url`, and the engine kind (detected unless given)."""
    kind = kind or detect_engine(url)
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
