"""`connect elasticsearch`: a `rerank` inference endpoint with the `custom` service calling the
bridge's Cohere-shaped `/v1/rerank`, for the `text_similarity_reranker` retriever.

The request template follows Elasticsearch's spec (`PutCustomRequest`): `${input}` (the documents),
`${query}`, `${top_n}` and secret/task parameters are substituted JSON-encoded, so they are not
quoted in the template; headers get them as plain strings. The answer is read with JSON paths.
Needs the `x-pack-inference` module and an Enterprise or trial licence on the cluster.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from bridge.connect.engine_http import EngineHttp
from bridge.errors import ConfigError


@dataclass(frozen=True)
class ElasticsearchPlan:
    bridge: str
    model: str
    inference_id: str = "rerank-bridge"
    field: str = "title"
    token: str | None = None

    def __post_init__(self) -> None:
        if not self.bridge.startswith(("http://", "https://")):
            raise ConfigError("must be an http(s) URL", field="--bridge")

    def endpoint(self) -> dict[str, Any]:
        request = {"documents": "${input}", "query": "${query}", "model": self.model}
        # placeholders go unquoted: Elasticsearch substitutes JSON values into the template
        template = json.dumps(request).replace('"${input}"', "${input}")
        template = template.replace('"${query}"', "${query}")
        return {
            "service": "custom",
            "service_settings": {
                "secret_parameters": {"api_key": self.token or "unused"},
                "url": f"{self.bridge.rstrip('/')}/v1/rerank",
                "headers": {
                    "Authorization": "Bearer ${api_key}",
                    "Content-Type": "application/json",
                },
                "request": template,
                "response": {
                    "json_parser": {
                        "reranked_index": "$.results[*].index",
                        "relevance_score": "$.results[*].relevance_score",
                    }
                },
            },
        }

    def hugging_face_endpoint(self) -> dict[str, Any]:
        """The alternative: the `hugging_face` rerank service against the TEI-shaped `/rerank`."""
        return {
            "service": "hugging_face",
            "service_settings": {
                "api_key": self.token or "unused",
                "url": f"{self.bridge.rstrip('/')}/rerank",
            },
        }

    def example_search(self, index: str, query: str) -> dict[str, Any]:
        return {
            "method": "POST",
            "path": f"/{index}/_search",
            "body": {
                "retriever": {
                    "text_similarity_reranker": {
                        "retriever": {"standard": {"query": {"match": {self.field: query}}}},
                        "field": self.field,
                        "inference_id": self.inference_id,
                        "inference_text": query,
                        "rank_window_size": 50,
                    }
                }
            },
        }


def connect_elasticsearch(engine: EngineHttp, plan: ElasticsearchPlan) -> tuple[str, ...]:
    """Create the endpoint unless one with the same id and settings exists (a changed one is
    replaced). Returns what was created or replaced."""
    path = f"/_inference/rerank/{plan.inference_id}"
    wanted = plan.endpoint()
    if not engine.dry_run:
        current = engine.call("GET", path)
        if current.status == 200 and _same(current.body, wanted):
            return ()
        if current.status == 200:
            engine.ok("DELETE", path)
            engine.ok("PUT", path, wanted)
            return ("replaced endpoint",)
    engine.ok("PUT", path, wanted)
    return ("endpoint",)


def _same(answer: Any, wanted: dict[str, Any]) -> bool:
    """Whether the stored endpoint has our URL and request (secrets are never returned)."""
    endpoints = answer.get("endpoints") if isinstance(answer, dict) else None
    if not endpoints:
        return False
    settings = endpoints[0].get("service_settings", {})
    ours = wanted["service_settings"]
    return bool(
        endpoints[0].get("service") == "custom"
        and settings.get("url") == ours["url"]
        and _request_text(settings.get("request")) == ours["request"]
    )


def _request_text(value: Any) -> Any:
    # Elasticsearch echoes the template either as the string or as {"content": string}
    if isinstance(value, dict):
        return value.get("content")
    return value
