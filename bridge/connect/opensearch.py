"""`connect opensearch`: an ML Commons remote model calling the bridge, and a search pipeline with
neural-search's `rerank` response processor over it.

Steps (each skipped when already done, so running it twice changes nothing):
1. connector (Cohere rerank blueprint, URL = the bridge's `/v1/rerank`), found by name;
2. remote model registered over it, found by name and connector id;
3. the model deployed (ML Commons reads `connector.private_ip_enabled` at this point);
4. `PUT _search/pipeline/<name>` with `rerank.ml_opensearch.model_id` and `document_fields`.
The names carry a digest of the connector, so another bridge URL or model gets its own.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

from bridge.connect.engine_http import EngineHttp
from bridge.errors import ConfigError, UpstreamError

DRY_CONNECTOR_ID = "<connector_id>"
DRY_MODEL_ID = "<model_id>"


@dataclass(frozen=True)
class OpenSearchPlan:
    bridge: str
    model: str
    pipeline: str = "rerank-bridge"
    fields: tuple[str, ...] = ("title",)
    token: str | None = None

    def __post_init__(self) -> None:
        if not self.bridge.startswith(("http://", "https://")):
            raise ConfigError("must be an http(s) URL", field="--bridge")
        if not self.fields:
            raise ConfigError("needs at least one field", field="--fields")

    def connector(self) -> dict[str, Any]:
        request_body = (
            '{ "documents": ${parameters.documents}, "query": "${parameters.query}", '
            '"top_n": ${parameters.top_n}, "model": "${parameters.model}" }'
        )
        body = {
            "description": f"rerank-bridge at {self.bridge} (Cohere rerank shape)",
            "version": "1",
            "protocol": "http",
            # ML Commons refuses a connector without a credential; the bridge ignores it unless
            # it was started with a model_api token
            "credential": {"api_key": self.token or "unused"},
            "parameters": {"model": self.model},
            "actions": [
                {
                    "action_type": "predict",
                    "method": "POST",
                    "url": f"{self.bridge.rstrip('/')}/v1/rerank",
                    "headers": {
                        "Authorization": "Bearer ${credential.api_key}",
                        "Content-Type": "application/json",
                    },
                    "request_body": request_body,
                    "pre_process_function": "connector.pre_process.cohere.rerank",
                    "post_process_function": "connector.post_process.cohere.rerank",
                }
            ],
        }
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:10]
        return {"name": f"rerank-bridge-{digest}", **body}

    def model_registration(self, connector_id: str) -> dict[str, Any]:
        return {
            "name": self.connector()["name"],
            "function_name": "remote",
            "description": f"rerank-bridge model {self.model} at {self.bridge}",
            "connector_id": connector_id,
        }

    def search_pipeline(self, model_id: str) -> dict[str, Any]:
        return {
            "description": f"rerank the hits with rerank-bridge ({self.model})",
            "response_processors": [
                {
                    "rerank": {
                        "ml_opensearch": {"model_id": model_id},
                        "context": {"document_fields": list(self.fields)},
                    }
                }
            ],
        }

    def example_search(self, index: str, query: str) -> dict[str, Any]:
        return {
            "method": "POST",
            "path": f"/{index}/_search?search_pipeline={self.pipeline}",
            "body": {
                "query": {"match": {self.fields[0]: query}},
                "ext": {"rerank": {"query_context": {"query_text": query}}},
            },
        }


@dataclass(frozen=True)
class OpenSearchSetup:
    connector_id: str
    model_id: str
    pipeline: str
    created: tuple[str, ...]


def connect_opensearch(
    engine: EngineHttp, plan: OpenSearchPlan, *, deploy_timeout_s: float = 120.0
) -> OpenSearchSetup:
    created: list[str] = []
    connector = plan.connector()
    connector_id = None if engine.dry_run else _find_connector(engine, connector["name"])
    if connector_id is None:
        answer = engine.ok("POST", "/_plugins/_ml/connectors/_create", connector)
        connector_id = answer["connector_id"] if answer else DRY_CONNECTOR_ID
        created.append("connector")
    model_id = None if engine.dry_run else _find_model(engine, connector["name"], connector_id)
    if model_id is None:
        answer = engine.ok(
            "POST", "/_plugins/_ml/models/_register", plan.model_registration(connector_id)
        )
        model_id = answer["model_id"] if answer else DRY_MODEL_ID
        created.append("model")
    if engine.dry_run or _model_state(engine, model_id) != "DEPLOYED":
        engine.ok("POST", f"/_plugins/_ml/models/{model_id}/_deploy")
        if not engine.dry_run:
            _wait_deployed(engine, model_id, deploy_timeout_s)
        created.append("deployment")
    pipeline = plan.search_pipeline(model_id)
    current = None if engine.dry_run else engine.call("GET", f"/_search/pipeline/{plan.pipeline}")
    if current is None or current.status != 200 or _pipeline_body(current.body, plan) != pipeline:
        engine.ok("PUT", f"/_search/pipeline/{plan.pipeline}", pipeline)
        created.append("pipeline")
    return OpenSearchSetup(connector_id, model_id, plan.pipeline, tuple(created))


def _hits(answer: Any) -> list[dict[str, Any]]:
    if not isinstance(answer, dict):
        return []
    hits = answer.get("hits", {}).get("hits", [])
    return [hit for hit in hits if isinstance(hit, dict)]


def _find_connector(engine: EngineHttp, name: str) -> str | None:
    query = {"query": {"term": {"name.keyword": name}}, "size": 1}
    answer = engine.call("POST", "/_plugins/_ml/connectors/_search", query)
    if answer.status != 200:  # no connector index yet
        return None
    hits = _hits(answer.body)
    return str(hits[0]["_id"]) if hits else None


def _find_model(engine: EngineHttp, name: str, connector_id: str) -> str | None:
    query = {
        "query": {
            "bool": {
                "filter": [
                    {"term": {"name.keyword": name}},
                    {"term": {"connector_id.keyword": connector_id}},
                ]
            }
        },
        "size": 1,
    }
    answer = engine.call("POST", "/_plugins/_ml/models/_search", query)
    if answer.status != 200:
        return None
    hits = _hits(answer.body)
    return str(hits[0]["_id"]) if hits else None


def _model_state(engine: EngineHttp, model_id: str) -> str | None:
    answer = engine.call("GET", f"/_plugins/_ml/models/{model_id}")
    if answer.status != 200 or not isinstance(answer.body, dict):
        return None
    state = answer.body.get("model_state")
    return str(state) if state else None


def _wait_deployed(engine: EngineHttp, model_id: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    state = None
    while time.monotonic() < deadline:
        state = _model_state(engine, model_id)
        if state == "DEPLOYED":
            return
        if state == "DEPLOY_FAILED":
            break
        time.sleep(0.5)
    raise UpstreamError(f"model {model_id} is {state or 'unknown'}, not DEPLOYED")


def _pipeline_body(answer: Any, plan: OpenSearchPlan) -> Any:
    """The stored pipeline as sent (GET wraps it in {name: body})."""
    if isinstance(answer, dict):
        return answer.get(plan.pipeline)
    return None
