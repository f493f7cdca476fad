"""The HTTP requests Elasticsearch's inference services send, rebuilt from Elasticsearch's source,
for testing the bridge's routes where no cluster with `x-pack-inference` can run (the integ-test
zip lacks the module and the feature needs an Enterprise/trial licence).

`custom` service (x-pack/plugin/inference/.../services/custom/request/CustomRequest.java and the
spec's PutCustomRequest): POST to `service_settings.url`; headers get `secret_parameters` and
`task_settings.parameters` substituted as plain strings; the `request` template gets them, and
`${input}` (the documents), `${query}`, `${top_n}`, `${return_documents}`, JSON-encoded; a
placeholder left unreplaced is an error. The answer is read with the `json_parser` paths.

`hugging_face` rerank (…/huggingface/request/rerank/HuggingFaceRerankRequest(Entity).java):
POST `{"documents", "query", "return_documents"?, "top_n"?}` with `Authorization: Bearer <key>`;
the answer must be an array of objects with only `index`, `score`/`relevance_score`, `text`/
`document` (HuggingFaceRerankResponseEntity throws on any other key).
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx

_PLACEHOLDER = re.compile(r"\$\{([^}]+)\}")


def _substitute(template: str, values: dict[str, str], where: str) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise ValueError(
                f"Found placeholder [${{{name}}}] in field [{where}] after replacement"
            )
        return values[name]

    return _PLACEHOLDER.sub(replace, template)


def custom_rerank_request(
    endpoint: dict[str, Any],
    query: str,
    documents: list[str],
    *,
    top_n: int | None = None,
    return_documents: bool | None = None,
) -> httpx.Request:
    settings = endpoint["service_settings"]
    secrets: dict[str, Any] = dict(settings.get("secret_parameters", {}))
    task: dict[str, Any] = dict(endpoint.get("task_settings", {}).get("parameters", {}))
    plain = {k: str(v) for k, v in {**secrets, **task}.items() if isinstance(v, str)}
    encoded = {k: json.dumps(v) for k, v in {**secrets, **task}.items()}
    encoded["input"] = json.dumps(documents)
    encoded["query"] = json.dumps(query)
    if top_n is not None:
        encoded["top_n"] = json.dumps(top_n)
    if return_documents is not None:
        encoded["return_documents"] = json.dumps(return_documents)
    url = _substitute(settings["url"], plain, "url")
    headers = {"Content-Type": "application/json; charset=UTF-8"}
    for name, value in settings.get("headers", {}).items():
        headers[name] = _substitute(value, plain, f"header.{name}")
    body = _substitute(settings["request"], encoded, "request")
    return httpx.Request("POST", url, headers=headers, content=body.encode())


def json_path(value: Any, path: str) -> list[Any]:
    """The `$.a.b[*].c` subset of JSONPath the rerank parser paths use."""
    if not path.startswith("$"):
        raise ValueError(path)
    current = [value]
    for step in re.findall(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[\*\]", path[1:]):
        if step:
            current = [item[step] for item in current]
        else:
            current = [element for item in current for element in item]
    return current


def parse_custom_rerank(endpoint: dict[str, Any], body: Any) -> list[tuple[int, float]]:
    parser = endpoint["service_settings"]["response"]["json_parser"]
    scores = json_path(body, parser["relevance_score"])
    indices = json_path(body, parser["reranked_index"]) if "reranked_index" in parser else None
    if indices is None:
        indices = list(range(len(scores)))
    if len(indices) != len(scores):
        raise ValueError("reranked_index and relevance_score paths differ in length")
    for index, score in zip(indices, scores, strict=True):
        if not isinstance(index, int) or not isinstance(score, (int, float)):
            raise ValueError(f"not an index/score pair: {index!r}, {score!r}")
    return [(int(i), float(s)) for i, s in zip(indices, scores, strict=True)]


def hugging_face_rerank_request(
    url: str,
    api_key: str,
    query: str,
    documents: list[str],
    *,
    top_n: int | None = None,
    return_documents: bool | None = None,
) -> httpx.Request:
    body: dict[str, Any] = {"documents": documents, "query": query}
    if return_documents is not None:
        body["return_documents"] = return_documents
    if top_n is not None:
        body["top_n"] = top_n
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {api_key}"}
    return httpx.Request("POST", url, headers=headers, content=json.dumps(body).encode())


def parse_hugging_face_rerank(body: Any) -> list[tuple[int, float, str | None]]:
    if not isinstance(body, list):
        raise ValueError("expected a JSON array")
    ranked = []
    for item in body:
        unknown = set(item) - {"index", "score", "relevance_score", "text", "document"}
        if unknown:
            raise ValueError(f"unknown fields {sorted(unknown)}")
        score = item.get("score", item.get("relevance_score"))
        ranked.append((int(item["index"]), float(score), item.get("text")))
    return sorted(ranked, key=lambda r: -r[1])
