"""The few JSON calls `connect` and `embed` make to an engine (stdlib only), or prints them with
--dry-run; and which engine a URL is (``engine_kind``)."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TextIO
from urllib.parse import urlsplit, urlunsplit

from bridge.errors import UpstreamError

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))

EngineKind = Literal["elasticsearch", "opensearch"]


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any
    headers: Mapping[str, str] = field(default_factory=dict)  # names in lower case


@dataclass
class EngineHttp:
    """``call(method, path, body)`` against ``url``; in dry-run mode it prints instead of sending.

    Credentials in the URL (``http://user:pass@host:9200``) become a Basic header.
    """

    url: str
    dry_run: bool = False
    out: TextIO | None = None
    timeout_s: float = 60.0
    sent: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        self._auth: str | None = None
        if parts.username:
            token = f"{parts.username}:{parts.password or ''}".encode()
            self._auth = "Basic " + base64.b64encode(token).decode()
            netloc = parts.hostname or ""
            if parts.port:
                netloc += f":{parts.port}"
            parts = parts._replace(netloc=netloc)
        self.base = urlunsplit(parts).rstrip("/")

    def call(self, method: str, path: str, body: Any = None) -> Answer:
        """Send one request (in dry-run mode: print it and answer status 0)."""
        record = {"method": method, "path": path, **({"body": body} if body is not None else {})}
        if self.dry_run:
            self.sent.append(record)
            if self.out is not None:
                self.out.write(json.dumps(record, indent=2) + "\n")
            return Answer(0, None)
        data = json.dumps(body).encode() if body is not None else None
        return self._send(method, path, data, "application/json")

    def call_ndjson(self, path: str, lines: list[Any]) -> Answer:
        """POST one JSON value per line (``_bulk``); never in dry-run mode."""
        data = "".join(json.dumps(line) + "\n" for line in lines).encode()
        return self._send("POST", path, data, "application/x-ndjson")

    def _send(self, method: str, path: str, data: bytes | None, content_type: str) -> Answer:
        request = urllib.request.Request(f"{self.base}{path}", data=data, method=method)
        request.add_header("Content-Type", content_type)
        if self._auth:
            request.add_header("Authorization", self._auth)
        try:
            with _NO_PROXY.open(request, timeout=self.timeout_s) as response:
                return Answer(response.status, _json(response.read()), _lower(response.headers))
        except urllib.error.HTTPError as exc:
            return Answer(exc.code, _json(exc.read()), _lower(exc.headers))
        except (urllib.error.URLError, OSError) as exc:
            raise UpstreamError(f"{method} {self.base}{path}: {exc}") from None

    def ok(self, method: str, path: str, body: Any = None) -> Any:
        """Like ``call`` but any non-2xx answer is an error naming the engine's reason."""
        answer = self.call(method, path, body)
        return None if self.dry_run else checked(answer, f"{method} {path}")


def checked(answer: Answer, doing: str) -> Any:
    """``answer``'s body; a non-2xx answer is an ``UpstreamError`` (one line) naming what was
    being done and the engine's reason."""
    if 200 <= answer.status < 300:
        return answer.body
    reason = answer.body
    if isinstance(reason, Mapping) and isinstance(reason.get("error"), Mapping):
        error = reason["error"]
        reason = f"{error.get('type')}: {error.get('reason')}" if "reason" in error else error
    text = reason if isinstance(reason, str) else json.dumps(reason)
    raise UpstreamError(
        f"{doing}: the engine answered {answer.status}: {' '.join(text.split())[:600]}"
    )


def engine_kind(http: EngineHttp) -> EngineKind:
    """Which engine ``http`` talks to. Elasticsearch marks every answer with ``X-Elastic-Product``
    (also a 401, and the 405 its integ-test zip gives ``GET /``), so the health endpoint is asked
    first; OpenSearch names its distribution in ``GET /``."""
    for path in ("/_cluster/health", "/"):
        try:
            answer = http.call("GET", path)
        except UpstreamError as exc:
            raise UpstreamError(f"cannot reach an engine at {http.base}: {exc}") from None
        if answer.headers.get("x-elastic-product") == "Elasticsearch":
            return "elasticsearch"
        if not 200 <= answer.status < 300:
            raise UpstreamError(
                f"engine at {http.base} answered HTTP {answer.status} to GET {path}"
            )
    version = answer.body.get("version") if isinstance(answer.body, Mapping) else None
    distribution = version.get("distribution") if isinstance(version, Mapping) else None
    return "opensearch" if distribution == "opensearch" else "elasticsearch"


def _lower(headers: Any) -> dict[str, str]:
    return {str(name).lower(): str(value) for name, value in (headers or {}).items()}


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw.decode("utf-8", errors="replace")
