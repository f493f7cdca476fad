"""Elasticsearch-shaped errors: `{"error": {"root_cause": [...], "type", "reason"}, "status"}`.

Clients (elasticsearch-py, opensearch-py, Kibana) parse this shape, so every error the proxy itself
produces uses it, whatever its cause.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from starlette.responses import Response

from bridge.errors import BridgeError


def error_body(status: int, error_type: str, reason: str) -> dict[str, object]:
    cause = {"type": error_type, "reason": reason}
    return {"error": {"root_cause": [cause], **cause}, "status": status}


def error_response(
    status: int,
    error_type: str,
    reason: str,
    *,
    headers: Mapping[str, str] | None = None,
) -> Response:
    payload = json.dumps(error_body(status, error_type, reason)).encode()
    return Response(payload, status_code=status, media_type="application/json", headers=headers)


def response_for(exc: BridgeError, *, headers: Mapping[str, str] | None = None) -> Response:
    """Map a typed error to its status and ES error type; field names stay in the reason."""
    return error_response(exc.status, exc.error_type, exc.reason, headers=headers)


def payload_too_large(limit: int) -> Response:
    return error_response(
        413,
        "content_too_long_exception",
        f"request body is larger than the limit of [{limit}] bytes (limits.max_body_bytes)",
    )


def unauthorized(header: str) -> Response:
    return error_response(
        401,
        "security_exception",
        f"missing or invalid API key for the rerank proxy (header [{header}])",
        headers={"WWW-Authenticate": 'ApiKey realm="rerank-bridge"'},
    )
